"""The five SR-GNN variants of the paper's ablations (Section "Comparison with variants").

The paper defines each in one sentence; here is exactly what each model computes. Everything
not named stays as in `srgnn` (same cell, training and hyperparameters).

Connection schemes (the readout stays hybrid):

* `srgnn-ngc` (normalized global connections): the session graph keeps its edges, but each
  edge's weight is replaced by that of the same edge in the global item graph built once from
  all training sessions: for a transition u -> v with training count c(u, v),
  A_out[u, v] = c(u, v) / Σ_w c(u, w) (normalized by the source item's out-degree) and
  A_in[v, u] = c(u, v) / Σ_w c(w, v) (normalized by the target item's in-degree). A transition
  never seen in training (validation / test prefixes only) gets weight 0.
* `srgnn-fc` (full connections): a third block is appended to the connection matrix, so the
  cell reads [A_in | A_out | A_fc], with A_fc[u, v] = 1 when item u is clicked before item v
  anywhere in the prefix (every higher-order relation, direct edges included; 1 on the
  diagonal for an item clicked twice), unnormalized boolean weights, and a third edge linear
  and propagation bias for it.

Session representations (the connection matrix stays [A_in | A_out]):

* `srgnn-l`: the local embedding only, s = v_n (the last click's node vector).
* `srgnn-avg`: the global embedding by average pooling only, s = (1/n) Σ_t v_{x_t} over every
  position of the prefix (repeats included).
* `srgnn-att`: the global embedding by soft attention only, s = s_g (the official code's
  `--nonhybrid` switch).
"""

from __future__ import annotations

from sessbench.models import register_model

from srgnn.model import SRGNN, SRGNN_DEFAULTS

__all__ = ["SRGNNAtt", "SRGNNAvg", "SRGNNFC", "SRGNNL", "SRGNNNGC"]

_GROUPS = ("srgnn-variants",)


@register_model(
    "srgnn-ngc", groups=_GROUPS, defaults=SRGNN_DEFAULTS,
    description="SR-GNN with edge weights from the normalized global item graph",
)
class SRGNNNGC(SRGNN):
    """SR-GNN-NGC: session edges weighted by the normalized global (all training sessions) transition graph.

    A_out[u, v] = c(u, v) / out-count(u), A_in[v, u] = c(u, v) / in-count(v), with c the
    transition counts of the training sessions; unseen transitions weigh 0.
    """

    connection = "global"


@register_model(
    "srgnn-fc", groups=_GROUPS, defaults=SRGNN_DEFAULTS,
    description="SR-GNN with a third, boolean block for every higher-order relation",
)
class SRGNNFC(SRGNN):
    """SR-GNN-FC: connection matrix [A_in | A_out | A_fc], A_fc[u, v] = 1 if u is clicked before v anywhere in the prefix."""

    connection = "full"


@register_model(
    "srgnn-l", groups=_GROUPS, defaults=SRGNN_DEFAULTS,
    description="SR-GNN with the local embedding only (last click's node vector)",
)
class SRGNNL(SRGNN):
    """SR-GNN-L: the session embedding is the last click's node vector."""

    readout = "local"


@register_model(
    "srgnn-avg", groups=_GROUPS, defaults=SRGNN_DEFAULTS,
    description="SR-GNN with the global embedding by average pooling only",
)
class SRGNNAvg(SRGNN):
    """SR-GNN-AVG: the session embedding is the mean of the node vectors over every position of the prefix."""

    readout = "average"


@register_model(
    "srgnn-att", groups=_GROUPS, defaults=SRGNN_DEFAULTS,
    description="SR-GNN with the global embedding by soft attention only",
)
class SRGNNAtt(SRGNN):
    """SR-GNN-ATT: the session embedding is the attention-weighted sum s_g (official --nonhybrid)."""

    readout = "attention"
