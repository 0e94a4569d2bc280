"""Synthetic sessions with a known limit: a latent-intent generator and its exact oracle.

This is the built-in default dataset. Because the generator is known, the Bayes-optimal
next-item distribution of every test prefix can be computed exactly (a forward pass over the
latent intents), which gives the best P@K / MRR@K any model could reach on the data.

Generative model
----------------
Parameters (drawn once from ``config.seed``):

* item popularity ``pop(i) ∝ rank(i)^-popularity_exponent`` over items 1..n_items (ranks
  shuffled), i.e. heavy-tailed;
* intent prior ``pi(z) ∝ rank(z)^-intent_skew`` over ``n_intents`` intents;
* memberships: each item belongs to a uniform number in
  ``[min_intents_per_item, max_intents_per_item]`` of distinct intents, so intents overlap and
  the last click alone leaves the intent ambiguous (an intent left with fewer than two
  members, which only happens in tiny configurations, gets random extra ones);
* intent item distribution ``w_z(i) ∝ pop(i) * exp(intent_noise * N(0, 1))`` on the members of
  z (0 elsewhere);
* local successors: for every member x of z, ``successors`` distinct other members of z drawn
  with probability ∝ w_z, with Dirichlet(1) weights ``S_z(x, .)``.

The transition kernel of intent z from item x is

    T_z(x, .) = local_weight * S_z(x, .) + (1 - local_weight) * w_z      if x is a member of z
    T_z(x, .) = w_z                                                       otherwise.

A session of length n = 2 + NegBin (mean ``mean_length``, shape ``length_shape``, capped at
``max_length``; independent of content) is drawn as

    z_1 ~ pi,  x_1 ~ w_{z_1}
    z_{t+1} = z_t with probability 1 - switch_prob, else z_{t+1} ~ pi
    x_{t+1} ~ repeat_prob * Uniform{x_1..x_t} + (1 - repeat_prob) * T_{z_{t+1}}(x_t, .)

(the repeat term picks a uniformly random earlier *position*, so an item clicked twice is twice
as likely to be revisited). Session times are uniform over ``days`` days, and the split is the
SR-GNN time split: test = sessions later than ``max time - test_days * 86400``, train = those
earlier. No item is filtered: every generator item 1..n_items is a candidate, and every prefix
of a test session is an evaluation example, so the oracle stays exact.

Oracle
------
With ``alpha_t(z) = P(z_t = z | x_1..x_t)``:

    alpha_1(z)     ∝ pi(z) w_z(x_1)
    alpha_{t+1}(z') ∝ prior_t(z') * [repeat_prob * h_t(x_{t+1}) + (1 - repeat_prob) T_{z'}(x_t, x_{t+1})]
    prior_t(z')    = (1 - switch_prob) alpha_t(z') + switch_prob pi(z')

where ``h_t`` is the empirical distribution of x_1..x_t, and the predictive is

    p(x_{t+1} | x_1..x_t) = repeat_prob * h_t + (1 - repeat_prob) * sum_z' prior_t(z') T_{z'}(x_t, .).

The local part ``S`` is one scipy.sparse matrix with rows ``z * (n_items + 1) + x``, so the
mixture of a batch is one sparse-sparse product; the recursion loops over positions only,
vectorized over the batch.

Defaults
--------
The defaults are checked with ``sessbench.calibration`` (``sessbench bench synthetic``) on the
validation carve (the last 10% of training sessions), never on test (they were first chosen
with figures computed on test; on the validation carve they meet the same criteria, so they
were kept): 500 items, 12000 sessions
(about 49k training and 5.3k test prefixes, mean length 5.5, 24% of non-first clicks revisit an
item of the session), 24 intents with 4-6 intents per item, a weak local structure (3
successors, local_weight 0.2) and repeat_prob 0.15. On seed 0's validation carve the oracle
reaches P@20 65.3, POP 25.2 (share 0.39), S-POP 39.7 and a first-order predictor (`markov`
with its popularity back-off) 41.5, a normalized gain of 0.41 (`sessbench bench synthetic`
prints them): the history beyond the last click carries signal the oracle
uses and a first-order model cannot. Earlier calibrations taught what to avoid: intents that
are sparse first-order chains (a transition-count predictor then beats sequence models), no
revisits (S-POP then equals POP) and intents so broad that POP gets close to the oracle.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from sessbench.data.sessions import Prefixes, SessionSet, Split
from sessbench.errors import ConfigError

#: 2024-01-01T00:00:00Z: the first possible session time
DEFAULT_START_TIME = 1_704_067_200
DAY_S = 86_400


# ---------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic generator; the defaults are the calibrated built-in dataset.

    The size (n_items, n_sessions) is meant to be scaled from the command line
    (``--dataset synthetic:n_items=5000,n_sessions=100000``); the other fields shape the data.
    The calibration figures hold for the defaults: a scaled configuration keeps the oracle
    exact, but its POP / first-order shares change (more items per intent, more data per item),
    so check them with ``sessbench bench synthetic --dataset synthetic:...``.
    """

    n_items: int = 500
    n_sessions: int = 12000
    n_intents: int = 24
    min_intents_per_item: int = 4
    max_intents_per_item: int = 6
    popularity_exponent: float = 0.6
    intent_skew: float = 0.5
    intent_noise: float = 1.0
    successors: int = 3
    local_weight: float = 0.2
    switch_prob: float = 0.05
    repeat_prob: float = 0.15
    mean_length: float = 5.5
    length_shape: float = 1.0
    max_length: int = 50
    days: int = 10
    test_days: int = 1
    start_time: int = DEFAULT_START_TIME
    seed: int = 0

    def __post_init__(self) -> None:
        problems: list[str] = []

        def need(ok: bool, text: str) -> None:
            if not ok:
                problems.append(text)

        for f in fields(self):
            value = getattr(self, f.name)
            need(isinstance(value, (int, float)) and math.isfinite(value), f"{f.name} must be a finite number")
        if problems:
            raise ConfigError("invalid synthetic dataset configuration: " + "; ".join(problems) + ".")
        need(self.n_items >= 2, f"n_items must be >= 2 (got {self.n_items})")
        need(self.n_sessions >= 2, f"n_sessions must be >= 2 (got {self.n_sessions})")
        need(self.n_intents >= 1, f"n_intents must be >= 1 (got {self.n_intents})")
        need(
            1 <= self.min_intents_per_item <= self.max_intents_per_item <= self.n_intents,
            "need 1 <= min_intents_per_item <= max_intents_per_item <= n_intents (got "
            f"{self.min_intents_per_item}, {self.max_intents_per_item}, {self.n_intents})",
        )
        # upper bounds keep every weight representable in float64 (no underflow to 0)
        need(0 <= self.popularity_exponent <= 10, "popularity_exponent must be in [0, 10]")
        need(0 <= self.intent_skew <= 10, "intent_skew must be in [0, 10]")
        need(0 <= self.intent_noise <= 5, "intent_noise must be in [0, 5]")
        need(self.successors >= 1, f"successors must be >= 1 (got {self.successors})")
        need(0.0 <= self.local_weight <= 1.0, f"local_weight must be in [0, 1] (got {self.local_weight})")
        need(0.0 <= self.switch_prob <= 1.0, f"switch_prob must be in [0, 1] (got {self.switch_prob})")
        need(0.0 <= self.repeat_prob < 1.0, f"repeat_prob must be in [0, 1) (got {self.repeat_prob})")
        need(self.max_length >= 2, f"max_length must be >= 2 (got {self.max_length})")
        need(
            2.0 < self.mean_length <= self.max_length,
            f"mean_length must be in (2, max_length] (got {self.mean_length})",
        )
        need(self.length_shape > 0, f"length_shape must be > 0 (got {self.length_shape})")
        need(
            0 < self.test_days < self.days,
            f"need 0 < test_days < days (got test_days={self.test_days}, days={self.days})",
        )
        need(
            0 <= self.start_time and self.start_time + self.days * DAY_S < 2**62,
            f"need 0 <= start_time and session times (start_time + days * 86400 seconds) below 2**62 "
            f"(got start_time={self.start_time}, days={self.days})",
        )
        need(self.seed >= 0, f"seed must be >= 0 (got {self.seed})")
        if problems:
            raise ConfigError("invalid synthetic dataset configuration: " + "; ".join(problems) + ".")

    def memory_parts(self) -> dict[str, int]:
        """Bytes generating this dataset takes at its peak, by what drives them (measured within
        about 1.5x above on the defaults, 400k sessions, 200k items and 200 intents).

        "parameters" grows with n_items x n_intents (the membership draw, the transition tables),
        "sessions" with n_sessions x the longest session (the click grid sampled position by
        position, then the sessions' arrays).
        """
        n, k = self.n_items + 1, self.n_intents
        members = n * (self.min_intents_per_item + self.max_intents_per_item) / 2
        parameters = 34 * n * k + 48 * members * (1 + self.successors)
        return {"parameters": int(parameters), "sessions": int(self.n_sessions * (9 * self.grid_width() + 12 * self.mean_length + 64))}

    def grid_width(self) -> int:
        """The longest session the generator is likely to draw (the width of its click grid): a
        length all n_sessions stay below in 99 of 100 datasets, at most max_length.

        Walks the NegBin(length_shape, p) probabilities of the extra clicks k (the ratio of
        successive terms is (k + r) / (k + 1) * q) until the tail beyond k, bounded by a geometric
        series, is below 0.01 / n_sessions. A few hundred steps even for huge n_sessions.
        """
        r, extra_mean = float(self.length_shape), self.mean_length - 2.0
        q = extra_mean / (r + extra_mean)  # numpy's negative_binomial(r, 1 - q) counts these extra clicks
        target = math.log(0.01) - math.log(self.n_sessions)
        log_pmf, k, last = r * math.log1p(-q), 0, self.max_length - 2
        while k < last:
            rho = max((k + r) / (k + 1) * q, q)  # bounds every later ratio
            if rho < 1 and log_pmf + math.log(rho) - math.log1p(-rho) < target:
                break
            log_pmf += math.log((k + r) / (k + 1) * q)
            k += 1
        return int(2 + k)

    def check_memory(self, available: int | None = None) -> None:
        """Refuse a configuration whose generation needs more memory than is available now,
        before anything is allocated: a large size would grow until the kernel kills the process."""
        if available is None:
            from sessbench.host_memory import available_bytes

            available = available_bytes(torch.device("cpu"))
        parts = self.memory_parts()
        needed = sum(parts.values())
        if available is None or needed <= available:
            return
        from sessbench.host_memory import gib

        if parts["sessions"] >= parts["parameters"]:
            per = parts["sessions"] / self.n_sessions
            fits = max(0, int((available - parts["parameters"]) / per))
            knob = f"lower n_sessions (at most about {fits:,} fit) or max_length"
            culprit = f"n_sessions={self.n_sessions:,} with sessions up to {self.grid_width()} clicks"
        else:
            fits = int(self.n_items * available / max(1, needed))
            knob = f"lower n_items (at most about {fits:,} fit) or n_intents"
            culprit = f"n_items={self.n_items:,} with n_intents={self.n_intents:,}"
        raise ConfigError(
            f"synthetic dataset ({culprit}): generating it needs about {gib(needed)} of memory "
            f"({', '.join(f'{k} {gib(v)}' for k, v in parts.items())}), but only {gib(available)} is available. "
            f"Fix: {knob}, or free memory."
        )

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_string(cls, text: str) -> SyntheticConfig:
        """Parse ``"n_items=500,n_sessions=2000,seed=3"`` (the part after ``synthetic:``).

        Unset keys keep their defaults; an empty string gives the default configuration.
        """
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for token in (t.strip() for t in text.split(",")):
            if not token:
                continue
            key, sep, raw = (part.strip() for part in token.partition("="))
            if not sep or not key:
                raise ConfigError(
                    f"synthetic dataset option '{token}' is not of the form key=value; "
                    f"example: synthetic:n_items=500,n_sessions=2000,seed=3"
                )
            if key not in types:
                raise ConfigError(
                    f"unknown synthetic dataset option '{key}'. Valid options: {', '.join(cls.keys())}."
                )
            if key in values:
                raise ConfigError(f"synthetic dataset option '{key}' is given twice")
            values[key] = _parse_value(key, raw, types[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_string(self) -> str:
        """The non-default options as ``key=value,...`` (inverse of `from_string`)."""
        default = SyntheticConfig()
        return ",".join(
            f"{k}={v}" for k, v in self.to_dict().items() if getattr(default, k) != v
        )


def _parse_value(key: str, raw: str, kind: Any) -> int | float:
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if name == "int":
            try:
                return int(raw)
            except ValueError:
                as_float = float(raw)  # accept 1e4
                if not as_float.is_integer():
                    raise
                return int(as_float)
        return float(raw)
    except ValueError:
        raise ConfigError(
            f"synthetic dataset option '{key}' needs {'an integer' if name == 'int' else 'a number'}, "
            f"got '{raw}'"
        ) from None


# ---------------------------------------------------------------------------- generator


class SyntheticGenerator:
    """Draws the generator's parameters from `config.seed` and samples splits from them.

    Public parameters (read by tests and by anyone who wants to inspect the data):
    intent_prior float64 [K]; popularity float64 [n+1]; membership bool [K, n+1];
    intent_weights CSR [K, n+1] (w_z, rows sum to 1); local CSR [K*(n+1), n+1] (row
    z*(n+1)+x holds S_z(x, .), empty unless x is a member of z). Sparse storage keeps memory
    O(n_items * intents_per_item * successors) however large the item set.
    """

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        param_seed, self._sample_seed = np.random.SeedSequence(config.seed).spawn(2)
        rng = np.random.default_rng(param_seed)
        n, k = config.n_items, config.n_intents
        self.n_items = n
        self.n_intents = k

        ranks = rng.permutation(n) + 1.0
        pop = np.zeros(n + 1)
        pop[1:] = ranks ** -config.popularity_exponent
        self.popularity = pop / pop.sum()

        prior = (rng.permutation(k) + 1.0) ** -config.intent_skew
        self.intent_prior = prior / prior.sum()

        self.membership = self._draw_membership(rng)
        z_idx, i_idx = np.nonzero(self.membership)  # row-major: sorted by intent, then item
        raw = self.popularity[i_idx] * np.exp(config.intent_noise * rng.standard_normal(len(i_idx)))
        totals = np.bincount(z_idx, weights=raw, minlength=k)
        self.intent_weights = sp.csr_array((raw / totals[z_idx], (z_idx, i_idx)), shape=(k, n + 1))
        self.intent_weights.sort_indices()
        self.local = self._draw_local(rng)

        self._prior_cdf = np.cumsum(self.intent_prior)
        self._weights_search = _row_search_table(self.intent_weights)
        self._local_search = _row_search_table(self.local)
        self._weights_by_item = self.intent_weights.T.tocsr()  # [n+1, K]: intents of each item
        self._t_prior = torch.from_numpy(self.intent_prior)
        self._t_member = torch.from_numpy(self.membership)

    # -- parameters
    def _draw_membership(self, rng: np.random.Generator) -> np.ndarray:
        """bool [K, n+1]: each item joins m distinct intents; every intent gets >= 2 items."""
        c = self.config
        n, k = self.n_items, self.n_intents
        m = rng.integers(c.min_intents_per_item, c.max_intents_per_item + 1, size=n)
        order = np.argsort(rng.random((n, k)), axis=1)  # a random permutation of intents per item
        chosen = np.arange(k)[None, :] < m[:, None]
        member = np.zeros((k, n + 1), dtype=bool)
        item_idx = np.broadcast_to(np.arange(1, n + 1)[:, None], (n, k))
        member[order[chosen], item_idx[chosen]] = True
        for z in np.flatnonzero(member.sum(axis=1) < 2):  # tiny configs only; loop over intents
            missing = 2 - int(member[z].sum())
            candidates = np.flatnonzero(~member[z, 1:]) + 1
            member[z, rng.choice(candidates, size=missing, replace=False)] = True
        return member

    def _draw_local(self, rng: np.random.Generator) -> sp.csr_array:
        """S_z(x, .) for every member x of z: `successors` other members, drawn ∝ w_z."""
        k, width = self.n_intents, self.n_items + 1
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        w = self.intent_weights
        for z in range(k):  # loop over intents (parameters), vectorized over members
            members = w.indices[w.indptr[z] : w.indptr[z + 1]]
            d = min(self.config.successors, len(members) - 1)
            picks = _distinct_draws(w.data[w.indptr[z] : w.indptr[z + 1]], d, rng)
            rows.append(np.repeat(z * width + members, d))
            cols.append(members[picks].ravel())
            vals.append(rng.dirichlet(np.ones(d), size=len(members)).ravel())
        local = sp.csr_array(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(k * width, width),
        )
        local.sum_duplicates()
        local.sort_indices()
        return local

    def transition(self, z: int, x: int) -> np.ndarray:
        """T_z(x, .) as a dense float64 [n+1] vector (for tests and inspection; not a hot path)."""
        c = self.config
        broad = self.intent_weights[[z], :].toarray().ravel()
        if self.membership[z, x]:
            row = self.local[[z * (self.n_items + 1) + x], :].toarray().ravel()
            return c.local_weight * row + (1.0 - c.local_weight) * broad
        return broad

    # -- sampling
    def _sample_intents(self, rng: np.random.Generator, size: int) -> np.ndarray:
        z = np.searchsorted(self._prior_cdf, rng.random(size) * self._prior_cdf[-1], side="right")
        return np.minimum(z, self.n_intents - 1)

    def sample_sessions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items int32 [n_clicks], lengths int64 [n_sessions], times int64 [n_sessions]).

        Sessions come in time order. Loops over positions only, vectorized over sessions.
        """
        c = self.config
        rng = np.random.default_rng(self._sample_seed)
        s = c.n_sessions
        extra_mean = c.mean_length - 2.0
        p = c.length_shape / (c.length_shape + extra_mean)
        lengths = np.minimum(2 + rng.negative_binomial(c.length_shape, p, size=s), c.max_length)
        lengths = lengths.astype(np.int64)
        width = self.n_items + 1
        grid = np.zeros((s, int(lengths.max())), dtype=np.int64)

        z = self._sample_intents(rng, s)
        grid[:, 0] = _sample_csr_rows(self.intent_weights, self._weights_search, z, rng.random(s))
        for t in range(1, grid.shape[1]):
            act = np.flatnonzero(lengths > t)
            za = z[act]
            switch = rng.random(len(act)) < c.switch_prob
            za[switch] = self._sample_intents(rng, int(switch.sum()))
            z[act] = za
            prev = grid[act, t - 1]
            nxt = np.empty(len(act), dtype=np.int64)
            repeat = rng.random(len(act)) < c.repeat_prob
            pos = np.floor(rng.random(len(act)) * t).astype(np.int64)
            nxt[repeat] = grid[act[repeat], pos[repeat]]
            local = ~repeat & self.membership[za, prev] & (rng.random(len(act)) < c.local_weight)
            nxt[local] = _sample_csr_rows(
                self.local, self._local_search, za[local] * width + prev[local], rng.random(int(local.sum()))
            )
            broad = ~repeat & ~local
            nxt[broad] = _sample_csr_rows(
                self.intent_weights, self._weights_search, za[broad], rng.random(int(broad.sum()))
            )
            grid[act, t] = nxt

        mask = np.arange(grid.shape[1])[None, :] < lengths[:, None]
        items = grid[mask].astype(np.int32)  # row-major: session by session, in click order
        times = np.sort(rng.integers(0, c.days * DAY_S, size=s)) + c.start_time
        return items, lengths, times.astype(np.int64)

    def sample_split(self) -> Split:
        """The SR-GNN time split of freshly sampled sessions (deterministic from the seed)."""
        c = self.config
        items, lengths, times = self.sample_sessions()
        sessions = SessionSet.from_lengths(items, lengths, times)
        split_time = int(times.max()) - c.test_days * DAY_S
        train = sessions.subset(np.flatnonzero(times < split_time))
        test = sessions.subset(np.flatnonzero(times > split_time))
        if train.n_sessions == 0:
            raise ConfigError(
                f"the synthetic time split left no training sessions (n_sessions={c.n_sessions}, "
                f"days={c.days}, test_days={c.test_days}); raise n_sessions or days"
            )
        return Split(
            name="synthetic",
            train=train,
            test=test,
            n_items=self.n_items,
            item_ids=np.arange(self.n_items + 1, dtype=np.int64),
            meta={
                "dataset": "synthetic",
                "generator": c.to_dict(),
                "split_time": split_time,
                "n_clicks": int(sessions.n_clicks),
                "mean_length": float(lengths.mean()),
                "revisit_rate": revisit_rate(sessions),
                "checksum": sessions.checksum(),
            },
        )

    # -- oracle
    def predictive(self, batch: Prefixes) -> torch.Tensor:
        """float64 [B, n_items + 1]: the exact next-item distribution of each prefix.

        Column 0 is 0 and every row sums to 1. Runs the forward recursion over the latent
        intents (see the module docstring), one step per position, vectorized over the batch.
        """
        c = self.config
        items = batch.items.detach().cpu().to(torch.int64)
        lengths = batch.lengths.detach().cpu().to(torch.int64)
        b, width_l = items.shape
        width = self.n_items + 1
        k = self.n_intents
        prior = self._t_prior
        intents = torch.arange(k, dtype=torch.int64)

        alpha = prior.unsqueeze(0) * self._weights_of(items[:, 0])  # [B, K]
        alpha = _normalize(alpha, prior)
        rows_all = intents[None, :] * width  # [1, K]
        for t in range(1, width_l):
            live = lengths > t
            if not bool(live.any()):
                break
            prev, cur = items[:, t - 1], items[:, t]
            step_prior = (1.0 - c.switch_prob) * alpha + c.switch_prob * prior
            hist = (items[:, :t] == cur[:, None]).sum(dim=1).double() / t  # h_t(x_{t+1})
            trans = self._transition_values(rows_all + prev[:, None], cur, prev)  # [B, K]
            emission = c.repeat_prob * hist[:, None] + (1.0 - c.repeat_prob) * trans
            updated = _normalize(step_prior * emission, step_prior)
            alpha = torch.where(live[:, None], updated, alpha)

        step_prior = (1.0 - c.switch_prob) * alpha + c.switch_prob * prior  # P(z_{t+1} | prefix)
        last = batch.last_items.detach().cpu().to(torch.int64)
        member = self._t_member[:, last].T.double()  # [B, K]
        broad = step_prior * (1.0 - c.local_weight * member)
        out = torch.from_numpy(np.ascontiguousarray((self._weights_by_item @ broad.numpy().T).T))
        b_idx, z_idx = (t.numpy() for t in torch.nonzero(member, as_tuple=True))
        local_coef = (step_prior * c.local_weight).numpy()[b_idx, z_idx]
        mix = sp.csr_array((local_coef, (b_idx, z_idx * width + last.numpy()[b_idx])), shape=(b, k * width))
        out += torch.from_numpy((mix @ self.local).toarray())
        out *= 1.0 - c.repeat_prob
        valid = (items > 0).double()
        hist_dist = torch.zeros(b, width, dtype=torch.float64)
        hist_dist.scatter_add_(1, items, valid / lengths[:, None].double())
        out += c.repeat_prob * hist_dist
        out[:, 0] = 0.0
        return out

    def _weights_of(self, items: torch.Tensor) -> torch.Tensor:
        """w_z(item) for every row's item and every intent z: float64 [B, K]."""
        return torch.from_numpy(self._weights_by_item[items.numpy()].toarray())

    def _transition_values(self, rows: torch.Tensor, cur: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """T_z(prev, cur) for every row b and intent z: float64 [B, K]."""
        c = self.config
        member = self._t_member[:, prev].T  # [B, K]; S_z(prev, .) is empty unless prev is in z
        b_idx, z_idx = (t.numpy() for t in torch.nonzero(member, as_tuple=True))
        local = np.zeros(member.shape, dtype=np.float64)
        if len(b_idx):
            local[b_idx, z_idx] = np.asarray(self.local[rows.numpy()[b_idx, z_idx], cur.numpy()[b_idx]]).ravel()
        m = member.double()
        return c.local_weight * m * torch.from_numpy(local) + (1.0 - c.local_weight * m) * self._weights_of(cur)


def _distinct_draws(weights: np.ndarray, d: int, rng: np.random.Generator) -> np.ndarray:
    """int64 [m, d]: for each of the m entries x, d distinct other entries drawn ∝ weights.

    Successive sampling without replacement, done as "the first d distinct values of an iid
    stream ∝ weights, skipping x": the two have the same distribution, and the stream costs
    O(m * d) instead of the O(m^2) of random keys over every entry. A row whose stream was too
    short draws again (a fresh draw from the same distribution keeps it exact); rows still left
    after a few rounds, which only very skewed weights produce, take Gumbel top-d keys.
    """
    m = len(weights)
    if d >= m - 1:  # every other entry is a successor
        others = np.broadcast_to(np.arange(m - 1), (m, m - 1))
        return others + (others >= np.arange(m)[:, None])
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    out = np.empty((m, d), dtype=np.int64)
    todo = np.arange(m)
    n_draws = 4 * d
    for _ in range(4):  # rounds with longer streams, for the rows that are still short
        if not len(todo):
            return out
        draws = np.minimum(np.searchsorted(cdf, rng.random((len(todo), n_draws)), side="right"), m - 1)
        draws[draws == todo[:, None]] = -1  # x is never its own successor
        order = np.argsort(draws, axis=1, kind="stable")  # equal values keep their stream order
        ranked = np.take_along_axis(draws, order, axis=1)
        first = np.ones_like(ranked, dtype=bool)
        first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        first &= ranked >= 0
        position = np.sort(np.where(first, order, n_draws), axis=1)[:, :d]  # first occurrences
        done = position[:, -1] < n_draws
        out[todo[done]] = np.take_along_axis(draws[done], position[done], axis=1)
        todo = todo[~done]
        n_draws *= 4
    logw = np.log(weights)
    block = max(1, 4_000_000 // m)
    for lo in range(0, len(todo), block):  # Gumbel top-d, in blocks that bound the key matrix
        rows = todo[lo : lo + block]
        keys = logw[None, :] + rng.gumbel(size=(len(rows), m))
        keys[np.arange(len(rows)), rows] = -np.inf
        out[rows] = np.argpartition(-keys, d - 1, axis=1)[:, :d]
    return out


def _row_search_table(matrix: sp.csr_array) -> np.ndarray:
    """float64 [nnz]: row r's cumulative weights shifted into [r, r + 1], one sorted array.

    Each row's cumulative sum is rescaled to end exactly at 1, so `searchsorted(table, r + u)`
    finds a draw from row r for every row at once (rows that are never sampled may be empty).
    """
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    cum = np.cumsum(matrix.data)
    start_cum = np.concatenate([[0.0], cum])[matrix.indptr[:-1]][row_of]
    row_total = np.bincount(row_of, weights=matrix.data, minlength=matrix.shape[0])[row_of]
    within = (cum - start_cum) / row_total
    last = np.zeros(len(within), dtype=bool)
    ends = matrix.indptr[1:][np.diff(matrix.indptr) > 0] - 1
    last[ends] = True
    within[last] = 1.0
    return row_of + within


def _sample_csr_rows(matrix: sp.csr_array, table: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One column drawn from each of the (non-empty) CSR `rows`, with uniforms `u` in [0, 1)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(table, rows + u, side="right")
    pos = np.clip(pos, matrix.indptr[rows], matrix.indptr[rows + 1] - 1)
    return matrix.indices[pos].astype(np.int64)


def _normalize(weights: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Rows scaled to sum 1; a row of zeros (a prefix the model cannot produce) gets `fallback`."""
    total = weights.sum(dim=1, keepdim=True)
    fb = fallback if fallback.dim() == 2 else fallback.unsqueeze(0).expand_as(weights)
    return torch.where(total > 0, weights / total.clamp_min(1e-300), fb)


def revisit_rate(sessions: SessionSet) -> float:
    """Share of non-first clicks whose item was already clicked earlier in the same session."""
    if sessions.n_clicks == 0:
        return 0.0
    sess = sessions.session_index_of_clicks()
    order = np.lexsort((np.arange(sessions.n_clicks), sessions.items, sess))
    s_sorted, i_sorted = sess[order], sessions.items[order]
    dup = np.zeros(sessions.n_clicks, dtype=bool)
    dup[1:] = (s_sorted[1:] == s_sorted[:-1]) & (i_sorted[1:] == i_sorted[:-1])
    later = sessions.n_clicks - sessions.n_sessions
    return float(dup.sum() / later) if later > 0 else 0.0


# ---------------------------------------------------------------------------- oracle model


def build_synthetic(config: SyntheticConfig | None = None) -> tuple[Split, SyntheticGenerator]:
    """The synthetic split of `config` (default: the built-in dataset) and the generator that drew
    it (its exact next-item distribution is what `sessbench.oracle.OracleRecommender` scores).

    Refuses (ConfigError) a configuration that does not fit the memory available now."""
    config = config or SyntheticConfig()
    config.check_memory()
    generator = SyntheticGenerator(config)
    return generator.sample_split(), generator
