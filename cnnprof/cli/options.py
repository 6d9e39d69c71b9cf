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

BackendOpt = Annotated[
    str, typer.Option("--backend", help="Comma-separated backends: torch, onnxruntime, compile.")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
ThreadsOpt = Annotated[
    str,
    typer.Option("--threads", "-t", help="Intra-op threads for torch and ONNX Runtime alike: N or 'all' (default 1, "
                 "the papers' single-core protocol and the steadiest on a shared machine)."),
]
PlotOpt = Annotated[
    Optional[Path], typer.Option("--plot", help="Also draw a picture to this .png/.svg file.", dir_okay=False)
]
MinTimeOpt = Annotated[
    float, typer.Option("--min-time", help="Measure for at least this many seconds per configuration.", min=0.0)
]
MinRunsOpt = Annotated[int, typer.Option("--min-runs", help="Measure at least this many calls.", min=1)]
InputOpt = Annotated[
    Optional[str],
    typer.Option("--input", "-i", help="Input shape CxHxW (needed for a user model that declares none)."),
]
ModelArgOpt = Annotated[
    Optional[list[str]],
    typer.Option("--model-arg", "-a", help="key=value passed to a user model's factory (repeatable)."),
]
