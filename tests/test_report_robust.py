"""The report holds up against damaged stores: it names each unusable file with the fix and goes on."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from _report_store import make_store, write_run
from sessbench.cli import main
from sessbench.report import write_report


@pytest.fixture()
def damaged(tmp_path: Path) -> Path:
    runs = make_store(tmp_path / "runs", datasets=("synthetic",), extras=False)
    records = sorted(runs.glob("synthetic__narm__*.json"))
    records[0].write_text(records[0].read_text()[:200])  # truncated mid-write by hand
    bad_types = json.loads(records[1].read_text())
    bad_types["metrics"]["P@20"] = "high"  # a field of the wrong type
    records[1].write_text(json.dumps(bad_types))
    other = sorted(runs.glob("synthetic__srgnn-att__*.json"))[0]
    weird = json.loads(other.read_text())
    weird["seed"] = "two"
    other.write_text(json.dumps(weird))
    (runs / "synthetic__stamp__validated__seed0__c0.ranks.npz").write_bytes(b"PK\x03\x04 not a zip")
    (runs / "notes.json").write_text("[1, 2, 3]")  # any JSON file in the folder
    return runs


def test_damaged_files_are_named_with_the_fix_and_the_report_goes_on(damaged: Path, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "report"
    with caplog.at_level(logging.WARNING, logger="sessbench.report"):
        write_report(damaged, out)
    readme = (out / "README.md").read_text()
    assert "Files the report could not use" in readme
    assert readme.index("Files the report could not use") < readme.index('id="table-1"')
    for fragment in ("is not valid JSON", "metric 'P@20' is 'high', not a number", "field 'seed'",
                     "synthetic\\_\\_stamp\\_\\_validated\\_\\_seed0\\_\\_c0.ranks.npz", "JSON list, not a record", "--resume"):
        assert fragment in readme, fragment
    assert len([r for r in caplog.records if "left out" in r.getMessage()]) == 5
    # the other runs are all there: narm with its one usable seed, stamp without its test ranks
    assert "| narm | 1 |" in (out / "tables" / "table2-synthetic.md").read_text()


def test_report_command_exits_0_on_a_damaged_store(damaged: Path, tmp_path: Path) -> None:
    assert main(["--quiet", "report", "--runs-dir", str(damaged), "--out", str(tmp_path / "r")]) == 0


def test_names_never_break_out_of_markdown(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    evil = "pop\n<img src=x onerror=alert(1)>"
    write_run(runs, "pop", "synthetic", 0, command=f"sessbench run --dataset '{evil}'", params={"note": evil})
    out = tmp_path / "report"
    write_report(runs, out)
    for path in [out / "README.md", *(out / "tables").glob("*.md")]:
        text = re.sub(r"(?ms)^(`{3,})\n.*?^\1$", "", path.read_text())  # fenced blocks show text, not HTML
        assert "<img" not in text, path.name  # escaped as &lt;img, never raw HTML
        for line in text.splitlines():
            assert line.count("`") % 2 == 0, (path.name, line)  # no code span left open by a newline
