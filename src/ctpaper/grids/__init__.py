"""The appendix grids (method 9): which models each grid trains (plan) and how they are evaluated (eval)."""
