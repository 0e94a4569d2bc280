"""CSV rendering of tables: machine-readable values, one header row, '\\n' line ends.

A display column such as "P@20" (mean ± std) expands to its `Column.csv` names ("P@20 mean
(%)", "P@20 std (%)"), filled from each cell's `csv` values; other columns carry the cell
text. Marks (best, footnotes) are dropped: a CSV holds data, not typography.
"""

from __future__ import annotations

import csv
import io

from sessbench.report.doc import Table


def render_table(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header: list[str] = []
    for col in table.columns:
        header.extend(col.csv_names)
    writer.writerow(header)
    for row in table.rows:
        out: list[str] = []
        for col, cell in zip(table.columns, row):
            n = len(col.csv_names)
            values = cell.csv if cell.csv is not None else (cell.text,)
            values = tuple(values[:n]) + ("",) * (n - len(values))
            out.extend("" if v == "–" else v for v in values)
        writer.writerow(out)
    return buf.getvalue()
