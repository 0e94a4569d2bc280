"""Baseline recommenders. Importing this package registers them (entry point `sessbench.models`)."""

from baselines import popularity  # noqa: F401  (registers pop, s-pop)
from baselines import item_knn  # noqa: F401  (registers item-knn)
from baselines import bpr_mf  # noqa: F401  (registers bpr-mf)
from baselines import fpmc  # noqa: F401  (registers fpmc)
from baselines import gru4rec  # noqa: F401  (registers gru4rec)
from baselines import narm  # noqa: F401  (registers narm)
from baselines import stamp  # noqa: F401  (registers stamp)
from baselines import markov  # noqa: F401  (registers markov)
from baselines import rules  # noqa: F401  (registers ar, sr)
from baselines import sknn  # noqa: F401  (registers sknn, v-sknn, stan)
