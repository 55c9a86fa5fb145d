"""Evaluation stage (method section 6): test-time counterfactuals and their metrics (``protocol``,
``metrics``), FGSM robust accuracy (``robustness``), predictive performance (``performance``) and
integrated gradients (``attributions``). Modules are imported on demand to keep this import light."""
