"""Result rows -> table | csv | json | md; the terminal rendering.

One row source, many outputs: every command hands its rows (dataclasses or dicts) here with
the column list it wants on screen. Files carry every field at full precision (CSV headers are
the row type's field names, stable whatever was measured); rounding and units are for the
terminal table and markdown only.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Sequence

from cnnprof.files import write_atomic
from cnnprof.rows import Choice, finite


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    md = "md"


class ColumnKind(Choice):
    """How a column's values are shown: text as is, counts and MACs with k/M/G, bytes with B,
    milliseconds, ratios (1.23x), other floats, percentages of a fraction, integers."""

    TEXT = "text"
    COUNT = "count"
    MACS = "macs"
    BYTES = "bytes"
    MS = "ms"
    RATIO = "ratio"
    FLOAT = "float"
    PCT = "pct"
    INT = "int"


@dataclass(frozen=True)
class Column:
    """A column of the terminal table: which field, its header, how to show its value."""

    field: str
    header: str
    kind: ColumnKind = ColumnKind.TEXT  # given as a ColumnKind or its value ("ms")
    wrap: bool = False  # long prose (citations, details) may wrap; names and numbers never do
    # On a narrow terminal (see ``rich_table``) prose goes first, then the columns of highest
    # priority number (the rightmost of equals first); priority 0 never goes: it says which row is
    # which (the first column is 0).
    priority: int = 2
    # kept while a row has a value in it, whatever the width: the row's warnings and error (by
    # their field), a verdict's qualifier (given); ``warnings`` shrink to their kinds instead
    keep: bool = False
    # the cells shrink to their notes' kinds before a column by priority is left out (None: by the
    # field, ``warnings`` do; False where the cells hold something else than "kind: detail" notes)
    short: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ColumnKind(self.kind))
        if self.field in KEPT_FIELDS:
            object.__setattr__(self, "keep", True)
        if self.short is None:
            object.__setattr__(self, "short", self.field in SHORT_FIELDS)


# The columns that tell rows apart: never left out while their values differ from row to row.
ROW_KEYS = frozenset({"model", "backend", "precision", "batch", "threads", "machine"})
KEPT_FIELDS = frozenset({"warnings", "error"})
SHORT_FIELDS = frozenset({"warnings"})  # "noisy: IQR is 40% ...; machine busy: ..." -> "noisy, machine busy"


def note_kinds(text: str) -> str:
    """A warnings cell shortened to its kinds, each once: the text before each note's colon."""
    if text == "-":
        return text
    return ", ".join(dict.fromkeys(part.split(":", 1)[0].strip() for part in text.split("; ") if part.strip()))


# -- rows --------------------------------------------------------------------------------------
Fields = Sequence[str] | type  # the column names, or the Row type that has them


def field_list(fields: Fields) -> list[str]:
    """The columns of a report: given as names, or as a ``Row`` type's fields."""
    return fields.field_names() if isinstance(fields, type) else list(fields)


def as_records(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows (``Row`` dataclasses, other dataclasses or dicts) as plain dicts."""
    from cnnprof.rows import plain

    out = []
    for row in rows:
        if hasattr(row, "to_dict"):
            out.append(row.to_dict())
        elif dataclasses.is_dataclass(row):
            out.append(plain(row))
        else:
            out.append(dict(row))
    return out


def rows_to_frame(rows: Sequence[Any], fields: Fields):
    """Rows -> a pandas DataFrame whose columns are ``fields`` (names, or a Row type)."""
    import pandas as pd

    return pd.DataFrame.from_records(as_records(rows), columns=field_list(fields))


def to_json(records: list[dict[str, Any]], fields: Sequence[str] | None = None) -> str:
    if fields is not None:
        records = [{f: r.get(f) for f in fields} for r in records]
    return json.dumps([finite(r) for r in records], indent=2, allow_nan=False) + "\n"


def to_csv(records: list[dict[str, Any]], fields: Sequence[str]) -> str:
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({f: ("" if r.get(f) is None else _csv_value(r.get(f))) for f in fields})
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(finite(value))
    if isinstance(value, float):
        return repr(value)
    return value


# -- human formatting (terminal and markdown) --------------------------------------------------
def human(value: Any, kind: ColumnKind | str) -> str:
    """A value as the terminal shows it (``-`` for none)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    kind = ColumnKind(kind)
    if kind in (ColumnKind.COUNT, ColumnKind.MACS):
        return _scaled(value, "")
    if kind is ColumnKind.BYTES:
        return _scaled(value, "B")
    if kind is ColumnKind.MS:
        return f"{value:.3g} ms" if value < 1 else f"{value:.2f} ms"
    if kind is ColumnKind.RATIO:
        return f"{value:.2f}x"
    if kind is ColumnKind.PCT:
        return f"{100 * value:.1f}%"
    if kind is ColumnKind.FLOAT:
        return f"{value:.4g}"
    if kind is ColumnKind.INT:
        return f"{int(value):,}"
    return str(value)


def _scaled(value: float, unit: str) -> str:
    value = float(value)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def to_markdown(records: list[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A markdown table with exact values (numbers unrounded), headers carrying units; control
    characters in a value shown escaped (``terminal.printable``), as on the terminal."""
    from cnnprof.terminal import printable

    lines = ["| " + " | ".join(c.header for c in columns) + " |"]
    lines.append("|" + "|".join("---" if c.kind is ColumnKind.TEXT else "---:" for c in columns) + "|")
    for r in records:
        cells = []
        for c in columns:
            v = r.get(c.field)
            cells.append("" if v is None else printable(v).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PROSE_MIN = 20  # the narrowest a column of prose (citation, error) folds to


def _widths(columns: Sequence[Column], cells: dict[str, list[str]], width: int) -> list[int] | None:
    """Fixed widths for ``columns`` in ``width`` characters, or None when they do not fit: a name or
    number keeps its longest cell (its header may wrap at spaces), prose folds to ``PROSE_MIN``;
    room to spare unwraps headers first, then widens prose. Each column costs 3 characters of
    padding and rule besides its width, and the table 1."""
    from rich.cells import cell_len  # a wide (CJK) character takes two cells

    longest = {c.field: max([cell_len(t) for t in cells[c.field]] + [0]) for c in columns}
    word = {c.field: max((cell_len(w) for w in c.header.split()), default=1) for c in columns}
    widths = [min(max(longest[c.field], word[c.field]), PROSE_MIN) if c.wrap else max(longest[c.field], word[c.field])
              for c in columns]
    spare = width - (sum(widths) + 3 * len(columns) + 1)
    if spare < 0:
        return None
    for i, c in enumerate(columns):  # whole headers, left to right, while they fit
        grow = cell_len(c.header) - widths[i]
        if not c.wrap and 0 < grow <= spare:
            widths[i] += grow
            spare -= grow
    prose = [i for i, c in enumerate(columns) if c.wrap]
    while spare > 0 and prose:
        growing = [i for i in prose if widths[i] < max(longest[columns[i].field], cell_len(columns[i].header))]
        if not growing:
            break
        for i in growing:
            if spare == 0:
                break
            widths[i] += 1
            spare -= 1
    return widths


def _protected(c: Column, cells: list[str], first: bool) -> bool:
    """Never left out: the first column, priority 0, a column that tells rows apart (``ROW_KEYS``,
    while its values differ), a kept column (warnings, error, a verdict's qualifier) while a row
    has a value in it."""
    filled = [t for t in cells if t != "-"]
    return (first or c.priority == 0 or (c.field in ROW_KEYS and len(set(cells)) > 1)
            or (c.keep and bool(filled)))


def _fit(columns: Sequence[Column], cells: dict[str, list[str]], width: int):
    """The one rule of a narrow terminal: while the table does not fit, leave out an empty column,
    then prose, then shorten the warnings to their kinds, then the other columns by priority
    (highest number first; of equals, one whose cells are all alike, then the rightmost); never a
    protected column. Returns the
    columns shown, those left out, the widths (None: still too wide) and the cells as shown."""
    order = {id(c): i for i, c in enumerate(columns)}
    shown, hidden = list(columns), []
    short = set()
    while (widths := _widths(shown, cells, width)) is None:
        candidates = [c for c in shown if not _protected(c, cells[c.field], c is columns[0])]
        empty = [c for c in candidates if all(t == "-" for t in cells[c.field])]
        prose = [c for c in candidates if c.wrap]
        shorten = [c for c in shown if c.short and c.field not in short]
        if empty or prose:
            victim = max(empty or prose, key=lambda c: (c.priority, order[id(c)]))
        elif shorten:
            short.add(shorten[0].field)
            cells = {**cells, shorten[0].field: [note_kinds(t) for t in cells[shorten[0].field]]}
            continue
        elif candidates:  # of equal priority, one whose cells are all alike goes first
            victim = max(candidates, key=lambda c: (c.priority, len(set(cells[c.field])) == 1, order[id(c)]))
        else:
            break
        shown.remove(victim)
        hidden.append(victim)
    hidden.sort(key=lambda c: order[id(c)])
    return shown, hidden, widths, cells


def rich_table(records: list[dict[str, Any]], columns: Sequence[Column], *, title: str | None = None,
               width: int | None = None):
    """The terminal table. Names and numbers are never cut or wrapped mid-word; prose folds. With
    ``width`` (a terminal's), columns are left out by ``_fit``'s rule until the table fits, and the
    caption says which (``--format csv`` or a wider terminal shows them)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from cnnprof.terminal import printable

    cells = {c.field: [printable(human(r.get(c.field), c.kind)) for r in records] for c in columns}
    title = None if title is None else printable(title)
    shown, hidden = list(columns), []
    widths = None
    if width is not None:
        shown, hidden, widths, cells = _fit(columns, cells, width)
    caption = None
    # an empty column says nothing: leaving it out is not worth a line
    hidden = [c for c in hidden if any(t != "-" for t in cells[c.field])]
    if hidden:
        caption = f"narrow terminal: left out {', '.join(c.header for c in hidden)} (--format csv has every column)"
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, caption=caption,
                  caption_justify="left")
    for i, c in enumerate(shown):
        # the header may wrap at its spaces; a name or number in a cell never wraps or shrinks
        table.add_column(c.header, justify="left" if c.kind is ColumnKind.TEXT else "right", no_wrap=False,
                         overflow="fold", width=widths[i] if widths else None)
    for i in range(len(records)):
        table.add_row(*(Text(cells[c.field][i], no_wrap=not c.wrap) for c in shown))  # text, never markup
    return table


PARTIAL = "partial"  # the field that marks every row of an interrupted run


def render_text(records: list[dict[str, Any]], fields: Sequence[str], columns: Sequence[Column], fmt: Format, *,
                partial: bool = False) -> str:
    """The text of a csv / json / md rendering. ``partial``: the run was interrupted; every
    CSV/JSON row carries ``partial: true`` (a column that complete runs do not have) and the
    markdown ends with a line saying so, so that a file of some rows is never taken for all."""
    if partial:
        records = [{**r, PARTIAL: True} for r in records]
        fields = [*fields, PARTIAL]
    if fmt == Format.csv:
        return to_csv(records, fields)
    if fmt == Format.json:
        return to_json(records, fields)
    if fmt == Format.md:
        note = f"\n_partial: the run was interrupted after {len(records)} row(s)_\n" if partial else ""
        return to_markdown(records, columns) + note
    raise ValueError(f"no text rendering for {fmt}")


def emit(
    rows: Sequence[Any],
    *,
    columns: Sequence[Column],
    fmt: Format = Format.table,
    output: str | os.PathLike | None = None,
    fields: Fields | None = None,
    title: str | None = None,
    console=None,
    partial: bool = False,
) -> None:
    """Render ``rows`` to stdout (table, or the text format) or to ``output`` (atomically).

    With ``output`` and the table format, the file gets CSV (a table is for eyes only) unless
    its extension names another format (.json, .md). ``fields`` (names or a Row type) are the
    columns of CSV and JSON, whatever the rows hold: needed for any format but the table.
    ``partial``: the rows of an interrupted run (see ``render_text``; the table's title says so).
    """
    records = as_records(rows)
    if fields is None:
        if output is not None or fmt != Format.table:
            raise ValueError("emit: a file or text format needs its fields")
        fields = []
    fields = field_list(fields)
    if output is not None:
        file_fmt = fmt
        if fmt == Format.table:
            file_fmt = {".json": Format.json, ".md": Format.md}.get(Path(output).suffix.lower(), Format.csv)
        write_atomic(output, render_text(records, fields, columns, file_fmt, partial=partial))
        return
    if fmt == Format.table:
        from cnnprof.terminal import stdout_console

        if partial:
            title = f"{title or ''} (partial: the run was interrupted)".strip()
        console = console or stdout_console()
        width = console.width if console.is_terminal else None
        console.print(rich_table(records, columns, title=title, width=width))
        return
    from cnnprof.terminal import data_stream

    out = data_stream()
    out.write(render_text(records, fields, columns, fmt, partial=partial))
    out.flush()
