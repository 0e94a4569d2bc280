"""SKNN, V-SKNN and STAN: each definition on hand-built sessions, and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.popularity import Popularity
from baselines.decays import distance_decay
from baselines.sknn import SKNN, STAN, VSKNN, position_weights, top_k_per_row
from baselines.ties import tie_key
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.data.synthetic import SyntheticConfig, SyntheticGenerator
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model

DAY = 86_400


def batch_of(prefixes: list[list[int]]):
    """A batch whose prefixes are exactly `prefixes` (a dummy target is appended to each)."""
    examples = SessionSet.from_lists([p + [1] for p in prefixes]).examples()
    counts = np.array([len(p) for p in prefixes])
    return examples.batch(np.cumsum(counts) - counts)  # each session's longest prefix comes first


def fitted(model, sessions: list[list[int]], n_items: int, times: list[int] | None = None):
    model.fit(TrainingData(SessionSet.from_lists(sessions, timestamps=times), None, n_items, "toy"), FitContext())
    return model


# ---------------------------------------------------------------------------- brute force


def reference_scores(kind: str, sessions: list[list[int]], times: list[int], prefix: list[int], n_items: int, **p) -> np.ndarray:
    """The definitions of the module docstring, one training session at a time (tests only)."""
    order = sorted(range(len(sessions)), key=lambda s: (times[s], s))
    recency = {s: r for r, s in enumerate(order)}
    pset = set(prefix)
    cands = [s for s in range(len(sessions)) if pset & set(sessions[s])]
    if p["sample_size"] and len(cands) > p["sample_size"]:
        cands = sorted(cands, key=lambda s: -recency[s])[: p["sample_size"]]
    length = len(prefix)
    weights: dict[int, float] = {}
    for t, x in enumerate(prefix, 1):
        if kind == "v-sknn":
            weights[x] = float(position_weights(p["weighting"], np.array([t]), np.array([length]))[0])
        elif kind == "stan":
            weights[x] = math.exp((t - length) / p["lambda_spw"])
        else:
            weights[x] = 1.0
    t_ref = max(times)
    sims = {}
    for s in cands:
        nset = set(sessions[s])
        shared = sorted(pset & nset)
        if kind == "sknn":
            sim = len(shared) / math.sqrt(len(pset) * len(nset))
        elif kind == "v-sknn":
            sim = sum(weights[x] for x in shared) / len(weights)
        else:
            norm = math.sqrt(sum(weights[x] ** 2 for x in sorted(pset)))
            sim = sum(weights[x] for x in shared) / (norm * math.sqrt(len(nset)))
            sim *= math.exp(-(t_ref - times[s]) / (p["lambda_snh"] * DAY))
        if sim > 0:
            sims[s] = sim
    # ties (equal up to float rounding noise, as baselines.ties defines) go to the more recent
    neighbours = sorted(sims, key=lambda s: (-float(tie_key(sims[s])), -recency[s]))[: p["k"]]
    scores = np.zeros(n_items + 1)
    for s in neighbours:
        seq = sessions[s]
        if kind == "sknn":
            for i in set(seq):
                scores[i] += sims[s]
        elif kind == "v-sknn":
            step = next(j for j, x in enumerate(reversed(prefix), 1) if x in set(seq))
            decay = float(distance_decay(p["weighting_score"], np.array([step]))[0])
            for i in set(seq):
                scores[i] += sims[s] * decay
        else:
            last = {x: j + 1 for j, x in enumerate(seq)}
            anchor = max(j + 1 for j, x in enumerate(seq) if x in pset)
            for i in set(seq):
                scores[i] += sims[s] * math.exp(-abs(last[i] - anchor) / p["lambda_inh"])
    scores[0] = -np.inf
    return scores


def random_case(seed: int, n_items: int = 25, n_sessions: int = 120):
    rng = np.random.default_rng(seed)
    sessions = [rng.integers(1, n_items + 1, size=rng.integers(1, 8)).tolist() for _ in range(n_sessions)]
    times = rng.integers(0, 30 * DAY, size=n_sessions).tolist()
    prefixes = [rng.integers(1, n_items + 1, size=rng.integers(1, 7)).tolist() for _ in range(12)]
    return sessions, times, prefixes


CASES = [
    ("sknn", SKNN, {"k": 5, "sample_size": 20, "similarity": "cosine"}),
    ("sknn", SKNN, {"k": 100, "sample_size": 0, "similarity": "cosine"}),
    ("v-sknn", VSKNN, {"k": 4, "sample_size": 15, "weighting": "div", "weighting_score": "div"}),
    ("v-sknn", VSKNN, {"k": 7, "sample_size": 30, "weighting": "quadratic", "weighting_score": "log"}),
    ("v-sknn", VSKNN, {"k": 7, "sample_size": 30, "weighting": "linear", "weighting_score": "same"}),
    ("stan", STAN, {"k": 6, "sample_size": 25, "lambda_spw": 1.02, "lambda_snh": 5.0, "lambda_inh": 2.05}),
    ("stan", STAN, {"k": 50, "sample_size": 60, "lambda_spw": 3.0, "lambda_snh": 0.5, "lambda_inh": 0.7}),
]


@pytest.mark.parametrize("kind, cls, params", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_brute_force_definition(kind: str, cls, params: dict, seed: int) -> None:
    sessions, times, prefixes = random_case(seed)
    model = fitted(cls(**params), sessions, 25, times)
    scores = model.score(batch_of(prefixes)).numpy()
    for row, prefix in enumerate(prefixes):
        expected = reference_scores(kind, sessions, times, prefix, 25, **params)
        np.testing.assert_allclose(scores[row], expected, rtol=1e-5, atol=1e-9, err_msg=f"prefix {prefix}")


@pytest.mark.parametrize("kind, cls, params", CASES[::2])
def test_chunks_and_top_k_paths_do_not_change_scores(kind: str, cls, params: dict) -> None:
    sessions, times, prefixes = random_case(5)
    whole = fitted(cls(**params), sessions, 25, times).score(batch_of(prefixes))
    small = cls(**params)
    small.max_chunk_terms = 1  # one prefix per chunk, and the lexsort top-k
    fitted(small, sessions, 25, times)
    torch.testing.assert_close(small.score(batch_of(prefixes)), whole)


def test_top_k_per_row_keeps_the_largest_and_breaks_ties_by_recency() -> None:
    row = np.array([0, 0, 0, 0, 1, 1])
    session = np.array([1, 2, 3, 4, 0, 5])
    sim = np.array([0.5, 0.9, 0.5, 0.1, 0.3, 0.3])
    for budget in (1, 10**6):
        kept = top_k_per_row(row, session, sim, 2, 2, budget)
        assert kept.tolist() == [1, 2, 4, 5]  # 0.9, then the more recent 0.5 (session 3)
        kept = top_k_per_row(row, session, sim, 2, 1, budget)
        assert kept.tolist() == [1, 5]  # row 1: the tie goes to session 5


# ---------------------------------------------------------------------------- hand-built cases


def test_sknn_cosine_value_and_sum_of_neighbour_similarities() -> None:
    # prefix {1,2}: session A={1,2,3,4} -> 2/sqrt(2*4); B={2,5} -> 1/sqrt(2*2); C={6} shares nothing
    model = fitted(SKNN(k=10, sample_size=0), [[1, 2, 3, 4], [2, 5], [6, 7]], 7)
    scores = model.score(batch_of([[1, 2]]))[0]
    a, b = 2 / math.sqrt(8), 1 / math.sqrt(4)
    assert scores[3].item() == pytest.approx(a)
    assert scores[5].item() == pytest.approx(b)
    assert scores[2].item() == pytest.approx(a + b)  # in both neighbours
    assert scores[6].item() == 0 and scores[7].item() == 0


def test_only_the_k_nearest_neighbours_contribute() -> None:
    # prefix {1,2}: {1,2,3} is the nearest (2/sqrt(6)), {1,4} next (1/2), {1,5,6,7} last (1/sqrt(8))
    sessions = [[1, 5, 6, 7], [1, 4], [1, 2, 3]]
    scores = fitted(SKNN(k=2, sample_size=0), sessions, 7).score(batch_of([[1, 2]]))[0]
    assert scores[3] > 0 and scores[4] > 0
    assert scores[5] == 0 and scores[6] == 0


def test_only_the_sample_size_most_recent_overlapping_sessions_are_candidates() -> None:
    # all three share item 1 with the prefix [1, 3]; the best match [1, 3] is the oldest by
    # timestamp (not by storage order), so with sample_size=2 it is no candidate
    sessions = [[1, 4], [1, 3], [1, 2]]
    times = [300, 100, 200]
    scores = fitted(SKNN(k=10, sample_size=2), sessions, 9, times).score(batch_of([[1, 3]]))[0]
    assert scores[4] > 0 and scores[2] > 0
    assert scores[3] == 0
    every = fitted(SKNN(k=10, sample_size=0), sessions, 9, times).score(batch_of([[1, 3]]))[0]
    assert every[3].item() == pytest.approx(1.0)  # cosine of [1,3] with itself


def test_sample_cut_uses_storage_order_for_equal_timestamps() -> None:
    sessions = [[1, 5], [1, 6], [1, 7]]
    scores = fitted(SKNN(k=10, sample_size=1), sessions, 7).score(batch_of([[1]]))[0]
    assert torch.nonzero(scores[1:] > 0).flatten().add(1).tolist() == [1, 7]


def test_v_sknn_weights_the_last_item_more() -> None:
    # prefix [1, 2]: a session sharing the last item (2) is more similar than one sharing item 1
    sessions = [[1, 3], [2, 4]]
    model = fitted(VSKNN(k=10, sample_size=0), sessions, 4)
    scores = model.score(batch_of([[1, 2]]))[0]
    assert scores[4] > scores[3] > 0
    assert scores[3].item() == pytest.approx(0.5 / 2 * 0.5)  # w(1)=1/2, /|p|=2, decay 1/step=1/2
    assert scores[4].item() == pytest.approx(1.0 / 2 * 1.0)
    plain = fitted(SKNN(k=10, sample_size=0), sessions, 4).score(batch_of([[1, 2]]))[0]
    assert plain[3] == plain[4]  # SKNN cannot tell them apart


def test_v_sknn_idf_weighting_multiplies_each_vote_by_the_item_idf() -> None:
    # 4 sessions; clicks: item 1 x3, item 3 x1, item 4 x2 -> idf = log(4/3), log(4), log(2)
    sessions = [[1, 3], [1, 4], [1, 4], [2, 5]]
    prefix = [[1]]
    plain = fitted(VSKNN(k=10, sample_size=0), sessions, 5).score(batch_of(prefix))[0].double()
    idf = fitted(VSKNN(k=10, sample_size=0, idf_weighting=5), sessions, 5).score(batch_of(prefix))[0].double()
    factor = {1: 1 + 5 * math.log(4 / 3), 3: 1 + 5 * math.log(4), 4: 1 + 5 * math.log(2)}
    for item, f in factor.items():
        assert idf[item].item() == pytest.approx(plain[item].item() * f, rel=1e-6)
    assert idf[3] / idf[4] > plain[3] / plain[4]  # the rarer item gains on the more common one
    assert idf[2] == idf[5] == 0  # no neighbour holds them


def test_position_and_score_weightings() -> None:
    pos, length = np.array([1, 2, 3, 4]), np.array([4, 4, 4, 4])
    np.testing.assert_allclose(position_weights("div", pos, length), [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(position_weights("linear", pos, length), [0.7, 0.8, 0.9, 1.0])
    assert position_weights("linear", np.array([1]), np.array([15]))[0] == 0.0  # clipped, not negative
    np.testing.assert_allclose(distance_decay("div", np.array([1, 2, 4])), [1, 0.5, 0.25])
    np.testing.assert_allclose(distance_decay("quadratic", np.array([1, 2])), [1, 0.25])
    # session-rec's linear vote decay, kept exactly: negative from 11 to 100, then 0
    np.testing.assert_allclose(distance_decay("linear", np.array([1, 10, 12, 100, 101])), [0.9, 0, -0.2, -9, 0], atol=1e-12)


def test_stan_spw_prefers_neighbours_of_recent_prefix_items() -> None:
    sessions = [[1, 3], [2, 4]]
    model = fitted(STAN(k=10, sample_size=0, lambda_snh=None, lambda_inh=None), sessions, 4)
    scores = model.score(batch_of([[1, 2]]))[0]
    assert scores[4] > scores[3] > 0
    w1, w2 = math.exp(-1 / 1.02), 1.0
    norm = math.sqrt(w1**2 + w2**2)
    assert scores[3].item() == pytest.approx(w1 / (norm * math.sqrt(2)))
    flat = fitted(STAN(k=10, sample_size=0, lambda_spw=None, lambda_snh=None, lambda_inh=None), sessions, 4)
    s = flat.score(batch_of([[1, 2]]))[0]
    assert s[3] == s[4]


def test_stan_snh_prefers_recent_neighbours() -> None:
    sessions = [[1, 3], [1, 4]]
    times = [0, 10 * DAY]  # [1,4] is ten days more recent
    model = fitted(STAN(k=10, sample_size=0, lambda_spw=None, lambda_inh=None, lambda_snh=5.0), sessions, 4, times)
    scores = model.score(batch_of([[1]]))[0]
    assert scores[4] > scores[3] > 0
    assert (scores[3] / scores[4]).item() == pytest.approx(math.exp(-10 / 5))
    off = fitted(STAN(k=10, sample_size=0, lambda_spw=None, lambda_inh=None, lambda_snh=None), sessions, 4, times)
    s = off.score(batch_of([[1]]))[0]
    assert s[3] == s[4]


def test_stan_inh_prefers_items_close_to_the_shared_item() -> None:
    # neighbour [1, 2, 3, 4]: shared item 1 at position 1; 2 is right after it, 4 three later
    model = fitted(STAN(k=10, sample_size=0, lambda_spw=None, lambda_snh=None, lambda_inh=2.05), [[1, 2, 3, 4]], 4)
    scores = model.score(batch_of([[1]]))[0]
    assert scores[2] > scores[3] > scores[4] > 0
    assert (scores[4] / scores[2]).item() == pytest.approx(math.exp(-2 / 2.05))
    # the anchor is the most recent shared item *in the neighbour*: with prefix [1, 4] it is 4
    scores = model.score(batch_of([[1, 4]]))[0]
    assert scores[3] > scores[2]


def test_scores_shape_and_padding_column() -> None:
    sessions, times, prefixes = random_case(3)
    for cls in (SKNN, VSKNN, STAN):
        model = fitted(cls(), sessions, 25, times)
        scores = model.score(batch_of(prefixes[:4] + [[25]]))
        assert scores.shape == (5, 26) and scores.dtype == torch.float32
        assert torch.all(scores[:, 0] == -torch.inf)
        assert torch.all(torch.isfinite(scores[:, 1:]))


def test_unseen_prefix_items_score_zero() -> None:
    model = fitted(STAN(), [[1, 2], [2, 3]], 5)
    scores = model.score(batch_of([[5], [4, 5]]))
    assert torch.all(scores[:, 1:] == 0)


@pytest.mark.parametrize(
    "cls, bad",
    [
        (SKNN, {"k": 0}), (SKNN, {"k": 2.5}), (SKNN, {"sample_size": -1}), (SKNN, {"k": True}),
        (SKNN, {"similarity": "dice"}),
        (VSKNN, {"weighting": "cubic"}), (VSKNN, {"weighting_score": "div_score"}),
        (VSKNN, {"idf_weighting": -1}), (VSKNN, {"idf_weighting": True}), (VSKNN, {"idf_weighting": "5"}),
        (STAN, {"lambda_spw": 0}), (STAN, {"lambda_snh": -1.0}), (STAN, {"lambda_inh": float("nan")}),
        (STAN, {"lambda_inh": "2"}),
    ],
)
def test_bad_hyperparameters_are_config_errors(cls, bad: dict) -> None:
    with pytest.raises(ConfigError):
        cls(**bad)


def test_registered_in_the_simple_group() -> None:
    for name, defaults in [
        ("sknn", {"k": 100, "sample_size": 500, "similarity": "cosine", "backoff": "none"}),
        ("v-sknn", {"k": 100, "sample_size": 1000, "weighting": "div", "weighting_score": "div", "idf_weighting": 0.0,
                    "backoff": "none"}),
        ("stan", {"k": 100, "sample_size": 5000, "lambda_spw": 1.02, "lambda_snh": 5.0, "lambda_inh": 2.05,
                  "backoff": "none"}),
    ]:
        spec = get_model(name)
        assert "simple" in spec.groups
        assert spec.defaults == defaults


def test_beat_pop_on_small_synthetic_data() -> None:
    split = SyntheticGenerator(SyntheticConfig(n_items=200, n_sessions=3000, seed=1)).sample_split()
    data = split.training_data()
    examples = split.test_examples()
    batch = examples.batch(np.arange(min(len(examples), 1500)))

    def hit20(model) -> float:
        model.fit(data, FitContext())
        scores = model.score(batch).float()
        scores[:, 0] = -torch.inf
        top = torch.topk(scores, 20, dim=1).indices
        return float((top == batch.targets[:, None]).any(1).float().mean())

    pop = hit20(Popularity())
    for cls in (SKNN, VSKNN, STAN):
        assert hit20(cls()) > pop + 0.05, cls.__name__


def test_neighbour_ties_ignore_rounding_noise() -> None:
    class Noisy(SKNN):  # two candidates whose similarities differ by rounding noise only
        def similarity(self, pre, cand, w):
            return np.where(cand.session == 0, 0.08923076923076924, 0.08923076923076922)

    model = fitted(Noisy(k=1, sample_size=0), [[1, 2], [1, 3]], 3)  # session 1 is the more recent
    scores = model.score(batch_of([[1]]))[0]
    assert scores[3] > 0 and scores[2] == 0
