"""Publish finished runs into a lean, committed store (the repository's `results/runs/`).

Every number sessbench publishes must trace back to a record made by a clean, committed tree whose
commit holds the code that ran. `publish_runs` copies, from a working runs directory:

* records (ok and failed) whose `environment.git` says clean, with their rank files (compressed
  .npz, a few hundred kB at the paper's scale); records from a dirty tree or from no git checkout
  are refused and named;
* each split's example table (`splits/<id>.npz`: test sessions and repeat targets, for the
  report's session-level statistics) and its audit (`splits/<id>.audit.json`, what `sessbench
  audit` checks), copied when the runs directory has them, else built from the data
  (`--data-dir`), checked to be the same source by its digest.

Never copied: saved recommendation lists (`.recs.npz`, large), epoch checkpoints (they live
outside any runs directory), claims and temp files. Copies are atomic; a record already
published with the same content is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessbench.atomic import atomic_write_bytes
from sessbench.errors import SessbenchError
from sessbench.results import (
    is_clean,
    iter_records,
    ranks_path,
    record_path,
    save_split_examples,
    split_audit_path,
    split_examples_path,
    split_table_id,
)

log = logging.getLogger("sessbench.publish")


@dataclass
class PublishSummary:
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)
    tables_copied: int = 0
    tables_built: int = 0
    tables_missing: list[str] = field(default_factory=list)  # dataset@source without a table

    def lines(self, dst: Path) -> list[str]:
        out = [f"{len(self.copied)} run(s) published to {dst}/, {len(self.unchanged)} already there"]
        if self.tables_copied or self.tables_built:
            out.append(f"{self.tables_copied + self.tables_built} split example table(s) and audit(s) "
                       f"({self.tables_copied} copied, {self.tables_built} rebuilt from the data)")
        for run_id, why in self.refused:
            out.append(f"refused {run_id}: {why}")
        for key in self.tables_missing:
            out.append(f"no example table for {key}: pass --data-dir so it can be rebuilt (the report's "
                       "session-level statistics and repeat/explore split need it)")
        return out


def _copy(src: Path, dst: Path) -> bool:
    """Copy a file atomically; False when dst already has the same bytes."""
    data = src.read_bytes()
    if dst.is_file() and dst.read_bytes() == data:
        return False
    atomic_write_bytes(dst, data)
    return True


def _why_refused(record: dict[str, Any]) -> str:
    git = (record.get("environment") or {}).get("git") or {}
    if not git.get("commit"):
        return "made outside a git checkout: no commit holds the code that ran"
    changed = ", ".join(git.get("changed") or []) or "uncommitted changes"
    return f"made by a dirty tree at {str(git['commit'])[:12]} ({changed}): rerun it from a clean commit"


def publish_runs(src: Path, dst: Path, data_dir: Path | None = None, cache_dir: Path | None = None) -> PublishSummary:
    """Copy the clean records of `src` (and what the report needs with them) into `dst`."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise SessbenchError(f"runs directory {src} does not exist: pass the --runs-dir the grid wrote to")
    if src.resolve() == dst.resolve():
        raise SessbenchError(f"{src} is already the published store: pass another folder to publish from")
    summary = PublishSummary()
    tables: dict[str, tuple[str, str]] = {}
    for record in iter_records(src):
        run_id = str(record["run_id"])
        if not is_clean(record):
            summary.refused.append((run_id, _why_refused(record)))
            continue
        here = Path(record["_path"]).parent
        files = [(here / f"{run_id}.json", record_path(dst, run_id))]
        if record.get("ranks_file"):
            files.append((here / Path(str(record["ranks_file"])).name, ranks_path(dst, run_id)))
        dst.mkdir(parents=True, exist_ok=True)
        changed = [_copy(a, b) for a, b in reversed(files) if a.is_file()]  # the record last
        (summary.copied if any(changed) else summary.unchanged).append(run_id)
        digest = (record.get("source") or {}).get("digest")
        if digest and record.get("status") == "ok":
            key = str(record.get("dataset"))
            tables[split_table_id(key, str(digest))] = (key, str(digest))
    for table_id, (key, digest) in tables.items():
        wanted = [(split_examples_path(src, table_id), split_examples_path(dst, table_id)),
                  (split_audit_path(src, table_id), split_audit_path(dst, table_id))]
        missing = []
        for source, target in wanted:
            if target.is_file():
                continue
            if source.is_file():
                _copy(source, target)
                summary.tables_copied += 1
            else:
                missing.append(target)
        if not missing:
            continue
        if data_dir is not None and _rebuild_table(dst, key, digest, table_id, data_dir, cache_dir):
            summary.tables_built += len(missing)
        else:
            summary.tables_missing.append(f"{key}@{digest}")
    return summary


def _rebuild_table(dst: Path, key: str, digest: str, table_id: str, data_dir: Path, cache_dir: Path | None) -> bool:
    """Load the dataset from `data_dir` and write its example table and audit, if it is the
    recorded source."""
    from sessbench.data.registry import load_dataset, parse_dataset

    try:
        loaded = load_dataset(parse_dataset(key), data_dir, cache_dir, logger=log)
    except SessbenchError as exc:
        log.warning("cannot rebuild the example table of %s from %s: %s", key, data_dir, exc)
        return False
    if loaded.request.source is None or loaded.request.source.digest != digest:
        log.warning("%s in %s is other data than the records' (source %s, not %s)", key, data_dir,
                    None if loaded.request.source is None else loaded.request.source.digest, digest)
        return False
    save_split_examples(dst, loaded.split, table_id)
    audit = split_audit_path(dst, table_id)
    if not audit.is_file():
        import json

        from sessbench.audit import audit_split

        report = audit_split(loaded.split, name=key)
        atomic_write_bytes(audit, (json.dumps(report.to_dict(), indent=1, default=float) + "\n").encode())
    return True


__all__ = ["PublishSummary", "publish_runs"]
