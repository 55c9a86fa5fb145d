"""Which trained models each evaluation compares: model label (as written in that evaluation's
output) -> model directory name (``bl``, ``ct_free``, ``ct_protected``).

Kept free of torch and numpy: the workflow reads these maps while it builds the DAG, so a dry run
never loads the evaluation code itself.
"""

# robust accuracy of the free models (method 6.8)
ROBUSTNESS_MODELS = {"BL": "bl", "CT": "ct_free"}
# predictive performance of every model (method 6.10)
PERFORMANCE_MODELS = {"BL": "bl", "CT_free": "ct_free", "CT_protected": "ct_protected"}
# integrated gradients of the `protected` models (method 6.9)
IG_MODELS = {"BL": "bl", "CT_protected": "ct_protected"}
