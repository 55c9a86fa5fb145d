"""The four tabular datasets (method 2.3): Adult, California Housing, Credit, GMSC.

Each reader turns the raw bytes into a frame of the original features (file order), the binary label
(1 = favourable outcome) and the categorical columns with their levels (all values present in the
file, sorted). ``encode`` then splits by position (first round(f * N) rows = pool), z-scores numeric
columns with pool statistics (ddof=1) and one-hot encodes categoricals in place.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctpaper.data.splits import DataFormatError, Prepared, undersample_and_shuffle


@dataclass
class Table:
    """A raw table: feature frame in file order, labels, and categorical columns -> sorted levels."""

    frame: pd.DataFrame
    y: np.ndarray
    levels: dict[str, list]

    def take(self, rows: np.ndarray) -> "Table":
        return Table(self.frame.iloc[rows].reset_index(drop=True), self.y[rows], self.levels)


def _read_csv(data: bytes, source: str, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(data), engine="c", **kwargs)
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as err:  # ParserError is a ValueError
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataFormatError(f"{source}: malformed file, cannot be read as expected ({msg})") from None


def _require_columns(df: pd.DataFrame, expected: list[str], source: str) -> None:
    if list(df.columns) != expected:
        raise DataFormatError(f"{source}: unexpected columns {list(df.columns)}; expected {expected}")


def _require_complete(df: pd.DataFrame, source: str) -> None:
    missing = df.columns[df.isna().any()].tolist()
    if missing:
        raise DataFormatError(f"{source}: missing values in column(s) {', '.join(map(str, missing))}")


def _require_rows(df: pd.DataFrame, source: str) -> None:
    if len(df) < 2:
        raise DataFormatError(f"{source}: {len(df)} data rows; the file is truncated or empty")


def _levels(frame: pd.DataFrame, columns: list[str]) -> dict[str, list]:
    return {c: sorted(frame[c].unique().tolist()) for c in columns}


# ---- Adult -----------------------------------------------------------------------------------
ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
                 "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
                 "hours_per_week", "country", "income"]
ADULT_CATEGORICAL = ["workclass", "education", "marital_status", "occupation", "relationship",
                     "race", "sex", "country"]


def read_adult(data: bytes, source: str = "adult.data") -> Table:
    """UCI adult.data: 15 fields separated by ', ', no header; '?' is a level; label income >50K."""
    dtypes = {c: (str if c in ADULT_CATEGORICAL or c == "income" else "int64") for c in ADULT_COLUMNS}
    df = _read_csv(data, source, header=None, names=ADULT_COLUMNS, dtype=dtypes,
                   skipinitialspace=True, na_filter=False)
    _require_rows(df, source)
    labels = set(df["income"].unique())
    if not labels <= {"<=50K", ">50K"}:
        raise DataFormatError(f"{source}: unexpected income labels {sorted(labels - {'<=50K', '>50K'})}")
    y = (df["income"] == ">50K").to_numpy(np.int64)
    frame = df.drop(columns="income")
    if (frame[ADULT_CATEGORICAL] == "").any().any():
        raise DataFormatError(f"{source}: empty categorical field(s)")
    return Table(frame, y, _levels(frame, ADULT_CATEGORICAL))


# ---- California Housing ----------------------------------------------------------------------
CH_RAW = ["longitude", "latitude", "housingMedianAge", "totalRooms", "totalBedrooms", "population",
          "households", "medianIncome", "medianHouseValue"]
CH_FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude",
               "Longitude"]


def read_california_housing(data: bytes, source: str = "cal_housing.data") -> Table:
    """cal_housing.data -> scikit-learn's 8 features; label 1 if medianHouseValue >= its median."""
    df = _read_csv(data, source, header=None, names=CH_RAW, dtype={c: "float64" for c in CH_RAW})
    _require_rows(df, source)
    _require_complete(df, source)
    hh = df["households"]
    frame = pd.DataFrame({
        "MedInc": df["medianIncome"], "HouseAge": df["housingMedianAge"],
        "AveRooms": df["totalRooms"] / hh, "AveBedrms": df["totalBedrooms"] / hh,
        "Population": df["population"], "AveOccup": df["population"] / hh,
        "Latitude": df["latitude"], "Longitude": df["longitude"],
    })
    value = df["medianHouseValue"].to_numpy()
    y = (value >= np.median(value)).astype(np.int64)
    return Table(frame, y, {})


# ---- Give Me Some Credit ---------------------------------------------------------------------
GMSC_FEATURES = ["RevolvingUtilizationOfUnsecuredLines", "age", "NumberOfTime30-59DaysPastDueNotWorse",
                 "DebtRatio", "MonthlyIncome", "NumberOfOpenCreditLinesAndLoans",
                 "NumberOfTimes90DaysLate", "NumberRealEstateLoansOrLines",
                 "NumberOfTime60-89DaysPastDueNotWorse", "NumberOfDependents"]
GMSC_TARGET = "SeriousDlqin2yrs"


def read_gmsc(data: bytes, source: str = "cs-training.csv.gz") -> Table:
    """cs-training.csv(.gz): drop the index column and incomplete rows; label 1 if no delinquency."""
    dtypes = {GMSC_TARGET: "int64"} | {c: "float64" for c in GMSC_FEATURES}
    if data[:2] == b"\x1f\x8b":  # decompress here so that a truncated or corrupt stream is an error
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataFormatError(f"{source}: malformed gzip stream ({err})") from None
    df = _read_csv(data, source, index_col=0, dtype=dtypes)
    _require_columns(df, [GMSC_TARGET, *GMSC_FEATURES], source)
    df = df.dropna(axis=0, how="any").reset_index(drop=True)
    _require_rows(df, source)
    y = (df[GMSC_TARGET] == 0).to_numpy(np.int64)
    return Table(df[GMSC_FEATURES], y, {})


# ---- Default of Credit Card Clients ----------------------------------------------------------
CREDIT_FEATURES = (["LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE"]
                   + [f"PAY_{i}" for i in (0, 2, 3, 4, 5, 6)]
                   + [f"BILL_AMT{i}" for i in range(1, 7)] + [f"PAY_AMT{i}" for i in range(1, 7)])
CREDIT_CATEGORICAL = ["SEX", "EDUCATION", "MARRIAGE"]
CREDIT_TARGET = "default.payment.next.month"


def read_credit(data: bytes, source: str = "UCI_Credit_Card.csv") -> Table:
    """UCI_Credit_Card.csv: drop ID; label 1 if no default next month; SEX/EDUCATION/MARRIAGE categorical."""
    columns = ["ID", *CREDIT_FEATURES, CREDIT_TARGET]
    dtypes = {c: ("int64" if c in CREDIT_CATEGORICAL or c in ("ID", CREDIT_TARGET) else "float64")
              for c in columns}
    df = _read_csv(data, source, dtype=dtypes)
    _require_columns(df, columns, source)
    _require_rows(df, source)
    _require_complete(df, source)
    bad = set(df[CREDIT_TARGET].unique()) - {0, 1}
    if bad:
        raise DataFormatError(f"{source}: unexpected {CREDIT_TARGET} values {sorted(bad)}")
    y = (df[CREDIT_TARGET] == 0).to_numpy(np.int64)
    frame = df[CREDIT_FEATURES]
    return Table(frame, y, _levels(frame, CREDIT_CATEGORICAL))


# ---- shared encoding -------------------------------------------------------------------------
def encode(table: Table, pool_fraction: float) -> Prepared:
    """Split by position (first round(f*N) rows = pool), z-score numerics on the pool, one-hot in place."""
    n = len(table.frame)
    n_pool = round(pool_fraction * n)
    if not 1 < n_pool < n:
        raise ValueError(f"pool of {n_pool} rows out of {n} is not usable")
    names: list[str] = []
    columns: list[np.ndarray] = []
    blocks: list[list[int]] = []
    scaling: dict[str, dict[str, float]] = {}
    for col in table.frame.columns:
        values = table.frame[col].to_numpy()
        if col in table.levels:
            block = []
            for level in table.levels[col]:
                block.append(len(names))
                names.append(f"{col}={level}")
                columns.append((values == level).astype(np.float64))
            blocks.append(block)
        else:
            x = values.astype(np.float64)
            mu = float(x[:n_pool].mean())
            sd = float(x[:n_pool].std(ddof=1))
            scale = sd if sd > 0 else 1.0
            names.append(col)
            columns.append((x - mu) / scale)
            scaling[col] = {"mean": mu, "sd": sd}
    X = np.column_stack(columns)
    return Prepared(names, X[:n_pool], table.y[:n_pool], X[n_pool:], table.y[n_pool:], classes=[0, 1],
                    categorical_blocks=blocks, extra={"standardisation": scaling})


READERS = {"adult": read_adult, "ch": read_california_housing, "credit": read_credit, "gmsc": read_gmsc}
BALANCED = {"ch", "credit", "gmsc"}  # undersampled to balance and shuffled; Adult keeps file order


def prepare_tabular(name: str, raw: dict[str, bytes], config: dict) -> Prepared:
    """Read the (single) raw file of ``name``, balance if required, encode."""
    (source, data), = raw.items()
    table = READERS[name](data, source)
    if name in BALANCED:
        table = table.take(undersample_and_shuffle(table.y, config["seed"]["data"],
                                                   config["seed"]["global"]))
    return encode(table, float(config["data"]["tabular_pool_fraction"]))
