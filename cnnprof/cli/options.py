"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, Sequence

import typer

from cnnprof.errors import UsageError
from cnnprof.files import REPORTS_DIR
from cnnprof.home import WHERE
from cnnprof.report import Format

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.timing.backends import Backend, Precision

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
    str, typer.Option("--backend", help="Comma-separated backends: torch, compile, onnxruntime, openvino, tensorrt "
                      "(CUDA), or all (every one that runs here).")
]
PrecisionOpt = Annotated[
    str, typer.Option("--precision", "-p", help="Comma-separated precisions: fp32, fp16 (CUDA), bf16, int8 (ONNX "
                      "backends: a static QDQ quantisation), or all (every one each backend runs here).")
]
PRECISION_PANEL = "Precision and parity"
CalibrationOpt = Annotated[
    str, typer.Option("--calibration", rich_help_panel=PRECISION_PANEL,
                      help="int8 calibration method: minmax, entropy or percentile.")
]
CalibrationSamplesOpt = Annotated[
    int, typer.Option("--calibration-samples", min=1, rich_help_panel=PRECISION_PANEL,
                      help="int8: synthetic images to calibrate activation ranges on (at the timed resolution).")
]
ParityInputsOpt = Annotated[
    int, typer.Option("--parity-inputs", min=1, rich_help_panel=PRECISION_PANEL,
                      help="Images to compare with fp32 PyTorch eager (max |diff|, SQNR, top-1 agreement).")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", rich_help_panel=PRECISION_PANEL,
                       help="Time a precision this machine would only emulate (bf16 without bf16 instructions).")
]
CudaGraphsOpt = Annotated[
    bool, typer.Option("--cuda-graphs", help="torch eager on CUDA: capture the forward pass once and time its "
                       "replay as a CUDA graph.")
]
InProcessOpt = Annotated[
    bool, typer.Option("--in-process", help="Time in this process instead of a fresh worker per configuration: "
                       "a few seconds faster per row, but no peak memory figure.")
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
MinRunsOpt = Annotated[int, typer.Option(
    "--min-runs", min=1, max=100_000,
    help="Measure at least this many calls (up to 100000; a 95% bound of p90 needs 64, of p99 662: docs/timing.md).")]
NoSaveOpt = Annotated[
    bool, typer.Option("--no-save", help=f"Do not keep a CSV copy of the rows under reports/ ({WHERE}).")
]
DbOpt = Annotated[
    Path,
    typer.Option("--db", help="Also append the rows to this results database (SQLite; see `cnnprof db`; default "
                 f"reports/cnnprof.db: {WHERE}).",
                 dir_okay=False, envvar="CNNPROF_DB"),
]
NoDbOpt = Annotated[bool, typer.Option("--no-db", help="Do not record the rows in the results database.")]
DEFAULT_DB = Path(REPORTS_DIR) / "cnnprof.db"
InputOpt = Annotated[
    Optional[str],
    typer.Option("--input", "-i", help="Input shape CxHxW (needed for a user model that declares none)."),
]
ModelArgOpt = Annotated[
    Optional[list[str]],
    typer.Option("--model-arg", "-a", help="key=value passed to a user model's factory (repeatable)."),
]

TrustOpt = Annotated[
    Optional[list[str]],
    typer.Option("--trust", metavar="PATH-OR-MODULE", show_default=False,
                 help="Allow a model reference read from a data file (a baseline, a sweep file) to run this code: a "
                 "module (and its submodules) or a .py file or folder. Without it, such a file may name only "
                 "registered models, .onnx files and .py files inside its own folder or git repository; "
                 "references typed on the command line need no --trust (repeatable)."),
]


# -- parsing option values ------------------------------------------------------------------------
def parse_list(text: str, *, what: str, choices: Sequence[str] | None = None) -> list[str]:
    """``"torch, onnxruntime"`` -> ["torch", "onnxruntime"] (lower case, no repeats); a value not
    in ``choices`` is a one-line error naming them."""
    items = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what}: empty list")
    if choices is not None:
        bad = [t for t in items if t not in choices]
        if bad:
            raise UsageError(f"unknown {what} {bad[0]!r}; choose from {', '.join(choices)}")
    return list(dict.fromkeys(items))


def parse_backends(text: str) -> tuple[list[Backend], bool]:
    """``--backend`` -> (backends, whether 'all' was asked: then only those that run here)."""
    from cnnprof.timing.backends import BACKENDS, Backend

    items = parse_list(text, what="backend", choices=BACKENDS + ("all",))
    return (list(Backend), True) if "all" in items else ([Backend(b) for b in items], False)


def parse_precisions(text: str) -> tuple[list[Precision], bool]:
    """``--precision`` -> (precisions, whether 'all' was asked)."""
    from cnnprof.timing.precision import parse_precisions as parse

    asked_all = "all" in [t.strip().lower() for t in str(text).split(",")]
    return parse(text), asked_all


def check_cuda_graphs(cuda_graphs: bool, backends: Sequence[Backend], device: str) -> None:
    """``--cuda-graphs`` needs a backend that replays CUDA graphs (torch eager) among those timed, and CUDA."""
    if not cuda_graphs:
        return
    from cnnprof.timing import TimingOptions, check_device
    from cnnprof.timing.backends import Backend

    with_graphs = [b for b in Backend if b.record.cuda_graphs]
    if not any(b in with_graphs for b in backends):
        raise UsageError(f"--cuda-graphs applies to --backend {', '.join(with_graphs)} (eager)")
    check_device(TimingOptions(backend=with_graphs[0], device=device, cuda_graphs=True))


def parse_threads(text: str) -> int:
    """``--threads N|all`` -> the threads to time with: at most the cores this process may use
    (more is said on stderr, and capped)."""
    from cnnprof.terminal import say
    from cnnprof.timing.environment import capped_threads
    from cnnprof.timing.environment import parse_threads as parse

    asked = parse(text)
    threads, capped = capped_threads(asked)
    if capped:
        say(f"warning: --threads {asked}: this process may use {threads} cores; timing with {threads} thread(s)")
    return threads


def parse_batches(text: str) -> list[int]:
    """``"1,8,32"`` -> [1, 8, 32]; repeats by value dropped (``1,01,+1`` is one batch size)."""
    from cnnprof.numbers import MAX_BATCH, whole_list

    return whole_list(text, "batch", lo=1, hi=MAX_BATCH)


def capped_parallel(asked: int) -> int:
    """``--parallel N`` -> the workers to run at once: at most the cores this process may use
    (more is said on stderr, and capped, as ``--threads`` is)."""
    from cnnprof.numbers import whole
    from cnnprof.terminal import say
    from cnnprof.timing.environment import capped_threads

    asked = whole(asked, "--parallel", lo=1)
    workers, capped = capped_threads(asked)
    if capped:
        say(f"warning: --parallel {asked}: this process may use {workers} cores; running {workers} worker(s) at once")
    return workers
