"""`sessbench report` on a realistic fake runs store: every artefact, its numbers, its honesty."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _report_store import EVIL, SEEDS, make_store, write_run
from sessbench.cli import main
from sessbench.report import write_report
from sessbench.results import iter_records

RESAMPLES = 499


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    write_report(store, out, resamples=RESAMPLES)
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_every_table_and_figure_in_every_format(report: Path) -> None:
    tables = [
        "table1-datasets", "table2-synthetic", "table2-yoochoose4", "significance-synthetic", "significance-yoochoose4",
        "ablation-connection", "ablation-representation", "short-long-synthetic", "short-long-yoochoose4",
        "short-long-yoochoose4-paper", "cost-synthetic", "cost-yoochoose4", "environments", "configs", "runs", "failed-runs",
    ]
    for name in tables:
        for ext in ("csv", "tex", "md"):
            assert (report / "tables" / f"{name}.{ext}").is_file(), f"{name}.{ext}"
        assert r"\toprule" in (report / "tables" / f"{name}.tex").read_text()
    figures = ["ablation-connection", "ablation-representation", "short-long-synthetic", "short-long-yoochoose4",
               "short-long-yoochoose4-paper"]
    for stem in figures:
        assert (report / "figures" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (report / "figures" / f"{stem}.svg").read_text()
        assert "<svg" in svg and "P@20 (%)" in svg and "MRR@20 (%)" in svg  # labelled axes
    readme = (report / "README.md").read_text()
    for stem in figures:
        assert f"](figures/{stem}.png)" in readme  # inline images
    html = (report / "index.html").read_text()
    assert html.count("data:image/svg+xml;base64,") == len(figures)
    assert html.count("<table data-table=") == len(list((report / "tables").glob("*.csv")))
    assert 'src="figures/' not in html and "http://" not in html and "https://" not in html  # self-contained


def test_table2_numbers_come_from_the_records(store: Path, report: Path) -> None:
    records = [r for r in iter_records(store) if r["dataset"] == "yoochoose4" and r["status"] == "ok"]
    rows = {(r["model"], r["protocol"]): r for r in _csv(report / "tables" / "table2-yoochoose4.csv")}
    for model in ("pop", "narm", "srgnn", "srgnn-att"):
        values = [100 * r["metrics"]["MRR@20"] for r in records if r["model"] == model and r["protocol"] == "validated"]
        row = rows[(model, "validated")]
        assert row["seeds"] == str(len(SEEDS))
        assert float(row["MRR@20 mean (%)"]) == pytest.approx(np.mean(values), abs=1e-4)
        assert float(row["MRR@20 std (%)"]) == pytest.approx(np.std(values, ddof=1), abs=1e-4)
    # the paper's values beside ours; a sample split gets no difference column
    assert rows[("srgnn", "validated")]["paper MRR@20"] == "31.89" and rows[("narm", "validated")]["paper P@20"] == "69.73"
    assert not any(k.startswith("Δ") for k in rows[("srgnn", "validated")])
    # the paper protocol's row shows the best over epochs, and is marked
    paper_rec = next(r for r in records if r["protocol"] == "paper")
    assert float(rows[("srgnn", "paper")]["P@20 mean (%)"]) == pytest.approx(100 * paper_rec["paper_best"]["P@20"], abs=1e-4)
    md = (report / "tables" / "table2-yoochoose4.md").read_text()
    assert "| srgnn† |" in md and "paper protocol" in md
    # the failed run is a row, not silently dropped
    assert rows[("gru4rec", "validated")]["failed runs"] == "1"


def _md_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a rendered Markdown table, keyed by header."""
    lines = [x for x in path.read_text().splitlines() if x.startswith("| ")]
    header = [h.strip() for h in lines[0].strip("|").split(" | ")]
    return [dict(zip(header, (c.strip() for c in x.strip("|").split(" | ")))) for x in lines[1:]]


def test_best_per_column_is_marked(report: Path) -> None:
    rows = _csv(report / "tables" / "table2-yoochoose4.csv")
    md = _md_rows(report / "tables" / "table2-yoochoose4.md")
    for metric in ("P@20", "MRR@20"):
        validated = [r for r in rows if r["protocol"] == "validated" and r[f"{metric} mean (%)"]]
        best = max(validated, key=lambda r: float(r[f"{metric} mean (%)"]))
        bold = [r["model"] for r in md if r[metric].startswith("**")]
        assert bold == [best["model"]], (metric, bold)
    tex = (report / "tables" / "table2-yoochoose4.tex").read_text()
    assert r"\textbf{" in tex


def test_oracle_row_and_share_on_synthetic(report: Path) -> None:
    rows = {r["model"]: r for r in _csv(report / "tables" / "table2-synthetic.csv")}
    assert rows["oracle"]["share of oracle P@20"] == "1.000"
    share = float(rows["srgnn"]["P@20 mean (%)"]) / float(rows["oracle"]["P@20 mean (%)"])
    assert float(rows["srgnn"]["share of oracle P@20"]) == pytest.approx(share, abs=6e-4)
    assert rows["pop"]["normalized gain P@20"] == "0.000"
    assert "paper P@20" not in rows["srgnn"]  # the paper has no synthetic column: none is shown


def test_significance_against_srgnn(report: Path) -> None:
    rows = {r["model"]: r for r in _csv(report / "tables" / "significance-yoochoose4.csv")}
    assert rows["srgnn"]["MRR@20 - srgnn (points)"] == ""  # the reference itself
    pop = rows["pop"]
    assert pop["significant at 0.05"] == "yes" and float(pop["p Holm"]) <= 0.05
    assert float(pop["MRR@20 - srgnn (points)"]) < -10
    # Holm: adjusted >= raw, and the smallest raw p is multiplied by the number of comparisons
    tested = [r for r in rows.values() if r["p"]]
    assert all(float(r["p Holm"]) >= float(r["p"]) - 1e-12 for r in tested)
    smallest = min(float(r["p"]) for r in tested)
    assert min(float(r["p Holm"]) for r in tested) == pytest.approx(min(1.0, len(tested) * smallest), rel=1e-3)
    # the difference equals the difference of the seed-averaged MRR@20
    t2 = {(r["model"], r["protocol"]): r for r in _csv(report / "tables" / "table2-yoochoose4.csv")}
    diff = float(t2[("narm", "validated")]["MRR@20 mean (%)"]) - float(t2[("srgnn", "validated")]["MRR@20 mean (%)"])
    assert float(rows["narm"]["MRR@20 - srgnn (points)"]) == pytest.approx(diff, abs=1e-3)
    assert t2[("narm", "validated")]["p Holm"] == rows["narm"]["p Holm"]  # Table 2 shows the same test


def test_short_long_table_covers_every_model(report: Path, store: Path) -> None:
    rows = {r["model"]: r for r in _csv(report / "tables" / "short-long-yoochoose4.csv")}
    ran = {r["model"] for r in iter_records(store) if r["dataset"] == "yoochoose4" and r["status"] == "ok"}
    assert set(rows) == ran
    rec = next(r for r in iter_records(store) if r["run_id"] == "yoochoose4__stamp__validated__seed0__c0")
    vals = [100 * r["groups"]["long"]["P@20"] for r in iter_records(store)
            if r["dataset"] == "yoochoose4" and r["model"] == "stamp" and r["status"] == "ok"]
    assert float(rows["stamp"]["P@20 long mean (%)"]) == pytest.approx(np.mean(vals), abs=1e-4)
    assert rec["n_examples"]["short"] > rec["n_examples"]["long"] > 0


def test_cost_and_provenance(store: Path, report: Path) -> None:
    cost = {r["model"]: r for r in _csv(report / "tables" / "cost-yoochoose4.csv")}
    assert float(cost["pop"]["examples/s"]) > 0 and float(cost["pop"]["peak RSS MB"]) == pytest.approx(702.0)
    runs = _csv(report / "tables" / "runs.csv")
    assert len(runs) == len(list(iter_records(store)))
    row = next(r for r in runs if r["model"] == "srgnn" and r["dataset"] == "synthetic" and r["seed"] == "2")
    assert row["command"].startswith("sessbench run") and row["commit"].startswith("0123456789ab")
    assert "torch 2.13.0+cpu" in row["versions"]
    configs = _csv(report / "tables" / "configs.csv")
    assert any('"hidden": 100' in c["hyperparameters"] for c in configs)
    readme = (report / "README.md").read_text()
    assert "```\n# C1\n" in readme and "sessbench report --runs-dir" in readme


def test_what_is_missing_is_said(report: Path) -> None:
    readme = (report / "README.md").read_text()
    assert "`yoochoose64` (the paper's dataset" in readme and "no finished run here" in readme
    assert "`diginetica`" in readme
    assert "only a split prepared from a sample" in readme  # yoochoose4 is a sample here
    assert re.search(r"`yoochoose4`: no finished run of .*`item-knn`", readme)
    assert "deliberate failure" in readme  # the failed run is listed


def test_strings_from_records_are_escaped(report: Path) -> None:
    html = (report / "index.html").read_text()
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    readme = (report / "README.md").read_text()
    outside_code = re.sub(r"```.*?```", "", readme, flags=re.S)  # fenced code is shown verbatim, never as HTML
    assert "<script" not in outside_code and "<b>" not in outside_code
    assert "&lt;script&gt;" in outside_code
    tex = (report / "tables" / "configs.tex").read_text()
    assert EVIL not in tex and r"\&" in tex
    configs = _csv(report / "tables" / "configs.csv")
    assert any(EVIL in c["hyperparameters"] for c in configs)  # the CSV keeps the data verbatim


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_tables_compile(report: Path, tmp_path: Path) -> None:
    tables = sorted((report / "tables").glob("*.tex"))
    body = "\n".join(f"\\input{{{p.as_posix()}}}\n\\clearpage" for p in tables)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{longtable}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n"
    )
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_report_is_byte_identical_when_rerun(store: Path, report: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    shutil.copytree(report, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_report(store, report, resamples=RESAMPLES)  # the same folder again
    after = {p.relative_to(report): p.read_bytes() for p in report.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    changed = [str(k) for k in before if before[k] != after[k]]
    assert not changed, changed


def test_stale_files_go_and_foreign_files_stay(tmp_path: Path) -> None:
    runs = make_store(tmp_path / "runs", datasets=("synthetic", "yoochoose4"), models=("pop", "srgnn"), extras=False)
    out = tmp_path / "out"
    write_report(runs, out, resamples=99)
    (out / "mine.txt").write_text("keep me")
    assert (out / "figures" / "short-long-yoochoose4.png").is_file()
    for path in runs.glob("yoochoose4__*"):
        path.unlink()
    write_report(runs, out, resamples=99)
    assert not (out / "figures" / "short-long-yoochoose4.png").exists()
    assert not (out / "tables" / "table2-yoochoose4.csv").exists()
    assert (out / "tables" / "table2-synthetic.csv").is_file() and (out / "mine.txt").read_text() == "keep me"


def test_without_the_reference_or_the_variants_the_report_says_so(tmp_path: Path) -> None:
    runs = make_store(tmp_path / "runs", datasets=("synthetic",), models=("pop", "s-pop"), extras=False)
    out = tmp_path / "out"
    write_report(runs, out, resamples=99)
    readme = (out / "README.md").read_text()
    assert "No significance tests: srgnn has no finished run on synthetic" in readme
    assert "MRR@20 − srgnn" not in readme  # no empty significance column
    assert readme.count("No figure: no dataset has finished runs of at least two of") == 2
    assert not list((out / "figures").glob("ablation-*"))
    # another reference model can be chosen
    write_report(runs, out, resamples=99, reference="s-pop")
    assert "MRR@20 − s-pop" in (out / "README.md").read_text()


def test_empty_store(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    write_report(tmp_path / "runs", tmp_path / "out")
    assert "holds no run records" in (tmp_path / "out" / "README.md").read_text()
    assert (tmp_path / "out" / "index.html").is_file()


def test_ranks_of_another_test_set_are_not_compared(tmp_path: Path) -> None:
    runs = make_store(tmp_path / "runs", datasets=("synthetic",), models=("pop", "srgnn"), extras=False)
    # a record whose ranks cover other examples (e.g. a changed split) must not be paired
    rec = write_run(runs, "narm", "synthetic", 0)
    from sessbench.evaluation import RankCounts
    from sessbench.results import ranks_path

    rc = RankCounts.load(ranks_path(runs, rec["run_id"]))
    rc.select(np.arange(len(rc)) % 2 == 0).save(ranks_path(runs, rec["run_id"]))
    write_report(runs, tmp_path / "out", resamples=99)
    rows = {r["model"]: r for r in _csv(tmp_path / "out" / "tables" / "significance-synthetic.csv")}
    assert rows["narm"]["p"] == "" and "different test examples" in (tmp_path / "out" / "README.md").read_text()


def test_cli_report_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = make_store(tmp_path / "runs", datasets=("synthetic",), models=("pop", "s-pop"), extras=False)
    out = tmp_path / "out"
    assert main(["report", "--runs-dir", str(runs), "--out", str(out), "--reference", "pop", "--resamples", "99"]) == 0
    printed = capsys.readouterr().out
    assert "index.html" in printed and "README.md" in printed
    readme = (out / "README.md").read_text()
    assert "--reference pop --resamples 99" in readme and "99 resamples" in readme
    assert main(["report", "--runs-dir", str(runs), "--out", str(out), "--resamples", "0"]) == 2
    assert main(["report", "--runs-dir", str(runs), "--out", str(out), "--alpha", "1.5"]) == 2


def test_odd_names_reach_the_figures_as_text(tmp_path: Path) -> None:
    """A '$' or markup in a model name is plotted literally (no TeX math parse error) and escaped in SVG."""
    import _report_store

    odd = "my$model_{x}$ <b>"
    _report_store.QUALITY.setdefault(odd, 20.0)
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_run(runs, odd, "synthetic", seed)
        write_run(runs, "srgnn", "synthetic", seed)
    write_report(runs, tmp_path / "out", resamples=99)
    svg = (tmp_path / "out" / "figures" / "short-long-synthetic.svg").read_text()
    assert "my$model_{x}$ &lt;b&gt;" in svg


def test_groups_of_one_model_are_named_by_the_hyperparameters_that_differ() -> None:
    from sessbench.report.tables import config_label, config_labels

    configs = {
        "aaa": {"lr": 0.001, "lr_schedule": "after_epoch", "item_rows": None},
        "bbb": {"lr": 0.001, "lr_schedule": "official_torch2", "item_rows": 37483},
    }
    assert config_label("srgnn", "aaa", {"aaa": configs["aaa"]}) == "srgnn"
    assert config_label("srgnn", "aaa", configs) == "srgnn (item_rows=None, paper's lr timing)"
    assert config_label("srgnn", "bbb", configs) == "srgnn (item_rows=37483, official code's lr timing)"
    same = {"aaa": {"lr": 0.1}, "bbb": {"lr": 0.1}}  # only settings differ: fall back to the id
    assert config_label("srgnn", "bbb", same) == "srgnn (config bbb)"
    # siblings are the configurations of one model in one scope (dataset and protocol) only
    labels = config_labels({
        ("d1", "srgnn", "aaa"): configs["aaa"], ("d1", "srgnn", "bbb"): configs["bbb"],
        ("d2", "srgnn", "aaa"): configs["aaa"], ("d1", "narm", "ccc"): {"lr": 0.5},
    })
    assert labels[("d1", "srgnn", "bbb")] == "srgnn (item_rows=37483, official code's lr timing)"
    assert labels[("d2", "srgnn", "aaa")] == "srgnn" and labels[("d1", "narm", "ccc")] == "narm"
