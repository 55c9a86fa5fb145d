"""ctpaper: a reproduction of Counterfactual Training (Altmeyer et al., 2025) as a Snakemake pipeline.

The science lives in this package and knows nothing about Snakemake; the workflow's rules are thin
wrappers (``workflow/scripts``) around the functions here.
"""

__version__ = "0.1.0"
