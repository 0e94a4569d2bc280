"""A self-contained HTML page of the report: inline CSS, figures embedded as data URIs.

The page needs no server and no network: open `index.html` from disk. Every string is escaped
with `html.escape` (text from records, configs and commands included), and the page has no
script, so nothing from a record can run in the reader's browser.
"""

from __future__ import annotations

import base64
import re
from html import escape
from typing import Callable

from sessbench.report.doc import (
    Block, BulletList, Cell, CodeBlock, Details, FigureBlock, Heading, Paragraph, Span, Table, TableBlock,
)

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#1f2328;line-height:1.45}
h1,h2,h3{line-height:1.25}h2{border-bottom:1px solid #d0d7de;padding-bottom:.25em;margin-top:2em}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:90%}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
code{background:#f6f8fa;padding:.1em .3em;border-radius:4px}
.table-wrap{overflow-x:auto;margin:.6em 0}
table{border-collapse:collapse;font-size:88%}
caption{caption-side:top;text-align:left;font-weight:600;padding-bottom:.4em}
th,td{padding:.25em .6em;border-bottom:1px solid #e1e4e8;white-space:nowrap}
thead th{border-bottom:2px solid #57606a;text-align:left}
td.r,th.r{text-align:right}
td.best{font-weight:700}
sup{font-size:75%}
p.note{font-size:82%;color:#57606a;margin:.2em 0}
p.files{font-size:82%;margin:.2em 0 1.2em}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:88%;color:#57606a}
details{margin:1em 0}summary{cursor:pointer;font-weight:600}
"""


def render_spans(parts: list[Span]) -> str:
    out = []
    for s in parts:
        text = escape(s.text)
        if s.kind == "code":
            out.append(f"<code>{text}</code>")
        elif s.kind == "strong":
            out.append(f"<strong>{text}</strong>")
        elif s.kind == "em":
            out.append(f"<em>{text}</em>")
        elif s.kind == "link":
            out.append(f'<a href="{escape(s.href, quote=True)}">{text}</a>')
        else:
            out.append(text)
    return "".join(out)


def _cell(cell: Cell, align: str, tag: str = "td") -> str:
    classes = [c for c in ("r" if align == "r" else "", "best" if cell.bold and cell.text else "") if c]
    attr = f' class="{" ".join(classes)}"' if classes else ""
    mark = f"<sup>{escape(cell.mark)}</sup>" if cell.mark else ""
    return f"<{tag}{attr}>{escape(cell.text)}{mark}</{tag}>"


def render_table(table: Table, tables_dir: str = "tables") -> str:
    right = ' class="r"'
    head = "".join(
        f'<th{right if c.align == "r" else ""} scope="col">{escape(c.header)}</th>' for c in table.columns
    )
    body = "\n".join(
        "<tr>" + "".join(_cell(cell, col.align) for cell, col in zip(row, table.columns)) + "</tr>" for row in table.rows
    )
    notes = "\n".join(f'<p class="note">{render_spans(n)}</p>' for n in table.notes)
    files = " · ".join(
        f'<a href="{escape(tables_dir)}/{escape(table.name)}.{ext}">{ext}</a>' for ext in ("csv", "tex", "md")
    )
    return (
        f'<div class="table-wrap" id="{escape(table.name)}"><table data-table="{escape(table.name)}">'
        f"<caption>{escape(table.caption)}</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>\n"
        f"{notes}\n<p class=\"files\">{files}</p>"
    )


def _width(svg: bytes) -> str:
    """The figure's width in CSS pixels at the PNG's resolution (150 dpi), so the page shows it
    as large as the PNG; the stylesheet caps it at the page width."""
    match = re.search(rb'<svg[^>]*\swidth="([0-9.]+)pt"', svg[:2000])
    return f' width="{round(float(match.group(1)) * 150 / 72)}"' if match else ""


def render_blocks(blocks: list[Block], figure_svg: Callable[[str], bytes], tables_dir: str = "tables") -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            anchor = f' id="{escape(block.anchor)}"' if block.anchor else ""
            parts.append(f"<h{block.level}{anchor}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{render_spans(block.parts)}</p>")
        elif isinstance(block, BulletList):
            items = "".join(f"<li>{render_spans(item)}</li>" for item in block.items)
            parts.append(f"<ul>{items}</ul>")
        elif isinstance(block, CodeBlock):
            parts.append(f"<pre><code>{escape(block.text.rstrip())}</code></pre>")
        elif isinstance(block, TableBlock):
            parts.append(render_table(block.table, tables_dir))
        elif isinstance(block, FigureBlock):
            svg = figure_svg(block.stem)
            data = base64.b64encode(svg).decode("ascii")
            parts.append(
                f'<figure id="fig-{escape(block.stem)}"><img src="data:image/svg+xml;base64,{data}" '
                f'alt="{escape(block.alt, quote=True)}"{_width(svg)}>'
                f"<figcaption>{escape(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Details):
            inner = render_blocks(block.blocks, figure_svg, tables_dir)
            parts.append(f"<details><summary>{escape(block.summary)}</summary>\n{inner}\n</details>")
        else:  # pragma: no cover
            raise TypeError(f"unknown block {type(block).__name__}")
    return "\n".join(parts)


def render(title: str, blocks: list[Block], figure_svg: Callable[[str], bytes], tables_dir: str = "tables") -> str:
    body = render_blocks(blocks, figure_svg, tables_dir)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
