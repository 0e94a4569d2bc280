"""What the report covers and how every run was produced.

Coverage: the paper's datasets that have no full-size run here, registered and paper models
without runs, failed runs. Provenance: each run's command, configuration, seed, versions and
commit, as tables (the commands are numbered once, since a grid shares one command line).
"""

from __future__ import annotations

import json
from typing import Any

from sessbench.report.doc import Cell, Column, Inline, Table, code
from sessbench.report.fmt import DASH, integer
from sessbench.report.paper import dataset_base, ABLATIONS, PAPER_DATASETS, TABLE2, paper_table1
from sessbench.report.store import ORACLE, Store, model_sort_key
from sessbench.report.tables import is_full_dataset


def registered_model_names() -> list[str]:
    """Models the registry knows (plugins loaded); [] when the registry cannot be read."""
    try:
        from sessbench.models import load_plugins, registered_models

        load_plugins()
        return sorted(registered_models(), key=model_sort_key)
    except Exception:  # noqa: BLE001 - a broken plugin must not stop a report
        return []


def paper_models() -> list[str]:
    """Every model the paper reports: Table 2 rows and the ablation variants."""
    names = set(TABLE2)
    for spec in ABLATIONS.values():
        names.update(spec["models"])  # type: ignore[arg-type]
    return sorted(names, key=model_sort_key)


def coverage_items(store: Store, registered: list[str]) -> list[list[Inline]]:
    """Bullet points saying what is NOT in the report, so no table shows an empty column for it."""
    items: list[list[Inline]] = []
    for dataset in PAPER_DATASETS:
        keys = [d for d in store.datasets if dataset_base(d) == dataset and store.in_dataset(d)]  # with ok runs
        paper = paper_table1(dataset)
        assert paper is not None
        full = f"{integer(paper['train_sequences'])} training prefixes"
        if not keys:
            items.append([code(dataset), f" (the paper's dataset, {full}): no finished run here, so the paper's "
                          f"{dataset} column is not reproduced."])
        elif not any(is_full_dataset(store.ok_records, k) for k in keys):
            info = store.dataset_info(keys[0]) or {}
            items.append([code(dataset), f": only a split prepared from a sample of the raw data was run "
                          f"({integer(info.get('train_sequences'))} of the paper's {full}); the full dataset "
                          "could not be run here, so its numbers are not comparable to the paper's and no "
                          "difference to the paper is shown."])
    expected = [m for m in dict.fromkeys([*registered, *paper_models()]) if m != ORACLE]
    for dataset in store.datasets:
        ran = {g.model for g in store.in_dataset(dataset)}
        missing = [m for m in expected if m not in ran]
        if missing:
            parts: list[Inline] = [code(dataset), ": no finished run of "]
            for i, m in enumerate(missing):
                parts += [", " if i else "", code(m)]
                if registered and m not in registered:
                    parts.append(" (not registered)")
            parts.append(".")
            items.append(parts)
    failed = store.failed_records
    if failed:
        items.append([f"{len(failed)} failed run(s), listed under Failed runs below."])
    return items


def failed_table(store: Store) -> Table | None:
    failed = sorted(store.failed_records, key=lambda r: (str(r.get("dataset")), model_sort_key(str(r.get("model"))), int(r.get("seed", 0))))
    if not failed:
        return None
    table = Table("failed-runs", "Failed runs (their records hold the full traceback)",
                  [Column("dataset"), Column("model"), Column("seed", "r"), Column("protocol"), Column("error"), Column("run id")])
    for r in failed:
        err = r.get("error") or {}
        message = " ".join(str(err.get("message", "")).split())
        if len(message) > 160:
            message = message[:157] + "..."
        table.add(str(r.get("dataset")), str(r.get("model")), str(r.get("seed", "")), str(r.get("protocol", "")),
                  f"{err.get('type', '?')}{_reason(err)}: {message}", str(r.get("run_id")))
    return table


def _reason(error: dict[str, Any]) -> str:
    """The runner's failure class (out_of_memory, timeout, ...) when it is not a plain exception."""
    reason = error.get("reason")
    return f" ({reason})" if reason and reason != "exception" else ""


def commands(store: Store) -> list[str]:
    """Distinct command lines of the runs, sorted (C1, C2, ... in the runs table)."""
    return sorted({str(r["command"]) for r in store.records if r.get("command")})


def _env(r: dict[str, Any]) -> dict[str, Any]:
    return r.get("environment") or {}


def commit_text(r: dict[str, Any]) -> str:
    git = _env(r).get("git") or {}
    commit = git.get("commit")
    if not commit:
        return "unknown"
    return str(commit)[:12] + (" (dirty)" if git.get("dirty") else "")


def versions_text(r: dict[str, Any]) -> str:
    env = _env(r)
    pkgs = env.get("packages") or {}
    parts = [f"sessbench {env.get('sessbench', '?')}", f"python {env.get('python', '?')}"]
    parts += [f"{k} {pkgs[k]}" for k in ("torch", "numpy", "scipy", "pandas") if pkgs.get(k)]
    return ", ".join(parts)


def environment_key(r: dict[str, Any]) -> tuple[str, str, str, str]:
    env = _env(r)
    return (commit_text(r), versions_text(r), str(env.get("platform", "?")), str(env.get("device_name") or env.get("device", "?")))


def environment_ids(store: Store) -> dict[tuple[str, str, str, str], str]:
    """E1, E2, ...: one id per distinct (commit, versions, platform, device), in sorted order."""
    keys = sorted({environment_key(r) for r in store.records})
    return {k: f"E{i + 1}" for i, k in enumerate(keys)}


def environments_table(store: Store, ids: dict[tuple[str, str, str, str], str]) -> Table:
    """Distinct (commit, versions, platform, device) combinations and how many runs used each."""
    counts: dict[tuple[str, str, str, str], int] = {}
    for r in store.records:
        key = environment_key(r)
        counts[key] = counts.get(key, 0) + 1
    table = Table("environments", "Code and library versions of the runs",
                  [Column("env"), Column("commit"), Column("versions"), Column("platform"), Column("device"), Column("runs", "r")])
    for key in sorted(counts):
        table.add(ids[key], *key, str(counts[key]))
    if any("(dirty)" in k[0] for k in counts):
        table.note("(dirty): the checkout had uncommitted changes to tracked files when the run started.")
    return table


def configs_table(store: Store) -> Table:
    """Each configuration (everything but the seed) once: the hyperparameters and run settings."""
    table = Table("configs", "Configurations: hyperparameters and settings (everything but the seed)",
                  [Column("dataset"), Column("model"), Column("protocol"), Column("config id"), Column("seeds"),
                   Column("hyperparameters"), Column("settings")])
    for g in store.groups:
        runs = g.ok + g.failed
        config = runs[0].get("config") or {}
        params = json.dumps(config.get("params", {}), sort_keys=True, default=str)
        settings = json.dumps(config.get("settings", {}), sort_keys=True, default=str)
        seeds = ", ".join(str(s) for s in sorted({int(r.get("seed", 0)) for r in runs}))
        table.add(g.dataset, g.label, g.protocol, g.config_id or DASH, seeds, params, settings)
    return table


def runs_table(store: Store, command_ids: dict[str, str], env_ids: dict[tuple[str, str, str, str], str]) -> Table:
    """One row per run: identity, status, command and environment (by id; in full in the CSV)."""
    table = Table(
        "runs", "Every run: identity, command (C), configuration and environment (E: commit, versions, device)",
        [Column("run id"), Column("dataset"), Column("model"), Column("seed", "r"), Column("protocol"),
         Column("config id"), Column("status"), Column("command", csv=("command",)), Column("commit"),
         Column("env", csv=("versions", "platform", "device")), Column("threads", "r"),
         Column("started (UTC)")],
    )
    for r in sorted(store.records, key=lambda r: (str(r.get("dataset")), model_sort_key(str(r.get("model"))),
                                                  str(r.get("protocol")), int(r.get("seed", 0)), str(r.get("run_id")))):
        env = _env(r)
        command = str(r.get("command", ""))
        key = environment_key(r)
        table.add(
            str(r.get("run_id")), str(r.get("dataset")), str(r.get("model")), str(r.get("seed", "")),
            str(r.get("protocol", "")), str(r.get("config_id", "")) or DASH, str(r.get("status")),
            Cell(command_ids.get(command, DASH), csv=(command,)), commit_text(r),
            Cell(env_ids.get(key, DASH), csv=key[1:]),
            str(env.get("torch_threads", "?")), str(r.get("started_at", "")),
        )
    return table


# ---------------------------------------------------------------------------- the full-scale grid
#: the paper's Table 2 grid at full scale (sessbench's headline): (model, protocol) -> seeds wanted;
#: seed-free models count once. The minimum the full-scale issue sets: SR-GNN 3 seeds under both
#: protocols, every other model 1 run.
GRID_SEEDS = 3


def full_grid() -> list[tuple[str, str, int]]:
    """(model, protocol, minimum runs) of the full-scale grid, in report order."""
    from sessbench.report.paper import MODEL_ORDER

    models = [m for m in MODEL_ORDER if m != ORACLE]
    grid = [(m, "validated", GRID_SEEDS if m == "srgnn" else 1) for m in models]
    grid.append(("srgnn", "paper", GRID_SEEDS))
    return grid


def _seed_dependent(model: str) -> bool:
    try:
        from sessbench.models import get_model

        return bool(get_model(model).cls.seed_dependent)
    except Exception:  # noqa: BLE001 - without the plugin, assume it depends on the seed
        return True


def full_grid_table(store: Store, views: dict[str, str | None]) -> tuple[Table, int]:
    """Every run of the full-scale grid: done, the minimum, the goal; and how many are missing."""
    columns = [Column("model"), Column("protocol")]
    for base in views:
        columns += [Column(f"{base} runs", "r"), Column(f"{base} missing", "r")]
    table = Table("coverage-full-grid", "The full-scale grid: runs done, and runs still missing for the goal "
                  f"({GRID_SEEDS} seeds of every model whose result depends on the seed; the minimum is 3 for "
                  "SR-GNN and 1 for the others)", columns)
    missing_total = 0
    for model, protocol, minimum in full_grid():
        goal = GRID_SEEDS if _seed_dependent(model) else 1
        cells: list[Any] = [model, protocol]
        for base, view in views.items():
            group = store.find(view, protocol, model) if view else None
            done = 0 if group is None else len(group.seeds)
            missing = max(goal - done, 0)
            missing_total += missing
            short = " (below the minimum)" if done < minimum else ""
            cells += [str(done), f"{missing}{short}" if missing else "0"]
        table.add(*cells)
    return table, missing_total


def unverified_table(store: Store) -> Table | None:
    """Runs set apart: from a dirty tree or no git checkout (never in the tables above)."""
    if not store.unverified:
        return None
    table = Table("unverified-runs", "Runs not in the tables: made by an uncommitted (dirty) tree or outside a "
                  "git checkout, so no commit holds the code that ran", [Column("dataset"), Column("model"),
                  Column("protocol"), Column("seed", "r"), Column("commit"), Column("changed files")])
    for r in sorted(store.unverified, key=lambda r: (str(r.get("dataset")), str(r.get("model")), int(r.get("seed", 0)))):
        git = (_env(r).get("git") or {})
        changed = ", ".join(git.get("changed") or []) or ("no git checkout" if not git.get("commit") else DASH)
        table.add(str(r.get("dataset")), str(r.get("model")), str(r.get("protocol", "")), str(r.get("seed", "")),
                  str(git.get("commit") or DASH)[:12], changed)
    return table


def superseded_table(store: Store) -> Table | None:
    """Configurations that also ran under other code: listed, never averaged with the shown runs."""
    if not store.superseded:
        return None
    table = Table("other-code-states", "Runs of other code states (not averaged with the runs shown: the tables "
                  "show each configuration's code state with the most seeds, then the newest)",
                  [Column("dataset"), Column("model"), Column("protocol"), Column("code state"), Column("seeds", "r"),
                   Column("commits")])
    for g in store.superseded:
        commits = sorted({str((_env(r).get("git") or {}).get("commit") or DASH)[:12] for r in g.ok + g.failed})
        table.add(g.dataset, g.model, g.protocol, g.code_state, str(len(g.seeds)), ", ".join(commits))
    return table
