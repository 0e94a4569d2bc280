"""Baseline recommenders. Importing this package registers them (entry point `sessbench.models`)."""

from baselines import popularity  # noqa: F401  (registers pop, s-pop)
