"""Data: raw-file readers, the SR-GNN preprocessing, synthetic data, the dataset registry and cache."""

from sessbench.data.sessions import Batch, Examples, SessionSet, Split, TrainingData

__all__ = ["Batch", "Examples", "SessionSet", "Split", "TrainingData"]
