"""The robustness studies beyond the original (issue 13): training seeds and the paper's stated settings."""
