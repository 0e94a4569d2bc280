"""Saved recommendation lists: tie-complete top-K, export (CSV/Parquet), re-evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sessbench.cli import main
from sessbench.data.registry import load_dataset, parse_dataset
from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import DataFormatError, SessbenchError
from sessbench.evaluation import _tied_top_lists, evaluate_scores_fn
from sessbench.recs import (
    RecLists,
    evaluate_lists,
    export_lists,
    format_evaluation,
    from_top_lists,
    list_rank_counts,
    load_lists,
    read_lists,
)

# many items with equal training counts: POP ties at the cut-off, and Item-KNN scores whole rows
# 0 (a cap of 20 x 20 = n_items items keeps every tie group whole, so nothing is truncated)
DATASET = "synthetic:n_sessions=300,n_items=400"
# float64 scores (pop, s-pop), float32 (item-knn, the rules, the neighbourhoods)
MODELS = ("pop", "s-pop", "item-knn", "sr", "v-sknn")


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("recs")
    runs, cache = root / "runs", root / "cache"
    argv = ["--quiet", "run", "--models", ",".join(MODELS), "--dataset", DATASET, "--runs-dir", str(runs),
            "--cache-dir", str(cache), "--save-recs", "20", "--recs-cap", "20", "--no-memory-check"]
    assert main(argv) == 0
    return runs, cache


def _records(runs: Path) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    return [r for r in recs if r["model"] in MODELS]


def test_saved_lists_reevaluate_exactly(saved_runs: tuple[Path, Path], tmp_path: Path) -> None:
    runs, cache = saved_runs
    split = load_dataset(parse_dataset(DATASET), cache_dir=cache).split
    records = _records(runs)
    assert len(records) == len(MODELS)
    longer = {}
    for rec in records:
        assert rec["recs_file"] == f"{rec['run_id']}.recs.npz" and rec["recs"]["k"] == 20
        assert rec["recs"]["truncated_rows"] == 0
        lists = load_lists(runs / rec["recs_file"])
        assert len(lists) == rec["n_examples"]["all"] and lists.lengths.min() >= 20
        longer[rec["model"]] = int((lists.lengths > 20).sum())
        for suffix in ("csv", "parquet"):
            out = tmp_path / f"{rec['model']}.{suffix}"
            assert main(["recs", "export", rec["run_id"], "--runs-dir", str(runs), "--out", str(out)]) == 0
            if suffix == "parquet":  # list columns, not text
                schema = pq.read_schema(out)
                assert pa.types.is_list(schema.field("Recommendations").type)
                assert pa.types.is_list(schema.field("Scores").type)
            ev = evaluate_lists(read_lists(out, split.item_ids.dtype), split)
            assert ev.ks == (5, 10, 20) and ev.matched_rows == len(lists) and ev.missing_prefixes == 0
            for k in ev.ks:
                for m in (f"P@{k}", f"MRR@{k}"):
                    assert ev.metrics[m] == pytest.approx(rec["metrics"][m], abs=1e-12), (rec["model"], suffix, m)
                    for g in ("short", "long"):
                        assert ev.groups[g][m] == pytest.approx(rec["groups"][g][m], abs=1e-12)
    assert longer["pop"] > 0  # the tie design is exercised: lists longer than K


def test_evaluate_command_prints_matches(saved_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, cache = saved_runs
    rec = next(r for r in _records(runs) if r["model"] == "pop")
    out = tmp_path / "pop.csv"
    assert main(["recs", "export", str(runs / f"{rec['run_id']}.json"), "--out", str(out)]) == 0
    frame = pd.read_csv(out, sep=";", dtype=str)
    assert list(frame.columns) == ["SessionId", "Position", "Recommendations", "Scores"]
    frame.iloc[:3].to_csv(tmp_path / "few.csv", sep=";", index=False)
    capsys.readouterr()
    assert main(["--quiet", "evaluate", "--recs", str(tmp_path / "few.csv"), "--dataset", DATASET,
                 "--cache-dir", str(cache), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["matched_rows"] == 3 and got["missing_prefixes"] == rec["n_examples"]["all"] - 3


# ---------------------------------------------------------------------------- ties by hand

NEG = -np.inf
SCORES = np.array([
    # items 1..8 (column 0 is padding)
    [9, 5, 4, 4, 4, 4, 1, 0, 0],   # target 3: tied with 2, 4, 5 at the cut-off (k=2) -> list of 5
    [9, 1, 1, 1, 1, 1, 1, 1, 1],   # all tied: truncated at the cap (4)
    [9, 0, 0, 0, 0, 0, 0, 3, 2],   # target 1 below the cut-off: a miss at K <= 2
    [9, 7, 6, 5, 4, 3, 2, 1, 0],   # no ties
    [9, NEG, NEG, NEG, 0, NEG, NEG, NEG, NEG],  # target 4 alone on top, the rest -inf (truncated)
])
TARGETS = [3, 8, 1, 2, 4]


def _examples() -> tuple[SessionSet, object]:
    sessions = SessionSet.from_lists([[5, t] for t in TARGETS], session_ids=[101, 102, 103, 104, 105])
    return sessions, sessions.examples()


def test_tied_top_lists_keep_the_tie_group() -> None:
    items, _, length, n_tied = _tied_top_lists(torch.tensor(SCORES), 2, 4)
    assert length.tolist() == [4, 4, 2, 2, 4] and n_tied.tolist() == [5, 8, 2, 2, 8]
    assert items[0, :4].tolist() == [1, 2, 3, 4]  # 5 tied items, cap 4: lowest indices first
    assert items[2, :2].tolist() == [7, 8] and items[3, :2].tolist() == [1, 2]
    assert items[4, :4].tolist() == [4, 1, 2, 3]  # score first, then item index
    items, _, length, n_tied = _tied_top_lists(torch.tensor(SCORES), 2, 10)
    assert items[0, :5].tolist() == [1, 2, 3, 4, 5] and length[0] == 5


def _as_split(test: SessionSet, item_ids: np.ndarray) -> Split:
    """A split whose test sessions are `test` (training is irrelevant to saving lists)."""
    return Split(name="hand", train=test, test=test, n_items=len(item_ids) - 1, item_ids=item_ids)


def test_hand_built_scores_reevaluate_exactly_except_flagged_rows() -> None:
    _, examples = _examples()
    table = torch.tensor(SCORES)
    res = evaluate_scores_fn(lambda b: table[torch.from_numpy(b.example_index)], examples, n_items=8,
                             ks=(1, 2), recs_k=2, recs_cap=5, batch_size=2)
    assert res.ranks.greater.tolist() == [1, 0, 2, 1, 0] and res.ranks.equal.tolist() == [3, 7, 5, 0, 0]
    item_ids = np.arange(9) * 10 + 7  # raw ids differ from indices
    lists = from_top_lists(res.recs, examples, _as_split(examples.sessions, item_ids))
    assert lists.session_ids.tolist() == [101, 102, 103, 104, 105] and lists.positions.tolist() == [0] * 5
    assert lists.truncated.tolist() == [False, True, False, False, True]
    assert lists.items[:5].tolist() == [17, 27, 37, 47, 57]
    row_target = examples.targets
    greater, equal, found = list_rank_counts(lists, (lists.items - 7) // 10, row_target, 2)
    assert found.tolist() == [True, False, False, True, True]
    ok = ~lists.truncated
    assert greater[ok].tolist() == [1, 2, 1] and equal[ok].tolist() == [3, 0, 0]
    # through the same RankCounts arithmetic: identical metrics on the untruncated rows
    from sessbench.evaluation import RankCounts

    mine = RankCounts(greater, equal, examples.prefix_lengths).select(ok).metrics((1, 2))
    theirs = res.ranks.select(ok).metrics((1, 2))
    assert mine == pytest.approx(theirs, abs=1e-12)


def test_truncated_tie_groups_evaluate_exactly_where_the_tie_count_allows() -> None:
    # 8 items tie; cap 4 lists items 1-4. Target 2 (listed): exact. Target 7 (cut): a miss.
    table = torch.tensor([[9] + [1.0] * 8, [9] + [1.0] * 8])
    sessions = SessionSet.from_lists([[5, 2], [5, 7]], session_ids=[1, 2])
    examples = sessions.examples()
    res = evaluate_scores_fn(lambda b: table[torch.from_numpy(b.example_index)], examples, n_items=8,
                             ks=(2,), recs_k=2, recs_cap=4)
    lists = from_top_lists(res.recs, examples, _as_split(sessions, np.arange(9)))
    assert lists.truncated.tolist() == [True, True] and lists.n_tied.tolist() == [8, 8]
    greater, equal, found = list_rank_counts(lists, lists.items, examples.targets, 2)
    assert found.tolist() == [True, False]
    assert (greater[0], equal[0]) == (0, 7) == (res.ranks.greater[0], res.ranks.equal[0])
    assert greater[1] >= 4  # cut, tie group unknown: a miss (the run counted a 2/8 chance)
    # all 8 items tie at or above the cut-off, so the cut target is in the tie group: exact too
    greater, equal, found = list_rank_counts(lists, lists.items, examples.targets, 2, n_items=8)
    assert greater.tolist() == res.ranks.greater.tolist() and equal.tolist() == res.ranks.equal.tolist()
    # and a tie group that is not the whole catalogue leaves a cut target a miss
    table[1, 8] = 0.5  # item 8 now scores below the tie: 7 items tie, fewer than n_items
    res = evaluate_scores_fn(lambda b: table[torch.from_numpy(b.example_index)], examples, n_items=8,
                             ks=(2,), recs_k=2, recs_cap=4)
    lists = from_top_lists(res.recs, examples, _as_split(sessions, np.arange(9)))
    greater, _, _ = list_rank_counts(lists, lists.items, examples.targets, 2, n_items=8)
    assert lists.n_tied.tolist() == [8, 7] and greater[1] >= 4


# ---------------------------------------------------------------------------- matching


def _split() -> Split:
    train = SessionSet.from_lists([[1, 2, 3], [2, 3]], session_ids=[1, 2])
    test = SessionSet.from_lists([[1, 2, 3], [3, 1]], session_ids=[500, 600])
    return Split(name="tiny", train=train, test=test, n_items=3, item_ids=np.array([0, 70, 80, 90]))


def test_evaluate_reports_unmatched_rows_and_missing_prefixes(tmp_path: Path) -> None:
    # test prefixes: (500, 1) -> 90, (500, 0) -> 80, (600, 0) -> 70
    path = tmp_path / "other.csv"
    path.write_text("SessionId;Position;Recommendations;Scores\n"
                    "500;1;90,80;0.9,0.5\n"        # hit at rank 1
                    "500;0;70,80,90;1,0.5,0.5\n"   # target 80 tied with 90 at rank 2-3
                    "777;0;70;1\n"                 # no such session
                    "500;x;70;1\n")                # unreadable position
    ev = evaluate_lists(read_lists(path, np.dtype(np.int64)), _split(), ks=(1, 2))
    assert (ev.rows, ev.matched_rows, ev.missing_prefixes) == (4, 2, 1)
    assert ev.unmatched.tolist() == [2, 3] and ev.unmatched_keys[0] == ("777", 0)
    assert ev.metrics["P@1"] == pytest.approx(1 / 3) and ev.metrics["P@2"] == pytest.approx((1 + 0.5) / 3)
    assert ev.metrics["MRR@2"] == pytest.approx((1 + 0.25) / 3)
    text = format_evaluation(ev, str(path))
    assert "1 test prefixes have no row: counted as misses" in text
    assert "2 rows match no test prefix" in text and "(SessionId 777, Position 0)" in text


def test_lists_without_scores_rank_by_order(tmp_path: Path) -> None:
    path = tmp_path / "noscores.parquet"
    pd.DataFrame({"SessionId": [500, 600], "Position": [1, 0], "Recommendations": ["80,90", "70"]}).to_parquet(path)
    ev = evaluate_lists(read_lists(path, np.dtype(np.int64)), _split(), ks=(1, 2))
    assert ev.metrics["P@1"] == pytest.approx(1 / 3) and ev.metrics["MRR@2"] == pytest.approx((0.5 + 1) / 3)


def test_round_trip_of_a_hand_built_list(tmp_path: Path) -> None:
    lists = RecLists(np.array([500, 600]), np.array([1, 0]), np.array([0, 2, 3]), np.array([90, 80, 70]),
                     np.array([0.1, 0.1, 1.0], np.float32), np.array([2, 9]))
    for name in ("l.csv", "l.parquet"):
        back = read_lists(export_lists(lists, tmp_path / name), np.dtype(np.int64))
        assert back.items.tolist() == [90, 80, 70] and back.scores[0] == back.scores[1]
        assert back.truncated.tolist() == [False, True]  # the Tied column carries the tie counts
        assert back.n_tied.tolist() == [2, 9]
    ev = evaluate_lists(back, _split(), ks=(1,))
    # (600, 0)'s tie group is cut but lists its target: exact, so nothing to warn about
    assert ev.truncated_rows == 1 and ev.uncertain_rows == 0 and "truncated" not in format_evaluation(ev, "l")


# ---------------------------------------------------------------------------- bad inputs


def test_missing_columns_and_bad_ids_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("SessionId;Position;Items\n1;0;5\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) Recommendations.*session-rec's layout"):
        read_lists(path, np.dtype(np.int64))
    path.write_text("SessionId;Position;Recommendations\n1;0;5,6\n7;0;8,b\n")
    with pytest.raises(DataFormatError, match=r"row 2 \(SessionId 7\): Recommendations value 'b' is not an integer id"):
        read_lists(path, np.dtype(np.int64))
    path.write_text("SessionId,Position,Recommendations\n1,0,5\n")
    with pytest.raises(DataFormatError, match="looks comma-separated.*';'"):
        read_lists(path, np.dtype(np.int64))
    path.write_text("SessionId;Position;Recommendations;Scores\n1;0;1,2;0.5\n")
    with pytest.raises(DataFormatError, match="1 scores for 2 items"):
        read_lists(path, np.dtype(np.int64))


def test_unknown_run_and_run_without_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recs", "export", "nope", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "no run record 'nope'" in capsys.readouterr().err
    (tmp_path / "r1.json").write_text(json.dumps({"run_id": "r1", "status": "ok"}))
    assert main(["recs", "export", "r1", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "--save-recs" in capsys.readouterr().err
    (tmp_path / "r2.json").write_text(json.dumps({"run_id": "r2", "status": "failed", "error": {"message": "out of memory"}}))
    assert main(["recs", "export", "r2", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "run r2 failed (out of memory)" in capsys.readouterr().err
    assert main(["--quiet", "evaluate", "--recs", str(tmp_path / "missing.csv"), "--dataset", "synthetic"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_no_matching_row_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "none.csv"
    path.write_text("SessionId;Position;Recommendations\n1;0;70\n")
    with pytest.raises(SessbenchError, match="no row of the list file matches"):
        evaluate_lists(read_lists(path, np.dtype(np.int64)), _split())


def test_resume_reruns_finished_runs_that_lack_the_lists(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = ["--quiet", "run", "--models", "pop", "--dataset", "synthetic:n_sessions=200,n_items=100",
            "--runs-dir", str(runs), "--cache-dir", str(tmp_path / "cache"), "--no-memory-check"]
    assert main(base) == 0
    (record,) = [p for p in runs.glob("*.json") if json.loads(p.read_text())["model"] == "pop"]
    assert "recs_file" not in json.loads(record.read_text())
    assert main([*base, "--resume", "--save-recs", "5"]) == 0  # finished, but without lists: runs again
    saved = json.loads(record.read_text())
    assert saved["recs"]["k"] == 5 and (runs / saved["recs_file"]).is_file()
    stamp = record.stat().st_mtime_ns
    assert main([*base, "--resume", "--save-recs", "5"]) == 0  # finished with these lists: skipped
    assert record.stat().st_mtime_ns == stamp
    assert main([*base, "--resume", "--save-recs", "10"]) == 0  # another K: runs again
    assert json.loads(record.read_text())["recs"]["k"] == 10
    assert main([*base, "--resume"]) == 0  # no lists asked for: any finished run counts
    assert json.loads(record.read_text())["recs"]["k"] == 10


def test_truncated_lists_of_a_run_still_reevaluate_exactly(tmp_path: Path) -> None:
    # cap 2 x 20 = 40 of 400 items: SR leaves most items at 0, so most lists are truncated
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    assert main(["--quiet", "run", "--models", "sr", "--dataset", DATASET, "--runs-dir", str(runs), "--cache-dir",
                 str(cache), "--save-recs", "20", "--recs-cap", "2", "--no-memory-check"]) == 0
    (rec,) = [r for r in _records(runs) if r["model"] == "sr"]
    assert rec["recs"]["truncated_rows"] > rec["recs"]["rows"] // 2
    out = tmp_path / "sr.csv"
    assert main(["recs", "export", rec["run_id"], "--runs-dir", str(runs), "--out", str(out)]) == 0
    split = load_dataset(parse_dataset(DATASET), cache_dir=cache).split
    ev = evaluate_lists(read_lists(out, split.item_ids.dtype), split)
    for m, value in ev.metrics.items():
        assert value == pytest.approx(rec["metrics"][m], abs=1e-12), m


def test_real_yoochoose_sample_lists_reevaluate_exactly(shared_data: Path, tmp_path: Path) -> None:
    # the real sample: SR's pruned rules leave ~a quarter of the 10,102 lists truncated (the
    # rest of the catalogue tied at 0), V-SKNN fewer; both must re-evaluate to the run exactly
    data_dir = shared_data / "yoochoose-sample"
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    assert main(["--quiet", "run", "--models", "sr,v-sknn", "--dataset", "yoochoose", "--data-dir", str(data_dir),
                 "--runs-dir", str(runs), "--cache-dir", str(cache), "--save-recs", "20", "--no-memory-check"]) == 0
    split = load_dataset(parse_dataset("yoochoose"), data_dir, cache).split
    records = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    assert {r["model"] for r in records} == {"sr", "v-sknn"}
    for rec in records:
        assert rec["recs"]["rows"] == 10_102 and rec["recs"]["truncated_rows"] > 500
        out = tmp_path / f"{rec['model']}.parquet"
        assert main(["recs", "export", rec["run_id"], "--runs-dir", str(runs), "--out", str(out)]) == 0
        ev = evaluate_lists(read_lists(out, split.item_ids.dtype), split)
        assert ev.matched_rows == 10_102 and ev.missing_prefixes == 0 and len(ev.unmatched) == 0
        for m, value in ev.metrics.items():
            assert value == pytest.approx(rec["metrics"][m], abs=1e-12), (rec["model"], m)


def _text_id_log(path: Path) -> Path:
    """A click log with text session and item ids: 400 sessions over 20 days."""
    rng = np.random.default_rng(0)
    rows = ["session_id,item_id,timestamp"]
    for s in range(400):
        start = 1_704_067_200 + s * 4_320
        for t in range(int(rng.integers(2, 6))):
            rows.append(f"sess-{s:05d},item{int(rng.integers(1, 40))},{start + t}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_text_session_ids_are_exported_raw_and_matched(tmp_path: Path) -> None:
    log = _text_id_log(tmp_path / "log.csv")
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    dataset = f"clicks:{log}"
    assert main(["--quiet", "run", "--models", "pop", "--dataset", dataset, "--runs-dir", str(runs), "--cache-dir",
                 str(cache), "--save-recs", "5", "--no-memory-check"]) == 0
    (rec,) = [r for r in (json.loads(p.read_text()) for p in runs.glob("*.json")) if r["model"] == "pop"]
    out = tmp_path / "pop.csv"
    assert main(["recs", "export", rec["run_id"], "--runs-dir", str(runs), "--out", str(out)]) == 0
    frame = pd.read_csv(out, sep=";", dtype=str)
    assert frame["SessionId"].str.startswith("sess-").all()  # the log's ids, not internal codes
    split = load_dataset(parse_dataset(dataset), cache_dir=cache).split
    ev = evaluate_lists(read_lists(out, split.item_ids.dtype), split)
    assert ev.matched_rows == len(frame) and ev.missing_prefixes == 0
    assert ev.metrics == pytest.approx({k: rec["metrics"][k] for k in ev.metrics}, abs=1e-12)


def test_k_above_the_saved_k_is_refused(saved_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    runs, cache = saved_runs
    rec = next(r for r in _records(runs) if r["model"] == "sr")
    argv = ["evaluate", "--recs", str(runs / rec["recs_file"]), "--dataset", DATASET, "--cache-dir", str(cache)]
    assert main([*argv, "--ks", "5,50"]) == 2
    err = capsys.readouterr().err
    assert "K=50 is above the K=20" in err and "--ks up to 20" in err and "--save-recs 50" in err
    assert main([*argv, "--ks", "5,20"]) == 0


def test_saved_lists_refuse_another_split(saved_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, _ = saved_runs
    rec = next(r for r in _records(runs) if r["model"] == "pop")
    other = "synthetic:n_sessions=300,n_items=400,seed=1"
    assert main(["evaluate", "--recs", str(runs / rec["recs_file"]), "--dataset", other,
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "--dataset synthetic:n_items=400,n_sessions=300 " in capsys.readouterr().err  # the canonical key


def test_integer_session_ids_match_as_numbers(tmp_path: Path) -> None:
    # test prefixes: (500, 1) -> 90, (500, 0) -> 80, (600, 0) -> 70; "0500" is session 500
    path = tmp_path / "padded.csv"
    path.write_text("SessionId;Position;Recommendations\n0500;1;90\n500.0;0;80\nabc;0;70\n")
    ev = evaluate_lists(read_lists(path, np.dtype(np.int64)), _split(), ks=(1,))
    assert ev.matched_rows == 2 and len(ev.unmatched) == 1 and ev.metrics["P@1"] == pytest.approx(2 / 3)


def test_empty_and_short_rows_are_evaluated_as_given(tmp_path: Path) -> None:
    # test prefixes: (500, 1) -> 90, (500, 0) -> 80, (600, 0) -> 70
    path = tmp_path / "short.csv"
    path.write_text("SessionId;Position;Recommendations\n500;1;\n500;0;80,90\n600;0;90\n")
    ev = evaluate_lists(read_lists(path, np.dtype(np.int64)), _split(), ks=(1, 2))
    assert ev.matched_rows == 3 and ev.short_rows == 2  # the empty row and the one-item row
    assert ev.metrics["P@2"] == pytest.approx(1 / 3)  # only (500, 0) hits
    assert "2 matched rows hold fewer than K=2 items" in format_evaluation(ev, "short.csv")


@pytest.mark.parametrize("ks", ["0", "5,x", ","])
def test_bad_ks_are_clear(ks: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.csv"
    path.write_text("SessionId;Position;Recommendations\n1;0;5\n")
    assert main(["evaluate", "--recs", str(path), "--dataset", "synthetic", "--ks", ks]) == 2
    assert "comma list of integers >= 1, e.g. --ks 5,10,20" in capsys.readouterr().err
