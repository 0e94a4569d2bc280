"""`sessbench audit DATASET`: the checks a reviewer asks of a split before trusting its numbers.

Each check gives one line with a status:

* ``fail``: the split breaks a guarantee the numbers rest on. A session id in both training and
  test, a test session earlier than the last training session, a validation carve that is not
  the latest part of the training list, a session id twice in one set, or a reference model whose
  scores depend on the other prefixes of its batch. `sessbench audit` exits with 1 when any
  check fails.
* ``ok``: the guarantee holds.
* ``info``: a figure to read, not a verdict. Test size and the 95% confidence half-widths it
  allows, the repeat share of the targets, test items never seen in training, test sessions
  whose item sequence also occurs in training, duplicate sequences.

Identical item sequences in training and test are reported but not failed: short sessions of
popular items repeat by chance (on the full YOOCHOOSE 1/64 split 3,520 of the 5,980 test
sessions of two clicks have a twin in training, and a few of six clicks or more). A test
session *copied* into training keeps its session id and its time, which the id and time-order
checks catch; a copy given a new id and a training-period time cannot be told from a real
session.

Confidence half-widths come from a reference model's per-prefix values (S-POP by default,
fitted in seconds): 1.96 times the standard error of the mean, once treating every prefix as
independent (the binomial half-width for P@20) and once clustered by session (the prefixes of
one session share their input, so the clustered figure is the honest one; its ratio to the
i.i.d. one is the square root of the design effect).

Every data check is vectorized: sequences are compared by 128-bit hashes of their clicks
(`sequence_keys`), grouped with `np.unique`; repeats and ids by sorting. Nothing loops over
sessions or clicks in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from sessbench.data.sessions import Examples, SessionSet, Split
from sessbench.evaluation import RankCounts, _work_buffer, auto_batch_size, rank_counts
from sessbench.models import SessionRecommender, get_model

__all__ = [
    "AuditReport",
    "Finding",
    "audit_split",
    "format_audit",
    "half_widths",
    "repeat_clicks",
    "sequence_keys",
    "shared_sequences",
]

#: the validation carve whose time order is checked (the protocol's default fraction)
VALIDATION_FRACTION = 0.1
#: z of a two-sided 95% interval
Z95 = 1.959963984540054
#: the cut-off of the half-widths and the reference model's figures
K = 20

OK, FAIL, INFO = "ok", "fail", "info"

# splitmix64 constants; two seeds give two independent 64-bit hashes of a sequence
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_SEEDS = ((np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03)),
          (np.uint64(0xA0761D6478BD642F), np.uint64(0xE7037ED1A0B428DB)))


# ---------------------------------------------------------------------------- vectorized data checks


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX[0]
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX[1]
    return x ^ (x >> np.uint64(31))


def sequence_keys(sessions: SessionSet) -> np.ndarray:
    """uint64 [n_sessions, 3]: (length, hash1, hash2) of each session's item sequence.

    Each click hashes (item, position) with splitmix64; a session's hash is the wrapping sum over
    its clicks (a prefix-sum difference, so no Python loop). Equal sequences get equal keys;
    unequal ones collide with probability about 2^-128 per pair.
    """
    rows = sessions.session_index_of_clicks()
    pos = (np.arange(sessions.n_clicks, dtype=np.int64) - sessions.offsets[rows]).astype(np.uint64)
    items = sessions.items.astype(np.uint64)
    keys = np.empty((sessions.n_sessions, 3), dtype=np.uint64)
    keys[:, 0] = sessions.lengths.astype(np.uint64)
    for column, (a, b) in enumerate(_SEEDS, start=1):
        click = _mix64(items * a + (pos + np.uint64(1)) * b)
        total = np.zeros(sessions.n_clicks + 1, dtype=np.uint64)
        np.cumsum(click, out=total[1:])
        keys[:, column] = total[sessions.offsets[1:]] - total[sessions.offsets[:-1]]
    return keys


def _classes(*key_sets: np.ndarray) -> list[np.ndarray]:
    """One int64 class id per row of each key set: equal keys (in any set) share an id."""
    sizes = [len(k) for k in key_sets]
    joined = np.concatenate(key_sets) if key_sets else np.zeros((0, 3), np.uint64)
    if len(joined) == 0:
        return [np.zeros(0, np.int64) for _ in key_sets]
    _, inverse = np.unique(joined, axis=0, return_inverse=True)
    return np.split(inverse.ravel().astype(np.int64), np.cumsum(sizes)[:-1])


def shared_sequences(reference: Sequence[SessionSet], sessions: SessionSet) -> np.ndarray:
    """bool [sessions.n_sessions]: whose item sequence equals a session of a `reference` set."""
    classes = _classes(sequence_keys(sessions), *(sequence_keys(s) for s in reference))
    return np.isin(classes[0], np.concatenate(classes[1:]) if len(classes) > 1 else np.zeros(0, np.int64))


def duplicate_sequences(sessions: SessionSet) -> np.ndarray:
    """bool [n_sessions]: sessions whose item sequence occurred at an earlier index of the set."""
    (cls,) = _classes(sequence_keys(sessions))
    first = np.zeros(len(cls), dtype=bool)
    first[np.unique(cls, return_index=True)[1]] = True
    return ~first


def duplicate_ids(ids: np.ndarray) -> int:
    """Entries of `ids` that repeat an earlier one."""
    return int(len(ids) - len(np.unique(ids)))


def repeat_clicks(sessions: SessionSet) -> np.ndarray:
    """bool [n_clicks]: the click's item was already clicked earlier in the same session.

    Click t >= 1 of a session is the target of its prefix of length t, so over the non-first
    clicks this is "the target repeats an item of its prefix" for every evaluation example.
    """
    rows = sessions.session_index_of_clicks()
    order = np.lexsort((np.arange(sessions.n_clicks), sessions.items, rows))
    same = np.zeros(sessions.n_clicks, dtype=bool)
    same[1:] = (rows[order][1:] == rows[order][:-1]) & (sessions.items[order][1:] == sessions.items[order][:-1])
    out = np.zeros(sessions.n_clicks, dtype=bool)
    out[order] = same
    return out


def target_clicks(sessions: SessionSet) -> np.ndarray:
    """bool [n_clicks]: clicks that are an evaluation target (every click but a session's first)."""
    mask = np.ones(sessions.n_clicks, dtype=bool)
    mask[sessions.offsets[:-1][sessions.lengths > 0]] = False
    return mask


def half_widths(values: np.ndarray, cluster: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """(i.i.d., session-clustered) half-widths of the mean of per-example `values`.

    i.i.d.: z * sd / sqrt(n). Clustered: z * sqrt(G / (G - 1) * sum_g (sum_{e in g} (x_e - mean))^2) / n,
    the cluster-robust standard error of a mean with G clusters (here sessions).
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    iid = z * float(np.std(x, ddof=1)) / math.sqrt(n)
    _, groups = np.unique(cluster, return_inverse=True)
    sums = np.bincount(groups.ravel(), weights=x - x.mean())
    g = len(sums)
    if g < 2:
        return iid, math.nan
    clustered = z * math.sqrt(g / (g - 1) * float(np.sum(sums * sums))) / n
    return iid, clustered


# ---------------------------------------------------------------------------- findings


@dataclass
class Finding:
    """One audit check: its name, status (ok, fail, info), a one-line summary and its figures."""

    check: str
    status: str
    summary: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditReport:
    dataset: str
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status == FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "ok": not self.failed,
            "failed": [f.check for f in self.failed],
            "checks": [{"check": f.check, "status": f.status, "summary": f.summary, **f.values} for f in self.findings],
            "notes": list(self.notes),
        }


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _fit_sets(split: Split) -> list[SessionSet]:
    """What a model may fit on: the training list and, when carved, the validation part."""
    return [split.train] + ([split.valid] if split.valid is not None else [])


def check_shared_ids(split: Split) -> Finding:
    fit_ids = np.concatenate([s.session_ids for s in _fit_sets(split)])
    shared = np.isin(split.test.session_ids, fit_ids)
    n = int(shared.sum())
    first = split.raw_session_ids(split.test.session_ids[shared][:3]).tolist()
    return Finding(
        "shared-session-ids", FAIL if n else OK,
        (f"{n:,} test session ids also occur in training (first: {first}): a test session was copied "
         "into the fit data" if n else f"no test session id occurs in training ({split.test.n_sessions:,} test sessions)"),
        {"test_sessions": split.test.n_sessions, "shared": n},
    )


def check_shared_sequences(split: Split) -> Finding:
    shared = shared_sequences(_fit_sets(split), split.test)
    n = int(shared.sum())
    lengths = split.test.lengths[shared]
    longest = int(lengths.max()) if n else 0
    by_length = {int(k): int(v) for k, v in zip(*np.unique(np.minimum(lengths, 6), return_counts=True))}
    shown = ", ".join(f"{k}{'+' if k == 6 else ''}: {v:,}" for k, v in by_length.items()) or "-"
    return Finding(
        "shared-sequences", INFO,
        (f"{n:,} of {split.test.n_sessions:,} test sessions ({100 * _share(n, split.test.n_sessions):.1f}%) repeat a "
         f"training session's item sequence (by length {shown}; longest {longest}): short sessions of popular "
         "items repeat by chance"),
        {"shared": n, "share": _share(n, split.test.n_sessions), "longest": longest,
         "by_length": {("6+" if k == 6 else str(k)): v for k, v in by_length.items()}},
    )


def check_test_after_training(split: Split) -> Finding:
    fit_times = np.concatenate([s.timestamps for s in _fit_sets(split)])
    last = int(fit_times.max()) if len(fit_times) else None
    early = int((split.test.timestamps < last).sum()) if last is not None else 0
    return Finding(
        "time-order-test", FAIL if early else OK,
        (f"{early:,} of {split.test.n_sessions:,} test sessions are earlier than the last training session"
         if early else "every test session is at or after the last training session"),
        {"earlier": early, "last_training_time": last,
         "first_test_time": int(split.test.timestamps.min()) if split.test.n_sessions else None},
    )


def check_validation_after_rest(split: Split, fraction: float = VALIDATION_FRACTION) -> Finding:
    carved = split if split.valid is not None else split.with_validation(fraction)
    if carved.valid is None:
        return Finding("time-order-validation", INFO, "too few training sessions to carve a validation part")
    last = int(carved.train.timestamps.max())
    early = int((carved.valid.timestamps < last).sum())
    what = "the validation part" if split.valid is not None else f"the validation carve (last {fraction:.0%} of training sessions)"
    return Finding(
        "time-order-validation", FAIL if early else OK,
        (f"{early:,} of {carved.valid.n_sessions:,} sessions of {what} are earlier than the rest of training: "
         "the training list is not in time order" if early else f"{what} is at or after the rest of training"),
        {"earlier": early, "validation_sessions": carved.valid.n_sessions},
    )


def check_duplicates(split: Split) -> Finding:
    sets = {"train": split.train, "test": split.test, **({"valid": split.valid} if split.valid is not None else {})}
    ids = {name: duplicate_ids(s.session_ids) for name, s in sets.items()}
    seqs = {name: int(duplicate_sequences(s).sum()) for name, s in sets.items()}
    bad = {k: v for k, v in ids.items() if v}
    text = "; ".join(f"{name} {seqs[name]:,} of {s.n_sessions:,} ({100 * _share(seqs[name], s.n_sessions):.1f}%)"
                     for name, s in sets.items())
    summary = (f"session ids repeated within a set: {bad}" if bad
               else f"session ids unique; sessions repeating an earlier session's sequence: {text}")
    return Finding("duplicates", FAIL if bad else INFO, summary, {"duplicate_ids": ids, "duplicate_sequences": seqs})


def check_repeat_share(split: Split) -> Finding:
    targets = target_clicks(split.test)
    repeats = int((repeat_clicks(split.test) & targets).sum())
    n = int(targets.sum())
    return Finding(
        "repeat-share", INFO,
        f"{100 * _share(repeats, n):.1f}% of the {n:,} test targets repeat an item of their prefix",
        {"targets": n, "repeats": repeats, "share": _share(repeats, n)},
    )


def check_unseen_items(split: Split) -> Finding:
    seen = np.zeros(split.n_items + 1, dtype=bool)
    for s in _fit_sets(split):
        seen[s.items] = True
    targets = split.test.items[target_clicks(split.test)]
    unseen_targets = int((~seen[targets]).sum())
    test_items = np.unique(split.test.items)
    unseen_items = int((~seen[test_items]).sum())
    return Finding(
        "unseen-items", INFO,
        (f"{100 * _share(unseen_targets, len(targets)):.2f}% of test targets ({unseen_targets:,}) and "
         f"{unseen_items:,} of {len(test_items):,} distinct test items never occur in training"),
        {"unseen_targets": unseen_targets, "targets": len(targets), "unseen_items": unseen_items,
         "test_items": len(test_items)},
    )


# ---------------------------------------------------------------------------- reference-model checks


def _reference(reference: type[SessionRecommender] | str, params: dict[str, Any]) -> tuple[str, Any]:
    """(label, create(overrides)) for a reference model given by class or registered name."""
    if isinstance(reference, str):
        spec = get_model(reference)
        return reference, lambda overrides: spec.create(**{**params, **overrides})
    label = getattr(reference, "name", "") or reference.__name__
    return label, lambda overrides: reference(**{**params, **overrides})


def _rank_counts(model: SessionRecommender, examples: Examples, n_items: int) -> RankCounts:
    """The evaluator's exact tie-aware counts (`rank_counts`) for every example, without the
    coverage and popularity figures an audit does not need (they cost as much again)."""
    greater = np.empty(len(examples), dtype=np.int64)
    equal = np.empty(len(examples), dtype=np.int64)
    work = None
    with model.eval_mode(), torch.no_grad():
        for batch in examples.iter_batches(auto_batch_size(n_items)):
            scores = torch.as_tensor(model.score(batch.prefixes().to(model.device)))
            work = _work_buffer(work, scores[:, 1:])  # one scratch for every batch, as the evaluator
            g, e = rank_counts(scores, batch.targets, buffer=work)
            greater[batch.example_index] = g.cpu().numpy()
            equal[batch.example_index] = e.cpu().numpy()
    return RankCounts(greater, equal, examples.prefix_lengths)


def check_test_size(split: Split, model: SessionRecommender, label: str) -> Finding:
    """Test size and the 95% half-widths of P@20 and MRR@20 at the reference model's level."""
    examples = split.test_examples()
    ranks = _rank_counts(model, examples, split.n_items)
    values: dict[str, Any] = {"test_sessions": split.test.n_sessions, "test_prefixes": len(examples), "reference": label}
    parts = []
    for metric, per_example in ((f"P@{K}", ranks.hit(K)), (f"MRR@{K}", ranks.reciprocal_rank(K))):
        iid, clustered = half_widths(per_example, examples.session_index)
        level = float(per_example.mean())
        values[metric] = {"level": level, "half_width_iid": iid, "half_width_sessions": clustered}
        parts.append(f"{metric} {100 * level:.2f} ± {100 * clustered:.2f} (± {100 * iid:.2f} i.i.d.)")
    return Finding(
        "test-size", INFO,
        (f"{split.test.n_sessions:,} test sessions, {len(examples):,} prefixes; 95% half-widths at {label}'s level, "
         f"clustered by session (if every prefix were independent): {', '.join(parts)} points"),
        values,
    )


def check_reference_batch_company(split: Split, model: SessionRecommender, label: str, probes: int, seed: int) -> Finding:
    """The conformance kit's batch-company check on the dataset's own test prefixes."""
    from sessbench.testing import ConformanceError, check_batch_company, check_stateless, probe_indices

    examples = split.test_examples()
    chosen = probe_indices(examples, probes)
    try:
        check_stateless(model, examples, chosen)
        check_batch_company(model, examples, chosen, rng=np.random.default_rng([seed, 18]))
    except ConformanceError as exc:
        return Finding("batch-company", FAIL, str(exc), {"reference": label, "probes": len(chosen)})
    return Finding(
        "batch-company", OK,
        f"{label}: {len(chosen)} test prefixes score the same alone, in shuffled batches of others and scored again",
        {"reference": label, "probes": len(chosen)},
    )


def audit_split(
    split: Split,
    *,
    name: str | None = None,
    reference: type[SessionRecommender] | str = "s-pop",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    probes: int = 32,
) -> AuditReport:
    """Every audit check on `split`; the reference model (fitted on the CPU as the runner fits
    it) gives the half-widths and is batch-company checked."""
    from sessbench.testing import fit_like_runner

    label, create = _reference(reference, dict(params or {}))
    findings = [check_repeat_share(split), check_unseen_items(split), check_shared_ids(split),
                check_shared_sequences(split), check_test_after_training(split),
                check_validation_after_rest(split), check_duplicates(split)]
    if split.test.n_sessions and len(split.test_examples()):
        model = fit_like_runner(create, split, seed).model
        findings.insert(0, check_test_size(split, model, label))
        findings.append(check_reference_batch_company(split, model, label, probes, seed))
    notes = []
    if isinstance(split.meta.get("timestamps"), str):
        notes.append(f"timestamps: {split.meta['timestamps']}; the time-order checks test that order")
    return AuditReport(name or split.name, findings, notes)


def format_audit(report: AuditReport) -> str:
    """One line per check (status, name, summary), then the verdict."""
    width = max(len(f.check) for f in report.findings) if report.findings else 0
    lines = [f"audit of {report.dataset}"]
    lines += [f"  {f.status.upper() if f.status == FAIL else f.status:<4}  {f.check:<{width}}  {f.summary}"
              for f in report.findings]
    lines += [f"  note: {n}" for n in report.notes]
    failed = report.failed
    lines.append(f"{len(failed)} check(s) failed: {', '.join(f.check for f in failed)}" if failed
                 else f"no check failed ({len(report.findings)} checks)")
    return "\n".join(lines)
