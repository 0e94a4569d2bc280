"""`sessbench audit`: its vectorized data checks against plain Python, and planted leaks that
must make it fail (a test session copied into training, a reference model that peeks at its batch)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import leaky_toys as toys
import numpy as np
import pytest

from sessbench import cli
from sessbench.audit import (
    audit_split,
    duplicate_sequences,
    format_audit,
    half_widths,
    repeat_clicks,
    sequence_keys,
    shared_sequences,
)
from sessbench.data.sessions import SessionSet
from sessbench.testing import KitOptions, kit_split

SESSIONS = [[1, 2, 3], [3, 2, 1], [1, 2, 3], [4, 4], [5, 1, 5, 1, 2], [2], [1, 2, 3, 4]]


def test_sequence_keys_tell_sequences_apart_by_content_and_order() -> None:
    keys = sequence_keys(SessionSet.from_lists(SESSIONS))
    rows = {tuple(k) for k in keys.tolist()}
    assert len(rows) == len({tuple(s) for s in SESSIONS}) == 6  # [1, 2, 3] twice, everything else distinct
    assert (keys[0] == keys[2]).all() and not (keys[0] == keys[1]).all()


def test_shared_and_duplicate_sequences_match_plain_python() -> None:
    sets = SessionSet.from_lists(SESSIONS)
    other = SessionSet.from_lists([[3, 2, 1], [9, 9], [2], [1, 2]])
    assert shared_sequences([sets], other).tolist() == [True, False, True, False]
    seen: set[tuple[int, ...]] = set()
    expected = []
    for s in SESSIONS:
        expected.append(tuple(s) in seen)
        seen.add(tuple(s))
    assert duplicate_sequences(sets).tolist() == expected


def test_repeat_clicks_match_plain_python() -> None:
    expected = [item in s[:t] for s in SESSIONS for t, item in enumerate(s)]
    assert repeat_clicks(SessionSet.from_lists(SESSIONS)).tolist() == expected


def test_half_widths_iid_and_clustered() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(400)
    iid, alone = half_widths(x, np.arange(400))
    assert iid == pytest.approx(1.959963984540054 * x.std(ddof=1) / 20)
    assert alone == pytest.approx(iid)  # one example per session: clustering changes nothing
    _, paired = half_widths(np.repeat(x[:200], 2), np.repeat(np.arange(200), 2))
    iid_paired, _ = half_widths(np.repeat(x[:200], 2), np.arange(400))
    assert paired > 1.3 * iid_paired  # two identical prefixes per session: about sqrt(2) wider


@pytest.fixture(scope="module")
def split():
    return kit_split(KitOptions())


def test_a_clean_split_passes(split) -> None:
    report = audit_split(split)
    assert not report.failed
    checks = [f.check for f in report.findings]
    assert checks == ["test-size", "repeat-share", "unseen-items", "shared-session-ids", "shared-sequences",
                      "time-order-test", "time-order-validation", "duplicates", "batch-company"]
    size = report.findings[0].values
    assert size["P@20"]["half_width_sessions"] > 0 and size["test_prefixes"] == len(split.test_examples())
    assert "no check failed" in format_audit(report)


@pytest.mark.parametrize("new_id", [False, True])
def test_a_test_session_copied_into_training_fails(split, new_id: bool) -> None:
    report = audit_split(toys.copy_test_session_into_training(split, which=5, new_id=new_id))
    failed = {f.check for f in report.failed}
    assert failed == ({"time-order-test"} if new_id else {"shared-session-ids", "time-order-test"})
    shared = next(f for f in report.findings if f.check == "shared-sequences")
    assert shared.values["shared"] >= 1
    text = format_audit(report)
    assert "FAIL  time-order-test" in text and "check(s) failed" in text


def test_a_reference_model_that_peeks_at_its_batch_fails(split) -> None:
    report = audit_split(split, reference=toys.BatchPeeker)
    assert [f.check for f in report.failed] == ["batch-company"]
    assert "alone and at position" in report.failed[0].summary


def test_training_out_of_time_order_and_repeated_ids_fail(split) -> None:
    reversed_train = split.train.subset(np.arange(split.train.n_sessions)[::-1])
    assert "time-order-validation" in {f.check for f in audit_split(replace(split, train=reversed_train)).failed}
    ids = split.test.session_ids.copy()
    ids[1] = ids[0]
    test = SessionSet(split.test.offsets, split.test.items, split.test.timestamps, ids)
    assert [f.check for f in audit_split(replace(split, test=test)).failed] == ["duplicates"]


def test_cli_exits_1_with_one_line_per_failed_check(split, monkeypatch, capsys) -> None:
    assert cli.main(["audit", "synthetic:n_items=60,n_sessions=400"]) == 0
    assert "no check failed" in capsys.readouterr().out
    planted = toys.copy_test_session_into_training(split, which=5)
    monkeypatch.setattr(cli, "_load", lambda args: SimpleNamespace(split=planted, request=SimpleNamespace(key="planted")))
    assert cli.main(["audit", "planted"]) == 1
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.strip().startswith("FAIL")] == [
        "shared-session-ids", "time-order-test"]
    assert cli.main(["audit", "planted", "--json"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["failed"] == ["shared-session-ids", "time-order-test"] and record["ok"] is False


def test_unknown_reference_model_is_a_user_error(capsys) -> None:
    assert cli.main(["audit", "synthetic", "--model", "spop"]) == 2
    assert "Did you mean 's-pop'" in capsys.readouterr().err


def test_audit_of_the_yoochoose_sample(shared_data: Path) -> None:
    from sessbench.data.registry import load_dataset, parse_dataset

    loaded = load_dataset(parse_dataset("yoochoose64"), shared_data / "yoochoose-sample", None)
    report = audit_split(loaded.split)
    assert not report.failed
    values = {f.check: f.values for f in report.findings}
    assert values["test-size"]["test_prefixes"] == 10_102 and values["test-size"]["test_sessions"] == 3_403
    assert values["repeat-share"]["share"] == pytest.approx(0.343, abs=0.001)
    # prefixes of one session are correlated: the clustered half-width is wider than the i.i.d. one
    p20 = values["test-size"]["P@20"]
    assert p20["half_width_sessions"] > 1.2 * p20["half_width_iid"]


def test_publish_stores_each_splits_audit_and_the_report_shows_it(tmp_path) -> None:
    """publish builds the audit from the data beside the example table; the report prints it."""
    from sessbench.cli import main
    from sessbench.publish import publish_runs
    from sessbench.report import write_report

    data = "synthetic:n_sessions=300,n_items=40"
    runs, store = tmp_path / "runs", tmp_path / "store"
    assert main(["--quiet", "run", "--models", "pop", "--dataset", data, "--runs-dir", str(runs)]) == 0
    for path in (runs / "splits").glob("*.audit.json"):
        path.unlink()  # a grid writes example tables; audits come with publishing
    records = list(runs.glob("*.json"))
    for path in records:  # pretend a clean commit made them (the test checkout may be dirty)
        import json

        rec = json.loads(path.read_text())
        rec["environment"]["git"] = {"commit": "0" * 40, "dirty": False}
        path.write_text(json.dumps(rec))
    summary = publish_runs(runs, store, data_dir=tmp_path)
    assert not summary.tables_missing and list((store / "splits").glob("*.audit.json"))
    write_report(store, tmp_path / "report")
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "Data audits" in readme and "batch-company" in readme
