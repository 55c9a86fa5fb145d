"""Statistics of the robustness studies (issue 13): intervals over training seeds and class flips.

The seed interval: every training seed s gives a Table-1 value v_s (method 7.3: 100 x (1 - mean over
the seed's evaluation runs of CT/BL)). The seeds are independent draws of the whole training and
evaluation process, so Var(v_s) = sigma^2_train + sigma^2_runs / J already holds both the training
randomness and the evaluation noise of the runs within a seed. The interval of the mean over seeds
is therefore the t interval of the S seed values, mean +- t_{S-1} sd(v) / sqrt(S): exact when v_s is
normal, and it stays close for the few seeds a study can afford. A two-stage bootstrap (resample
seeds, then runs within each drawn seed) was the alternative; with S = 5 seeds its percentile
interval is too narrow: it has at most 126 distinct seed resamples and normal-like rather than t
quantiles, which resampling the runs a second time (counting their noise twice) only partly offsets.
In a simulation with 5 seeds x 20 runs (300 replications, nominal 95 %) the t interval covered the
true value in 94-95 % of replications, the two-stage bootstrap in 86 % (training SD twice the
run SD) and 89 % (half of it). ``two_stage_bootstrap`` is kept for that comparison
(tests/test_studies.py checks the t interval's coverage and that the bootstrap's is lower).

Classes (method 7.3): a Table-1 cell is ``better*`` (CT significantly better: the CI of CT - BL lies
below 0), ``better`` (value > 0, not significant), ``worse``, ``worse*`` or ``n/a`` (no value).
A class *flips* under a variant when it differs from the published-settings class.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

CLASSES = ("better*", "better", "worse", "worse*", "n/a")


def seed_interval(values: Sequence[float], level: float) -> tuple[float, float, float]:
    """(mean, lower, upper): the t interval at ``level`` of the mean of the per-seed values (NaN
    values skipped; fewer than two values give a NaN interval)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def two_stage_bootstrap(ratios_by_seed: Sequence[np.ndarray], level: float, n_boot: int = 2000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile interval of 100 x (1 - mean ratio) from resampling seeds with replacement and then
    the runs within each drawn seed (the value of a resample: the mean of its seed values)."""
    rng = np.random.default_rng(seed)
    groups = [np.asarray(r, dtype=float) for r in ratios_by_seed]
    S = len(groups)
    out = np.empty(n_boot)
    for b in range(n_boot):
        picks = rng.integers(0, S, S)
        vals = [groups[i][rng.integers(0, len(groups[i]), len(groups[i]))].mean() for i in picks]
        out[b] = 100.0 * (1.0 - float(np.mean(vals)))
    a = (1 - level) / 2
    lo, hi = np.quantile(out, [a, 1 - a])
    return float(lo), float(hi)


def cell_class(value: float, significant: bool) -> str:
    """The sign-and-significance class of a Table-1 cell (see module doc)."""
    if value is None or math.isnan(value):
        return "n/a"
    better = value > 0
    if significant:
        return "better*" if better else "worse*"
    return "better" if better else "worse"


def flips(base: Mapping[str, str], other: Mapping[str, str]) -> list[str]:
    """Keys (data sets) whose class differs between ``base`` and ``other`` (keys of both, in
    ``base`` order)."""
    return [k for k in base if k in other and base[k] != other[k]]


def direction_counts(values: Sequence[float], significant: Sequence[bool]) -> tuple[int, int]:
    """(seeds significantly better, seeds significantly worse)."""
    better = sum(1 for v, s in zip(values, significant) if s and v > 0)
    worse = sum(1 for v, s in zip(values, significant) if s and v < 0)
    return better, worse
