"""Model-based solvers and classical baselines of the four papers."""
