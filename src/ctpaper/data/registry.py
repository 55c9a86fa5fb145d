"""What each dataset is made of: raw files (checksums, sources), protected features, split sizes.

The sha256 values are those of the raw-data manifest that documents the verified offline copies
(``raw/<dir>/<file>``); the file names and directory names are the ones used there, so a copy of
that directory can serve as the mirror (``paths.raw_mirror`` / ``CTPAPER_RAW_MIRROR``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctpaper import names
from ctpaper.config import ConfigError


# The config sections prepared data depends on; their hash is recorded in meta.json and is a
# parameter of rule prepare_data, so a change re-runs the preparation.
CONFIG_SECTIONS = ("seed", "data")


@dataclass(frozen=True)
class RawFile:
    """One raw file: where it lives below the raw directory and how to get it."""

    dataset_dir: str          # directory below the raw dir, e.g. "adult"
    name: str                 # file name, e.g. "adult.data"
    sha256: str
    urls: tuple[str, ...] = ()  # direct-download URLs, tried in order
    member: str | None = None   # path inside a .tar.gz at the URL (the file itself otherwise)
    obtain: str = ""            # how to get the file by hand

    @property
    def relpath(self) -> str:
        return f"{self.dataset_dir}/{self.name}"


@dataclass(frozen=True)
class DatasetSpec:
    """The fixed facts of one dataset (method 2.1-2.8)."""

    name: str
    raw_files: tuple[RawFile, ...]
    protected: tuple[int, ...]                # method 2.7
    protected_names: tuple[str, ...] = ()     # feature names expected at ``protected`` (checked)
    n_val_nominal: int = 1000                 # method 2.5
    n_pool_nominal: int | None = None         # None: f = n_val_nominal / |pool| (method 2.1)

    @property
    def kind(self) -> str:
        """synthetic | tabular | image (``ctpaper.names``)."""
        return names.DATASETS[self.name].kind

    @property
    def raw_dir(self) -> str | None:
        return self.raw_files[0].dataset_dir if self.raw_files else None


_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

ADULT_DATA = RawFile(
    "adult", "adult.data", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    urls=(f"{_UCI}/adult/adult.data",),
    obtain=f"download {_UCI}/adult/adult.data (UCI Adult, DOI 10.24432/C5XW20; a copy without an "
           "added header line, 3,974,305 bytes)")

CAL_HOUSING_DATA = RawFile(
    "california_housing", "cal_housing.data",
    "a2b44dcc7e1c9091b43c4f458b25cbd1f7e8068d08edd26bc4703108d3fa6214",
    urls=("https://ndownloader.figshare.com/files/5976036",
          "https://www.dcc.fc.up.pt/~ltorgo/Regression/cal_housing.tgz"),
    member="CaliforniaHousing/cal_housing.data",
    obtain="download cal_housing.tgz (scikit-learn's source: https://ndownloader.figshare.com/files/5976036, "
           "or https://www.dcc.fc.up.pt/~ltorgo/Regression/cal_housing.tgz) and extract "
           "CaliforniaHousing/cal_housing.data (20,640 rows, no header)")

CREDIT_DATA = RawFile(
    "credit_default", "UCI_Credit_Card.csv",
    "a0f0ab49d6326671d6cd83be5c88dcf18007025fe9a53ecd699119c871176ca1",
    obtain="Kaggle mirror of UCI 'default of credit card clients' (needs a Kaggle login): "
           "`kaggle datasets download -d uciml/default-of-credit-card-clients-dataset --unzip "
           "-p <raw_dir>/credit_default` (https://www.kaggle.com/datasets/uciml/"
           "default-of-credit-card-clients-dataset); UCI's .xls is a different file and is not accepted")

GMSC_DATA = RawFile(
    "give_me_some_credit", "cs-training.csv.gz",
    "b2d5b080b10ca9d559fa799b1ff5530fe20f5c90576c13a34c8bde981b7c6582",
    obtain="Kaggle competition 'Give Me Some Credit' (needs a Kaggle login and accepting the rules): "
           "`kaggle competitions download -c GiveMeSomeCredit -f cs-training.csv "
           "-p <raw_dir>/give_me_some_credit`, "
           "unzip it, then `gzip -n -9 cs-training.csv` (GNU gzip; the csv itself has sha256 "
           "1bd46da486a5708c58c7b01a034fae2a13b327f6f7b62ea7ba4fe3b5824b24ac)")


def _mnist(name: str, sha256: str) -> RawFile:
    urls = tuple(base + name for base in _MNIST_URLS)
    return RawFile("mnist", name, sha256, urls=urls,
                   obtain=f"download {urls[0]} (or {urls[1]}); the LeCun original, not decompressed")


MNIST_FILES = (
    _mnist("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    _mnist("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    _mnist("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    _mnist("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)

# Top 5 and bottom 5 pixel rows of a 28x28 image (method 2.7).
MNIST_PROTECTED = tuple(range(0, 140)) + tuple(range(644, 784))

_SYNTHETIC = dict(raw_files=(), protected=(0,), n_val_nominal=600, n_pool_nominal=3600)

SPECS: dict[str, DatasetSpec] = {
    "ls": DatasetSpec("ls", **_SYNTHETIC),
    "circ": DatasetSpec("circ", **_SYNTHETIC),
    "moon": DatasetSpec("moon", **_SYNTHETIC),
    "ol": DatasetSpec("ol", **_SYNTHETIC),
    "adult": DatasetSpec("adult", (ADULT_DATA,), (0,), ("age",)),
    "ch": DatasetSpec("ch", (CAL_HOUSING_DATA,), (1,), ("HouseAge",)),
    "credit": DatasetSpec("credit", (CREDIT_DATA,), (14,), ("AGE",)),
    "gmsc": DatasetSpec("gmsc", (GMSC_DATA,), (1,), ("age",)),
    "mnist": DatasetSpec("mnist", MNIST_FILES, MNIST_PROTECTED),
}
assert tuple(SPECS) == names.DATASET_NAMES


def get(dataset: str) -> DatasetSpec:
    """The spec of ``dataset``; ConfigError (naming config key ``datasets``) for an unknown name."""
    try:
        return SPECS[dataset]
    except KeyError:
        raise ConfigError(f"config key datasets: unknown dataset {dataset!r}; "
                          f"known: {', '.join(names.DATASET_NAMES)}") from None
