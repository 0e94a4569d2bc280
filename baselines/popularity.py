"""POP and S-POP: the popularity baselines of the SR-GNN paper's Table 2."""

from __future__ import annotations

import torch

from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.models import FitContext, SessionRecommender, register_model


@register_model("pop", groups=("baselines", "paper"), description="Most clicked items in the training sessions")
class Popularity(SessionRecommender):
    """POP: recommends the items clicked most often in the training data, whatever the prefix."""

    seed_dependent = False  # nothing random: one run stands for every seed

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        self.counts = torch.from_numpy(data.item_popularity()).double()
        self.counts[0] = 0.0

    def score(self, batch: Prefixes) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(len(batch), -1)


@register_model(
    "s-pop",
    groups=("baselines", "paper"),
    description="Most clicked items of the current session, ties broken by training popularity",
)
class SessionPopularity(SessionRecommender):
    """S-POP: items ranked by their clicks in the current prefix; training popularity breaks ties.

    Scores are `count_in_prefix + popularity / (max_popularity + 1)`: the fractional part orders
    items with equal in-prefix counts by training popularity and never overtakes a whole count.
    """

    seed_dependent = False  # nothing random: one run stands for every seed

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        counts = torch.from_numpy(data.item_popularity()).double()
        counts[0] = 0.0
        self.tiebreak = counts / (counts.max() + 1.0)

    def score(self, batch: Prefixes) -> torch.Tensor:
        scores = self.tiebreak.unsqueeze(0).repeat(len(batch), 1)
        ones = batch.mask.to(scores.dtype)
        scores.scatter_add_(1, batch.items, ones)  # padding (item 0) lands in the ignored column 0
        return scores
