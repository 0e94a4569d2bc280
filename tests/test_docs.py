"""The docs agree with their sources, and their examples run.

* Every generated region of README.md and docs/ (`<!-- sessbench:NAME -->`) equals what
  `scripts/update_docs.py` makes from the committed run store and the benchmark JSONs, so a number
  in the docs that disagrees with the store fails here.
* The README's Python example runs (a doctest on tiny synthetic data), the smoke grid it names
  runs, and the plugin example of docs/extending.md registers and runs a model.
* Every `sessbench ...` command in a shell block of the docs parses with the real argument parser
  (a documented option that does not exist fails), every command and option of the parser is
  named in its section of docs/usage.md (an option nobody documented fails), and every relative
  link points to a file.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE_BLOCK = re.compile(r"^```(?P<lang>[a-z]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)


def _update_docs():
    spec = importlib.util.spec_from_file_location("update_docs", ROOT / "scripts" / "update_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(path: Path, *langs: str) -> list[tuple[str, int]]:
    """The code blocks of a Markdown file in the given languages, with their first line numbers."""
    text = path.read_text()
    return [(m.group("body"), text.count("\n", 0, m.start()) + 2)
            for m in CODE_BLOCK.finditer(text) if m.group("lang") in langs]


# ---------------------------------------------------------------------------- generated regions


def test_docs_agree_with_the_store_and_the_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    code = _update_docs().main(["--check"])
    out = capsys.readouterr().out
    assert code == 0, "generated regions out of date (run python scripts/update_docs.py):\n" + out


def test_every_page_has_regions_and_the_readme_has_the_headline() -> None:
    regions = _update_docs().regions(ROOT)
    names = {name for path, name in regions if path.name == "README.md" and path.parent == ROOT}
    assert {"headline:validated:P@20", "headline:validated:MRR@20", "default-run", "smoke-run"} <= names


def _fake_root(tmp_path: Path, body: str) -> Path:
    root = tmp_path / "repo"
    (root / "results" / "bench").mkdir(parents=True)
    shutil.copy(ROOT / "results" / "bench" / "smoke-run.json", root / "results" / "bench" / "smoke-run.json")
    (root / "README.md").write_text(f"# x\n\n<!-- sessbench:smoke-run -->\n{body}<!-- /sessbench:smoke-run -->\n")
    return root


def test_check_names_a_stale_region_and_update_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool = _update_docs()
    root = _fake_root(tmp_path, "\nThe smoke grid took 1 s.\n\n")
    assert tool.main(["--check", "--root", str(root)]) == 1
    assert "README.md: region 'smoke-run' differs" in capsys.readouterr().out
    assert tool.main(["--root", str(root)]) == 0
    assert tool.main(["--check", "--root", str(root)]) == 0
    assert "The smoke grid took 1 s." not in (root / "README.md").read_text()


def test_a_missing_benchmark_says_how_to_make_it(tmp_path: Path) -> None:
    tool = _update_docs()
    root = _fake_root(tmp_path, "\n")
    (root / "results" / "bench" / "smoke-run.json").unlink()
    assert tool.main(["--root", str(root)]) == 0
    assert "--measure smoke" in (root / "README.md").read_text()


def test_markers_must_pair_and_code_blocks_are_examples(tmp_path: Path) -> None:
    tool = _update_docs()
    root = _fake_root(tmp_path, "\n")
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\n```markdown\n<!-- sessbench:NAME -->\n<!-- /sessbench:NAME -->\n```\n")
    assert tool.main(["--root", str(root)]) == 0  # the fenced example is not a region
    readme.write_text(readme.read_text() + "\n<!-- sessbench:smoke-run -->\n")
    assert tool.main(["--check", "--root", str(root)]) == 2


# ---------------------------------------------------------------------------- examples that run


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSBENCH_CACHE", str(tmp_path / "cache"))
    blocks = [(b, line) for b, line in _blocks(ROOT / "README.md", "python") if ">>>" in b]
    assert blocks, "the README has no Python example"
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for body, line in blocks:
        test = parser.get_doctest(body, {}, "README.md", str(ROOT / "README.md"), line)
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


def test_readme_smoke_grid_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sessbench.cli import main
    from sessbench.results import iter_records

    readme = (ROOT / "README.md").read_text()
    command = "sessbench run --config configs/grids/smoke.yaml"
    assert command in readme
    monkeypatch.chdir(ROOT)
    code = main([*shlex.split(command)[1:], "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
                 "--quiet"])
    assert code == 0
    records = list(iter_records(tmp_path / "runs"))
    assert records and all(r["status"] == "ok" for r in records)


def test_extending_plugin_example_runs(tmp_path: Path) -> None:
    page = ROOT / "docs" / "extending.md"
    plugin = next(b for b, _ in _blocks(page, "python") if "@register_model(" in b)
    check = textwrap.dedent("""
        from pathlib import Path
        import sessbench
        from sessbench import api
        records = api.run("last-item-pop", ["synthetic:n_sessions=300,n_items=40"], runs_dir="runs")
        assert {r["model"] for r in records} >= {"last-item-pop"}, records
        assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
        package = Path(sessbench.__file__).parent
        if (package / "testing.py").is_file() or (package / "testing").is_dir():  # the conformance kit
            from sessbench.testing import check_recommender
            check_recommender(LastItemPop, boost=10.0)
            check_recommender("last-item-pop")
        print("plugin ok")
    """)
    script = tmp_path / "plugin_example.py"
    script.write_text(plugin + "\n" + check)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SESSBENCH_CACHE": str(tmp_path / "cache"), "SESSBENCH_JOBS": "1"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and "plugin ok" in proc.stdout, proc.stderr[-3000:]


# ---------------------------------------------------------------------------- commands, links, paths


def _commands() -> list[tuple[str, int, str]]:
    out = []
    for path in DOCS:
        for body, line in _blocks(path, "bash", "sh", ""):
            joined = body.replace("\\\n", " ")
            for i, text in enumerate(joined.splitlines()):
                words = shlex.split(text, comments=True)
                if words[:1] == ["sessbench"] or words[:2] == ["python", "scripts/update_docs.py"]:
                    out.append((str(path.relative_to(ROOT)), line + i, text))
    return out


def test_documented_commands_parse() -> None:
    from sessbench.cli import build_parser

    tool = _update_docs()
    commands = _commands()
    assert len(commands) > 30
    bad = []
    for where, line, text in commands:
        words = shlex.split(text, comments=True)
        try:
            if words[0] == "sessbench":
                build_parser().parse_args(words[1:])
            else:
                tool.build_parser().parse_args(words[2:])
        except SystemExit:
            bad.append(f"{where}:{line}: {text}")
    assert not bad, "commands the parser refuses:\n" + "\n".join(bad)


#: usage.md's section of each command: from its anchor to the next command's anchor
USAGE_SECTIONS = ("run", "recs", "evaluate", "report", "publish", "data", "audit", "models", "bench", "api")


def _leaf_parsers(parser, path=()):  # type: ignore[no-untyped-def]
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaf_parsers(sub, (*path, name))


def test_every_command_and_option_is_documented() -> None:
    """Each subcommand of `sessbench` has its section in docs/usage.md, and every option it takes is
    named in that section (the global --debug / --quiet are described once, at the top)."""
    import argparse

    from sessbench.cli import build_parser

    text = (ROOT / "docs" / "usage.md").read_text()
    starts = {name: text.find(f'<a id="{name}"></a>') for name in USAGE_SECTIONS}
    assert all(i >= 0 for i in starts.values()), {n: i for n, i in starts.items() if i < 0}
    order = sorted(starts.values()) + [len(text)]
    section = {name: text[i:order[order.index(i) + 1]] for name, i in starts.items()}
    missing = []
    for path, parser in _leaf_parsers(build_parser()):
        where = section.get(path[0])
        if where is None:
            missing.append(f"sessbench {' '.join(path)}: no section in docs/usage.md")
            continue
        if f"sessbench {' '.join(path)}" not in text and f"`{' '.join(path[1:])}" not in where:
            missing.append(f"sessbench {' '.join(path)}: not named in its section")
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                if option.startswith("--") and option not in ("--help", "--debug", "--quiet") and option not in where:
                    missing.append(f"sessbench {' '.join(path)} {option}")
    assert not missing, "undocumented in docs/usage.md:\n" + "\n".join(missing)


def test_relative_links_point_to_files() -> None:
    link = re.compile(r"\]\((?!https?://|#|mailto:)([^)\s]+)\)")
    bad = []
    for path in DOCS:
        text = "".join(t for outside, t in _update_docs().split_fences(path.read_text()) if outside)
        for m in link.finditer(text):
            target = m.group(1).split("#")[0]
            if target and not (path.parent / target).exists():
                bad.append(f"{path.relative_to(ROOT)}: {m.group(1)}")
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_no_paths_a_user_does_not_have() -> None:
    for path in DOCS:
        assert "../shared" not in path.read_text(), f"{path.relative_to(ROOT)} names ../shared"


def test_readme_setup_agrees_with_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e . && sessbench run' in readme
    assert 'pip install -e ".[test]" && python -m pytest' in readme
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme
    pin = re.search(r"pip install -q (torch==[0-9.]+)", (ROOT / ".ci" / "run").read_text())
    assert pin is not None and pin.group(1) in readme, "the README names another torch pin than .ci/run"
