"""A tiny document model that every output format renders: the report is built once, as data.

Sections build `Table`s, `Figure`s and text blocks; `markdown`, `html`, `latex` and `csvout`
turn the same objects into their formats. Text that comes from records (model and dataset
names, commands, configs) is held as plain strings and escaped by each renderer, never
pre-formatted, so a `<script>` in a config ends up as text in every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


# ---------------------------------------------------------------------------- inline text


@dataclass(frozen=True)
class Span:
    """A run of inline text: `kind` is "text", "code", "strong", "em" or "link" (with `href`)."""

    text: str
    kind: str = "text"
    href: str = ""


Inline = Union[str, Span]


def code(text: Any) -> Span:
    return Span(str(text), "code")


def strong(text: Any) -> Span:
    return Span(str(text), "strong")


def em(text: Any) -> Span:
    return Span(str(text), "em")


def link(text: Any, href: str) -> Span:
    return Span(str(text), "link", href)


def spans(parts: tuple[Inline, ...] | list[Inline]) -> list[Span]:
    return [p if isinstance(p, Span) else Span(str(p)) for p in parts]


def plain(parts: list[Span]) -> str:
    """The text of some spans without markup (for CSV cells, alt texts, captions in files)."""
    return "".join(s.text for s in parts)


# ---------------------------------------------------------------------------- tables


@dataclass
class Cell:
    """One table cell.

    text:  what the reader sees (plain; renderers escape it).
    bold:  the best value of its column (marked in every format).
    mark:  a short suffix such as a footnote symbol (rendered as a superscript).
    csv:   machine-readable values for the CSV file, one per `Column.csv` name (numbers as
           formatted strings, so the CSV is byte-stable); None: the text itself.
    """

    text: str = ""
    bold: bool = False
    mark: str = ""
    csv: tuple[str, ...] | None = None


@dataclass
class Column:
    """A column: its header, alignment, and the CSV columns it expands to (default: its header)."""

    header: str
    align: str = "l"  # "l" or "r"
    csv: tuple[str, ...] | None = None

    @property
    def csv_names(self) -> tuple[str, ...]:
        return self.csv if self.csv else (self.header,)


@dataclass
class Table:
    """A table with a stable file name (`name`), a caption and notes (footnotes) below it."""

    name: str
    caption: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[list[Span]] = field(default_factory=list)

    def add(self, *cells: Cell | str) -> None:
        row = [c if isinstance(c, Cell) else Cell(str(c)) for c in cells]
        if len(row) != len(self.columns):
            raise ValueError(f"table {self.name}: row has {len(row)} cells, expected {len(self.columns)}")
        self.rows.append(row)

    def note(self, *parts: Inline) -> None:
        self.notes.append(spans(parts))

    def column_index(self, header: str) -> int:
        return [c.header for c in self.columns].index(header)


# ---------------------------------------------------------------------------- blocks


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Paragraph:
    parts: list[Span]


@dataclass
class BulletList:
    items: list[list[Span]]


@dataclass
class CodeBlock:
    text: str


@dataclass
class TableBlock:
    table: Table


@dataclass
class FigureBlock:
    """A figure written as `<stem>.png` and `<stem>.svg` under the figures folder."""

    stem: str
    caption: str
    alt: str


@dataclass
class Details:
    """A collapsed section (long provenance lists); rendered open in formats without folding."""

    summary: str
    blocks: list["Block"]


Block = Union[Heading, Paragraph, BulletList, CodeBlock, TableBlock, FigureBlock, Details]


def paragraph(*parts: Inline) -> Paragraph:
    return Paragraph(spans(parts))


def bullets(*items: list[Inline] | tuple[Inline, ...]) -> BulletList:
    return BulletList([spans(item) for item in items])


def slug(text: str) -> str:
    """A file- and anchor-safe name: letters, digits and '-' (dataset keys hold ':' '=' ',')."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-") or "x"
