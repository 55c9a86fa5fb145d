"""The appendix report (issue 12): box plots, maturity curves, Tables 4-6 and the claims computed
from the grid results that the grid rules write under ``{results}/appendix/{grid}/{dataset}/``.

``data`` reads those files and computes the percentage changes vs BL (method 8), ``tables`` the
predictive-performance tables (method 7.6), ``claims`` the verdicts on the original's appendix claims;
the figures are in ``ctpaper.figures.appendix``.
"""

from __future__ import annotations

# Grid ids (interfaces: issue 12) in the order of the appendix, with their paper sections.
GRIDS = ("generator", "penalties", "other", "tune", "tune_lr", "tune_lr_applied")
SECTIONS = {"generator": "D.2", "penalties": "D.3", "other": "D.4", "tune": "E.1", "tune_lr": "E.2",
            "tune_lr_applied": "E.2"}
TITLES = {
    "generator": "Generator parameters",
    "penalties": "Penalty strengths",
    "other": "Other parameters",
    "tune": "Key parameters",
    "tune_lr": "Learning rate (as published: step size not applied)",
    "tune_lr_applied": "Learning rate (as described: step size applied)",
}
# Box plots: the D grids box over runs x lambda (Figures 6-29), the E grids over runs with one row per
# test-time lambda (30-38, 48-56); E grids plot IP only and have maturity curves (39-47, 57-65).
D_GRIDS = ("generator", "penalties", "other")
E_GRIDS = ("tune", "tune_lr", "tune_lr_applied")
METRICS = {"ip": "IP", "cost": "cost"}
# Readable names of the varied parameters (axis titles, legends, table headers).
PARAM_LABELS = {
    "generator": "generator", "T": "$T$", "lambda_egy": r"$\lambda_\mathrm{egy}$", "tau": r"$\tau$",
    "lambda_div": r"$\lambda_\mathrm{div}$", "lambda_adv": r"$\lambda_\mathrm{adv}$",
    "lambda_reg": r"$\lambda_\mathrm{reg}$", "burnin": "burn-in", "nce": "CEs per epoch",
    "n_epochs": "epochs", "eta_ce": r"$\eta_\mathrm{CE}$", "lam": r"test-time $\lambda_\mathrm{egy}$",
}
GENERATOR_LABELS = {"ecco": "ECCo", "generic": "Generic", "revise": "REVISE"}


def grid_metrics(grid: str) -> tuple[str, ...]:
    """The metrics the grid's box plots show (method 8: IP and cost for D, IP for E)."""
    return ("ip", "cost") if grid in D_GRIDS else ("ip",)


def configured_grids(config) -> list[str]:
    """The grids of the config's ``grids`` section, in ``GRIDS`` order."""
    grids = config.get("grids") or {}
    return [g for g in GRIDS if g in grids]


def grid_datasets(config, grid: str) -> list[str]:
    """The data sets of ``grid`` that the run includes (the grid's and the config's ``datasets``)."""
    return [d for d in grid_spec(config, grid)["datasets"] if d in config["datasets"]]


def grid_spec(config, grid: str) -> dict:
    """The ``grids.<grid>`` section of the config; the as-described learning-rate grid
    (``tune_lr_applied``) uses ``grids.tune_lr`` unless it has a section of its own."""
    grids = config["grids"]
    if grid in grids:
        return grids[grid]
    if grid == "tune_lr_applied":
        return grids["tune_lr"]
    raise KeyError(f"no grids.{grid} section in the config")


def grid_vary(config, grid: str) -> list[str]:
    """The varied parameters of ``grid`` in config order (generator first where varied; then the
    box plot's x, colour and rows, method 8)."""
    return list(grid_spec(config, grid)["vary"])
