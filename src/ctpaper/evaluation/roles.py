"""Which trained models each evaluation compares: model label (as written in that evaluation's
output) -> model directory name (``bl``, ``ct_free``, ``ct_protected``), from ``ctpaper.names``.

Kept free of torch and numpy: the workflow reads these maps while it builds the DAG, so a dry run
never loads the evaluation code itself.
"""

from ctpaper import names

# robust accuracy of the free models (method 6.8)
ROBUSTNESS_MODELS = {r.label: r.key for r in (names.BL, names.ct_role("free"))}
# predictive performance of every model (method 6.10)
PERFORMANCE_MODELS = {r.tag: r.key for r in names.ROLES.values()}
# integrated gradients of the `protected` models (method 6.9)
IG_MODELS = {r.tag: r.key for r in (names.BL, names.ct_role("protected"))}
