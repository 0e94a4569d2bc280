"""GRU4Rec, faithful to the official algorithm (hidasib/GRU4Rec): see `model.py`.

Modules: `batching` (session-parallel mini-batches), `sampling` (popularity^alpha negatives,
drawn in bulk), `losses` (cross-entropy with logQ, BPR-max, TOP1-max), `optim` (Adagrad with
momentum over sparse gradients), `network` (embedding modes, GRU layers, prefix encoder),
`model` (the registered model). Importing the package registers `gru4rec`.
"""

from baselines.gru4rec.model import GRU4REC_DEFAULTS, GRU4Rec

__all__ = ["GRU4REC_DEFAULTS", "GRU4Rec"]
