"""The HTML report in a real browser: headless Chromium opens index.html from disk, with no
server, and every table and image must be rendered (images decoded, boxes of non-zero size).

Skips where no Chromium is installed (.ci/run installs the Debian package
`chromium-headless-shell`; set SESSBENCH_CHROMIUM to use another binary).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _report_store import make_store
from sessbench.report import write_report

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell")

# Appended to a copy of the page (the report itself has no script): after load, it records
# what the browser actually rendered into a <pre> that --dump-dom prints.
CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const box = e => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const inClosedDetails = e => { const d = e.closest('details'); return d !== null && !d.open; };
  const out = {
    title: document.title,
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, natural: i.naturalWidth, box: box(i)})),
    tables: [...document.querySelectorAll('table')].map(t => ({
      name: t.dataset.table, rows: t.tBodies[0].rows.length, folded: inClosedDetails(t), box: box(t),
      firstCell: t.tBodies[0].rows.length ? t.tBodies[0].rows[0].cells[0].innerText : ''})),
  };
  const pre = document.createElement('pre');
  pre.id = 'report-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def find_browser() -> str | None:
    override = os.environ.get("SESSBENCH_CHROMIUM")
    if override:
        return override
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def rendered(browser: str, page: Path, profile: Path) -> dict:
    args = [browser, "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--window-size=1280,2000", "--virtual-time-budget=15000", "--dump-dom", page.as_uri()]
    if "headless-shell" not in Path(browser).name and "headless_shell" not in Path(browser).name:
        args.insert(1, "--headless")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    match = re.search(r'<pre id="report-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"the browser printed no check (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


def test_browser_shows_every_table_and_image(tmp_path: Path) -> None:
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium found (install the Debian package chromium-headless-shell, or set SESSBENCH_CHROMIUM)")
    runs = make_store(tmp_path / "runs", models=("pop", "s-pop", "srgnn-l", "srgnn-att", "srgnn", "srgnn-fc"))
    out = tmp_path / "results"
    write_report(runs, out, resamples=99)
    page = out / "index.html"
    text = page.read_text()
    assert "<script" not in text  # the report runs nothing in the reader's browser
    checked = tmp_path / "checked.html"  # beside nothing: proves the page needs no other file
    checked.write_text(text.replace("</body>", CHECK_SCRIPT + "\n</body>"))
    result = rendered(browser, checked, tmp_path / "profile")

    assert result["title"] == "sessbench results"
    n_tables = len(list((out / "tables").glob("*.csv")))
    assert len(result["tables"]) == n_tables
    for table in result["tables"]:
        assert table["rows"] > 0, table
        if not table["folded"]:  # tables in a closed <details> are not laid out until opened
            assert table["box"][0] > 50 and table["box"][1] > 20, table
    names = {t["name"] for t in result["tables"]}
    assert {"table1-datasets", "table2-synthetic", "table2-yoochoose4", "significance-yoochoose4"} <= names
    n_figures = len(list((out / "figures").glob("*.svg")))
    assert n_figures >= 4 and len(result["images"]) == n_figures
    for image in result["images"]:
        assert image["complete"] and image["natural"] > 100, image  # decoded, not a broken-image icon
        assert image["box"][0] > 200 and image["box"][1] > 100, image
