"""Markdown (GitHub-flavoured) rendering of the report's blocks.

Text from records is escaped: Markdown punctuation that could start markup, and `<`, `>`, `&`
as entities (GitHub would otherwise pass some HTML through). Figures are inline PNG images
with a link to the SVG.
"""

from __future__ import annotations

import re

from sessbench.report.doc import (
    Block, BulletList, Cell, CodeBlock, Details, FigureBlock, Heading, Paragraph, Span, Table, TableBlock,
)

_SPECIAL = re.compile(r"([\\`*_\[\]|#<>&~])")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str) -> str:
    """Control characters (line breaks included) as spaces: a name from a record can never end a
    table row, a heading or a code span and let what follows be read as markup or HTML."""
    return _CONTROL.sub(" ", text)


def escape(text: str) -> str:
    """Plain text for Markdown on one line: markup characters backslash-escaped, <>& as entities."""
    return _SPECIAL.sub(lambda m: _ENTITIES.get(m.group(1), "\\" + m.group(1)), one_line(text))


def inline_code(text: str) -> str:
    """A code span on one line whose fence is longer than any backtick run inside it."""
    text = one_line(text)
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_spans(parts: list[Span]) -> str:
    out = []
    for s in parts:
        if s.kind == "code":
            out.append(inline_code(s.text))
        elif s.kind == "strong":
            out.append(f"**{escape(s.text)}**")
        elif s.kind == "em":
            out.append(f"*{escape(s.text)}*")
        elif s.kind == "link":
            out.append(f"[{escape(s.text)}]({s.href.replace(' ', '%20').replace(')', '%29')})")
        else:
            out.append(escape(s.text))
    return "".join(out)


def render_cell(cell: Cell) -> str:
    text = escape(cell.text)
    if cell.mark:
        text += escape(cell.mark)
    return f"**{text}**" if cell.bold and cell.text else text


def render_table(table: Table, with_caption: bool = True) -> str:
    lines = []
    if with_caption:
        lines += [f"**{escape(table.caption)}**", ""]
    lines.append("| " + " | ".join(escape(c.header) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if c.align == "r" else "---" for c in table.columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(render_cell(c) for c in row) + " |")
    if not table.rows:
        lines.append("| " + " | ".join("–" for _ in table.columns) + " |")
    out = "\n".join(lines) + "\n"
    if table.notes:
        out += "\n" + "\n".join(f"<sub>{render_spans(n)}</sub><br>" for n in table.notes[:-1])
        out += ("\n" if len(table.notes) > 1 else "") + f"<sub>{render_spans(table.notes[-1])}</sub>\n"
    return out


def render_code_block(text: str) -> str:
    longest = max((len(r) for r in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}\n"


def render(blocks: list[Block], *, figures_dir: str = "figures", tables_dir: str = "tables") -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            anchor = f'<a id="{block.anchor}"></a>\n' if block.anchor else ""
            parts.append(f"{anchor}{'#' * block.level} {escape(block.text)}\n")
        elif isinstance(block, Paragraph):
            parts.append(render_spans(block.parts) + "\n")
        elif isinstance(block, BulletList):
            parts.append("\n".join(f"- {render_spans(item)}" for item in block.items) + "\n")
        elif isinstance(block, CodeBlock):
            parts.append(render_code_block(block.text))
        elif isinstance(block, TableBlock):
            t = block.table
            files = " · ".join(f"[{ext}]({tables_dir}/{t.name}.{ext})" for ext in ("csv", "tex", "md"))
            parts.append(render_table(t) + f"\n<sub>{files}</sub>\n")
        elif isinstance(block, FigureBlock):
            parts.append(
                f"![{escape(block.alt)}]({figures_dir}/{block.stem}.png)\n\n"
                f"*{escape(block.caption)}* <sub>[svg]({figures_dir}/{block.stem}.svg) · "
                f"[png]({figures_dir}/{block.stem}.png)</sub>\n"
            )
        elif isinstance(block, Details):
            inner = render(block.blocks, figures_dir=figures_dir, tables_dir=tables_dir)
            parts.append(f"<details>\n<summary>{escape(block.summary)}</summary>\n\n{inner}\n</details>\n")
        else:  # pragma: no cover - every block type is handled above
            raise TypeError(f"unknown block {type(block).__name__}")
    return "\n".join(parts)
