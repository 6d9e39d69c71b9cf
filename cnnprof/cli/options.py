"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnnprof.report import Format

FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="table (terminal), csv, json or md.", case_sensitive=False)
]
OutputOpt = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Write the report to this file (atomically) instead of stdout.",
                 dir_okay=False),
]
ResolutionOpt = Annotated[
    Optional[str],
    typer.Option("--resolution", "-r", help="Input size N (square) or HxW; default: each model's native input."),
]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Batch size.")]
ModelsArg = Annotated[
    list[str], typer.Argument(help="Model names, family aliases or patterns such as 'ghostnet*' (see `cnnprof list`).")
]
