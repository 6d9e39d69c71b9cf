"""``cnnprof list``: the registered variants with their published figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from cnnprof.cli.options import FormatOpt, OutputOpt
from cnnprof.files import check_writable
from cnnprof.report import Column, Format, emit
from cnnprof.rows import Row


@dataclass(frozen=True)
class ListRow(Row):
    model: str
    family: str
    variant: str
    task: str
    input: str
    paper_params: int | None
    paper_macs: int | None
    paper_top1: float | None
    official_params: int | None
    official_macs: int | None
    citation: str


COLUMNS = [
    Column("model", "model", priority=0),
    Column("family", "family", priority=3),
    Column("input", "input", priority=1),
    Column("paper_params", "params (paper)", "count", priority=1),
    Column("paper_macs", "MACs (paper)", "macs", priority=1),
    Column("paper_top1", "top-1 %", "float"),
    Column("official_params", "params (official)", "count", priority=3),
    Column("official_macs", "MACs (official)", "macs", priority=3),
    Column("citation", "citation", wrap=True),
]


def short_citation(paper: str) -> str:
    """'Tan & Le, EfficientNet: ..., ICML 2019 (arXiv:1905.11946)' -> 'Tan & Le, ICML 2019 (arXiv:...)'."""
    parts = [p.strip() for p in paper.split(", ")]
    return f"{parts[0]}, {parts[-1]}" if len(parts) > 2 else paper


def list_command(
    patterns: Annotated[Optional[list[str]], typer.Argument(help="Names, aliases or patterns; default: all.")] = None,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """List the registered variants: name, family, native input, published params and MACs, citation.

    Examples:

      cnnprof list

      cnnprof list 'efficientnet*' --format csv

      cnnprof list ghostnet espnetv2
    """
    from cnnprof.models import registry

    check_writable(output)
    names = registry.resolve(patterns) if patterns else registry.list_models()
    rows = []
    for name in names:
        spec = registry.get(name)
        paper = spec.paper_figure if spec.paper_figure is not spec.reference else None
        ref = spec.reference
        rows.append(
            ListRow(
                model=spec.name,
                family=spec.family,
                variant=spec.variant,
                task=spec.task,
                input="x".join(map(str, spec.input)),
                paper_params=paper.params if paper else None,
                paper_macs=paper.macs if paper else None,
                paper_top1=paper.top1 if paper else None,
                official_params=ref.params if ref else None,
                official_macs=ref.macs if ref else None,
                citation=short_citation(spec.paper) if fmt == Format.table else spec.paper,
            )
        )
    emit(rows, columns=COLUMNS, fmt=fmt, output=output, fields=ListRow,
         title=f"{len(rows)} models (MACs = multiply-adds, the papers' \"FLOPs\")")
