"""Toy recommenders for the conformance kit and the audit: one sound, the others each break one
guarantee (a planted leak that the kit or `sessbench audit` must catch)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
import numpy as np
import torch

from sessbench.data.sessions import Prefixes, SessionSet, Split, TrainingData
from sessbench.models import FitContext, SessionRecommender


class SoundToy(SessionRecommender):
    """S-POP: clicks of each item in the prefix, training popularity as a tie-break (< 1)."""

    seed_dependent = False

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        pop = torch.from_numpy(data.item_popularity()).double()
        pop[0] = 0.0
        self.base = pop / (pop.max() + 1.0)

    def counts(self, batch: Prefixes) -> torch.Tensor:
        scores = self.base.unsqueeze(0).repeat(len(batch), 1)
        return scores.scatter_add_(1, batch.items, batch.mask.double())

    def score(self, batch: Prefixes) -> torch.Tensor:
        return self.counts(batch)


class BatchPeeker(SoundToy):
    """Adds what the other prefixes of its batch clicked: scores depend on the batch company."""

    def score(self, batch: Prefixes) -> torch.Tensor:
        scores = self.counts(batch)
        return scores + 0.5 * scores.mean(dim=0, keepdim=True)


class LearnsWhileScoring(SoundToy):
    """Adds every scored prefix's clicks to its popularity: scores depend on what came before."""

    def score(self, batch: Prefixes) -> torch.Tensor:
        scores = self.counts(batch)
        self.base = self.base + 0.01 * torch.bincount(batch.items.flatten(), minlength=len(self.base)).double()
        return scores


class Unseeded(SoundToy):
    """Draws noise from fresh entropy: two fits with one seed differ."""

    seed_dependent = True

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        super().fit(data, ctx)
        self.base = self.base + 1e-3 * torch.from_numpy(np.random.default_rng().random(len(self.base)))


class SeedFreeLiar(SoundToy):
    """Declares seed_dependent = False but draws from the seed."""

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        super().fit(data, ctx)
        self.base = self.base + 1e-3 * torch.from_numpy(ctx.rng().random(len(self.base)))


class WrongShape(SoundToy):
    """Forgets the padding column: [B, n_items]."""

    def score(self, batch: Prefixes) -> torch.Tensor:
        return self.counts(batch)[:, 1:]


class NaNScores(SoundToy):
    """An item the model cannot score gets NaN."""

    def score(self, batch: Prefixes) -> torch.Tensor:
        scores = self.counts(batch)
        scores[:, 3] = torch.nan
        return scores


class IntegerScores(SoundToy):
    def score(self, batch: Prefixes) -> torch.Tensor:
        return self.counts(batch).long()


class PaddingAsItem(SoundToy):
    """Mean over every position, padding included: a prefix's scores change with the batch width."""

    def score(self, batch: Prefixes) -> torch.Tensor:
        one_hot = torch.nn.functional.one_hot(batch.items, len(self.base)).double()
        return self.base + one_hot.mean(dim=1)


class Column0Anything(SoundToy):
    """Writes NaN into column 0: allowed, the evaluator never ranks it."""

    def score(self, batch: Prefixes) -> torch.Tensor:
        scores = self.counts(batch)
        scores[:, 0] = torch.nan
        return scores


class MutatesPrefixes(SoundToy):
    def score(self, batch: Prefixes) -> torch.Tensor:
        scores = self.counts(batch)
        batch.items.clamp_(max=1)
        return scores


class MutatesTrainingData(SoundToy):
    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        data.train.items[:5] = 1
        super().fit(data, ctx)


class ReadsTestFromTheStack(SoundToy):
    """Finds the caller's Split on the call stack and adds its test clicks to the popularity."""

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        super().fit(data, ctx)
        frame = inspect.currentframe()
        while frame is not None:
            split = next((v for v in frame.f_locals.values() if isinstance(v, Split)), None)
            if split is not None:
                test = torch.from_numpy(split.test.item_counts(split.n_items)).double()
                self.base = self.base + test
                return
            frame = frame.f_back


class ForgetfulSave(SoundToy):
    """save() writes nothing the scores depend on."""

    def save(self, path: str | Path) -> None:
        Path(path).write_text("{}")

    def load(self, path: str | Path, data: TrainingData | None = None) -> None:
        self.base = torch.zeros(data.n_items + 1, dtype=torch.float64)


class FaithfulSave(SoundToy):
    def save(self, path: str | Path) -> None:
        torch.save({"base": self.base}, path)

    def load(self, path: str | Path, data: TrainingData | None = None) -> None:
        self.base = torch.load(path, weights_only=True)["base"]


def copy_test_session_into_training(split: Split, which: int = 0, new_id: bool = False) -> Split:
    """The planted data leak: test session `which` appended to training, with its time (and,
    unless `new_id`, its session id)."""
    test = split.test
    session = test.subset(np.array([which]))
    ids = session.session_ids + (int(split.train.session_ids.max()) + int(test.session_ids.max()) + 1 if new_id else 0)
    train = SessionSet.from_lengths(
        np.concatenate([split.train.items, session.items]),
        np.concatenate([split.train.lengths, session.lengths]),
        np.concatenate([split.train.timestamps, session.timestamps]),
        np.concatenate([split.train.session_ids, ids]),
    )
    return replace(split, train=train)
