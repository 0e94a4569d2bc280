"""SR-GNN (Wu et al., AAAI 2019) and its five variants.

Importing the package registers `srgnn` (group `paper`) and `srgnn-ngc`, `srgnn-fc`, `srgnn-l`,
`srgnn-avg`, `srgnn-att` (group `srgnn-variants`) through the `sessbench.models` entry point.
Modules: `graph` (batch session graphs), `global_graph` (the NGC item graph), `model` (the
network and the registered model), `variants`.
"""

from srgnn import model, variants  # noqa: F401  (register the models)
