"""Each dataset's audit (`sessbench audit`) as the store keeps it: the checks a reviewer asks for.

`sessbench publish` writes `splits/<id>.audit.json` beside each split's example table; the report
shows it per dataset, so the test size, repeat share, unseen items, shared sessions, time order,
duplicates and the batch-company check travel with the numbers they qualify.
"""

from __future__ import annotations

import json
from typing import Any

from sessbench.report.doc import Column, Table
from sessbench.report.store import Store
from sessbench.results import split_audit_path


def dataset_audit(store: Store, dataset: str) -> dict[str, Any] | None:
    """The stored audit of a dataset's split, or None when the store has none."""
    if store.runs_dir is None:
        return None
    for group in store.in_dataset(dataset):
        table_id = group.split_table
        if table_id is None:
            continue
        try:
            audit = json.loads(split_audit_path(store.runs_dir, table_id).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(audit, dict) and isinstance(audit.get("checks"), list):
            return audit
    return None


def audit_table(dataset: str, audit: dict[str, Any]) -> Table:
    table = Table(f"audit-{''.join(c if c.isalnum() else '-' for c in dataset.lower())}",
                  f"Audit of {dataset}: " + ("no check failed" if audit.get("ok") else
                                             f"failed: {', '.join(map(str, audit.get('failed') or []))}"),
                  [Column("check"), Column("status"), Column("finding")])
    for check in audit["checks"]:
        if isinstance(check, dict):
            table.add(str(check.get("check", "")), str(check.get("status", "")), str(check.get("summary", "")))
    for note in audit.get("notes") or []:
        table.note(str(note))
    return table
