"""The result types every command is made of.

Plain frozen dataclasses holding numbers in base units (parameters, multiply-adds, bytes,
milliseconds). Nothing here imports torch, so reports can be read and written without it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar


class Choice(str, Enum):
    """A closed set of words that code branches on (verdicts, kinds): compared as members,
    written as their plain value in JSON, CSV and tables."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class RowKind(Choice):
    """The kinds of rows a report or the results database holds (the database's ``kind`` column):
    members are their plain string (``RowKind.PROFILE == "profile"``), so a kind read back from a
    file or a database compares equal to its member."""

    PROFILE = "profile"  # ProfileRow: profile, compare, bench, sweep
    LAYER = "layer"  # layerprof.LayerRow: profile --timing
    CLAIM = "claim"  # claims.ClaimResult
    GATE_RECORD = "gate-record"  # one model of a baseline
    GATE_CHECK = "gate-check"  # gate.core.Verdict
    PREDICT = "predict"  # lut.evaluate.PredictRow
    SCALE = "scale"  # scaling.ScaleRow
    EVAL = "eval"  # eval.EvalRow: accuracy on the user's images


ROW_KINDS: tuple[RowKind, ...] = tuple(RowKind)
RowKind.ALL = ROW_KINDS  # type: ignore[attr-defined]  # the spelling of store.columns.Kind.ALL


class Note(str):
    """A warning a measurement carries: the sentence shown to people (it *is* that string), with
    ``kind``, its short tag (``noisy``, ``few runs``, ``machine busy``, ``spin-wait``, ...), which
    is what code and summaries group by. Rows hold notes as values and join them only when
    written (``Notes``)."""

    kind: str

    def __new__(cls, kind: str, text: str) -> "Note":
        note = super().__new__(cls, text)
        note.kind = kind
        return note

    def __getnewargs__(self) -> tuple[str, str]:  # copy and pickle keep the kind
        return self.kind, str(self)

    @classmethod
    def tagged(cls, kind: str, detail: str) -> "Note":
        """``Note.tagged("noisy", "IQR is 12% of the median")`` -> "noisy: IQR is 12% of the median"."""
        return cls(kind, f"{kind}: {detail}")

    @classmethod
    def parse(cls, text: str) -> "Note":
        """A note read back from a file, where it was stored as its text: the kind is the text
        before the first colon (how ``tagged`` writes it)."""
        if isinstance(text, Note):
            return text
        return cls(text.split(":", 1)[0].strip(), text)


class Notes(tuple[Note, ...]):
    """The notes of one row, in order; written as one text cell, ``"noisy: ...; few runs: ..."``."""

    def __str__(self) -> str:
        return "; ".join(str(n) for n in self)

    def kinds(self) -> list[str]:
        """The kinds present, in order, each once."""
        return list(dict.fromkeys(n.kind for n in self))


def finite(value: Any) -> Any:
    """NaN and infinities (which JSON cannot hold) as None, in nested data too (tuples become lists)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A row value as JSON-ready data: dataclasses become dicts, tuples lists, choices their
    value, notes their text."""
    if isinstance(value, Choice):
        return value.value
    if isinstance(value, Notes):
        return str(value)
    if isinstance(value, Note):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, tuple, list, dict)) and not value)


def short_repr(obj: Any, names: tuple[str, ...] = (), *, most: int = 10) -> str:
    """``Counts(params=2542856, macs=56512456, ..., layers=<142 items>)``: the headline fields of a
    dataclass (``names``, else its fields in order), empty ones left out, text shortened, tuples
    and dicts shown by their length, nested records by their type, at most ``most`` of them. The
    whole value is still there: each field is one attribute away (``counts.layers``)."""
    parts = []
    for name in names or tuple(f.name for f in dataclasses.fields(obj)):
        value = getattr(obj, name)
        if _empty(value):
            continue
        if isinstance(value, (Notes, Note)):
            value = str(value)
        if isinstance(value, Enum):
            text = repr(value.value)
        elif isinstance(value, str):
            text = repr(value if len(value) <= 60 else value[:57] + "...")
        elif isinstance(value, (tuple, list, dict)) and not all(isinstance(v, (int, float)) for v in value):
            text = f"<{len(value)} items>"
        elif isinstance(value, (tuple, list)) and len(value) > 8:
            text = f"<{len(value)} values>"
        elif dataclasses.is_dataclass(value):
            text = f"<{type(value).__name__}>"
        else:
            text = repr(value)
        parts.append(f"{name}={text}")
    more = ", ..." if len(parts) > most else ""
    return f"{type(obj).__name__}({', '.join(parts[:most])}{more})"


class Row:
    """Base of every report row (a frozen dataclass): its field names, in order, are the columns
    of its CSV and the keys of its JSON objects; ``to_dict`` is the record written there.

    Its ``repr`` is short (``short_repr``: the ``HEADLINE`` fields, else the first non-empty
    ones); every field stays an attribute. A subclass gets that ``repr`` in its own namespace
    before ``@dataclass`` runs, and ``@dataclass`` keeps a ``__repr__`` a class already has."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    HEADLINE: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = Row.__repr__  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return short_repr(self, self.HEADLINE)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class LayerCount:
    """One leaf module as it ran: shapes, parameters, multiply-adds and bytes it touched."""

    name: str
    kind: str  # module class name, e.g. "Conv2d"
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int  # conv + linear multiply-adds attributed to this module
    bytes_moved: int  # fp32 bytes of input + weights + output
    calls: int = 1


@dataclass(frozen=True)
class ModuleCount:
    """One module of the tree (any depth), with its children's totals."""

    name: str
    kind: str
    depth: int
    params: int
    macs: int
    macs_fvcore: int


@dataclass(frozen=True)
class Counts:
    """What a model costs, counted from the built module (never from a table).

    ``macs`` follows the papers' "FLOPs": multiply-adds of convolutions (incl. transposed) and
    linear layers / matrix products. ``macs_fvcore`` is fvcore's total, which also counts batch
    norm, pooling and upsampling. ``uncounted`` lists operators that ran but that neither figure
    includes, with how many times they ran: a count is never a silent zero. ``status`` is
    ``complete`` when every uncounted operator is free of multiply-adds by the papers' convention
    (element-wise, activation, pooling, shape), else ``partial: <the others>``.
    """

    params: int
    macs: int
    macs_fvcore: int | None  # None where fvcore did not run (an ONNX file)
    activations: int  # output elements of conv / linear layers
    bytes_moved: int | None  # sum over leaf modules of fp32 input + weight + output bytes
    input_shape: tuple[int, ...]  # with batch
    status: str = "complete"
    # the largest sum of fp32 activation bytes alive at once in execution order (counting.peak_activations)
    peak_activation_bytes: int | None = None
    by_op: dict[str, int] = field(default_factory=dict)  # fvcore operator -> multiply-adds
    uncounted: dict[str, int] = field(default_factory=dict)  # operator -> calls
    layers: tuple[LayerCount, ...] = ()  # leaf modules, in execution order
    modules: tuple[ModuleCount, ...] = ()  # every module of the tree

    @property
    def flops(self) -> int:
        """2 x MACs, for readers who want floating-point operations."""
        return 2 * self.macs

    def __repr__(self) -> str:  # the headline figures; .layers, .modules, .by_op hold the rest
        return short_repr(self, ("params", "macs", "macs_fvcore", "activations", "peak_activation_bytes",
                                 "input_shape", "status", "uncounted", "layers", "modules"))


@dataclass(frozen=True)
class Environment:
    """Where a measurement was taken: enough to tell two machines or set-ups apart."""

    python: str
    platform: str
    cpu: str
    cores: int
    torch: str
    onnxruntime: str
    gpu: str
    threads: int
    env: dict[str, str]
    loadavg: tuple[float, float, float]
    tool: str  # cnnprof version and git revision, as people read it: "cnnprof 0.1.0 (abc1234+dirty)"
    openvino: str = ""  # its version where installed
    revision: str = ""  # the git revision of the tool ("abc1234+dirty"), or its version outside a checkout

    def __repr__(self) -> str:
        return short_repr(self, ("tool", "cpu", "cores", "gpu", "threads", "torch", "onnxruntime", "openvino"))

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    def describe(self) -> str:
        """One line: tool, versions, CPU, GPU, threads, load and the timing variables set."""
        load = ", ".join(f"{v:.2f}" for v in self.loadavg)
        gpu = f", {self.gpu}" if self.gpu else ""
        extra = "".join(f", {k}={v}" for k, v in self.env.items())
        openvino = f", openvino {self.openvino}" if self.openvino else ""
        return (f"{self.tool}; torch {self.torch}, onnxruntime {self.onnxruntime}{openvino}, python {self.python}; "
                f"{self.cpu}, {self.cores} cores{gpu}; {self.threads} thread(s); load {load}{extra}")


@dataclass(frozen=True)
class Latency:
    """The statistics of one timed configuration. Times in milliseconds."""

    backend: str
    device: str
    threads: int
    batch: int
    samples: tuple[float, ...]
    median: float
    mean: float
    std: float
    p10: float
    p90: float
    p99: float
    iqr: float
    min: float
    ci_low: float  # 95% confidence interval of the median
    ci_high: float
    warnings: Notes = Notes()
    setup_s: float | None = None  # compile time, or ONNX Runtime session creation
    export_s: float | None = None  # ONNX export (0-ish when a cached export was reused)
    first_run_ms: float | None = None
    parity_max_abs: float | None = None  # max |output - torch eager output|
    precision: str = "fp32"
    parity_sqnr_db: float | None = None  # signal-to-quantization-noise ratio against fp32 torch eager
    parity_top1_agreement: float | None = None  # share of inputs (pixels) whose arg-max class agrees
    peak_memory_bytes: int | None = None  # peak resident growth of a fresh worker (CUDA: max allocated)
    # 95% upper confidence bounds of p90 / p99 (timing.stats.tail_upper); None below 64 / 662 samples
    p90_upper: float | None = None
    p99_upper: float | None = None

    @property
    def runs(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:  # .samples holds every timed call
        return short_repr(self, ("backend", "precision", "device", "threads", "batch", "median", "p90", "iqr",
                                 "samples", "warnings"))


@dataclass(frozen=True)
class ProfileRow(Row):
    """One model x input x backend: what every report is made of.

    CSV headers come from these fields in this order, so columns are stable whatever a run
    measured; a field a run did not measure is ``None`` (an empty CSV cell, JSON null).

    The tail percentiles: ``latency_ms_p90`` and ``latency_ms_p99`` are the samples' percentiles
    (numpy's linear interpolation), estimates only; ``latency_ms_p90_upper`` and
    ``latency_ms_p99_upper`` bound them from above with 95% confidence, distribution-free (an
    order statistic, ``timing.stats.upper_rank``). A bound is None below MLPerf Inference's
    minimum sample counts, 64 calls for p90 and 662 for p99, and ``latency_tails`` then says so
    ("p99 from 200 calls: too few for a bound (needs 662, ...)"); it is not a warning, since most
    runs are too short for tails.
    """

    model: str
    family: str = ""
    input: str = ""  # CxHxW, without batch
    batch: int = 1
    params: int | None = None
    macs: int | None = None
    macs_fvcore: int | None = None
    activations: int | None = None
    bytes_moved: int | None = None
    peak_activation_bytes: int | None = None
    uncounted_ops: str = ""
    counts_status: str = ""
    backend: str = ""
    device: str = ""
    threads: int | None = None
    precision: str = ""
    # where the network's weights came from: "random", "<file>@sha256:<12 hex>" or
    # "package:<distribution>==<version>" (models/weights.py); "" for an ONNX file's own
    weights: str = "random"
    latency_ms_median: float | None = None
    latency_ms_mean: float | None = None
    latency_ms_std: float | None = None
    latency_ms_p10: float | None = None
    latency_ms_p90: float | None = None
    latency_ms_p99: float | None = None
    latency_ms_p90_upper: float | None = None  # 95% upper bound of p90; None below 64 calls
    latency_ms_p99_upper: float | None = None  # 95% upper bound of p99; None below 662 calls
    latency_tails: str = ""  # why a tail bound is missing (too few calls); empty when both are there
    latency_ms_iqr: float | None = None
    latency_ms_min: float | None = None
    latency_ms_ci_low: float | None = None
    latency_ms_ci_high: float | None = None
    runs: int | None = None
    throughput_per_s: float | None = None
    gmacs_per_s: float | None = None
    setup_s: float | None = None
    export_s: float | None = None
    first_run_ms: float | None = None
    parity_max_abs: float | None = None
    parity_sqnr_db: float | None = None
    parity_top1_agreement: float | None = None
    peak_memory_bytes: int | None = None
    warnings: Notes = Notes()  # written as one text cell, "; "-separated
    environment: Environment | None = None  # fingerprint of where a latency was measured
    error: str = ""

    HEADLINE: ClassVar[tuple[str, ...]] = ("model", "input", "batch", "params", "macs", "backend", "precision",
                                           "device", "threads", "latency_ms_median", "warnings", "error")


def format_shape(shape: tuple[int, ...]) -> str:
    """(3, 224, 224) -> '3x224x224'."""
    return "x".join(str(int(s)) for s in shape)


def format_uncounted(uncounted: dict[str, int]) -> str:
    """{'aten::silu': 49} -> 'aten::silu:49' (sorted, ';'-separated): stable in a CSV cell."""
    return ";".join(f"{op}:{n}" for op, n in sorted(uncounted.items()))


# -- the tail percentiles ---------------------------------------------------------------------------
# The fewest samples a tail percentile is reported from with a bound: MLPerf Inference's minimum
# query counts for its 90th and 99th percentile latency (its early-stopping rule). Below them a
# bound may exist (p90 from 29 samples, p99 from 299) but the row says "too few" instead.
TAIL_MINIMUMS: dict[int, int] = {90: 64, 99: 662}


def tail_note(n: int) -> str | None:
    """The sentence a row carries when ``n`` samples are too few for a tail percentile's bound
    (``TAIL_MINIMUMS``): "p99 from 200 calls: too few for a bound (needs 662, --min-runs 662)";
    None when both have one. A row holds it in ``latency_tails``, not among its warnings: most runs
    are too short for tails, and a warning on every row would drown the ones that matter."""
    short = [(p, need) for p, need in sorted(TAIL_MINIMUMS.items()) if n < need]
    if not short:
        return None
    if len(short) == 1:
        (p, need), = short
        return f"p{p} from {n} calls: too few for a bound (needs {need}, --min-runs {need})"
    names = " and ".join(f"p{p}" for p, _ in short)
    needs = ", ".join(f"p{p} needs {need}" for p, need in short)
    return f"{names} from {n} calls: too few for a bound ({needs}, --min-runs {short[-1][1]})"


def counts_row(
    *, model: str, family: str, counts: Counts, input_shape: tuple[int, ...], batch: int
) -> ProfileRow:
    """The counting part of a report row."""
    return ProfileRow(
        model=model,
        family=family,
        input=format_shape(input_shape),
        batch=batch,
        params=counts.params,
        macs=counts.macs,
        macs_fvcore=counts.macs_fvcore,
        activations=counts.activations,
        bytes_moved=counts.bytes_moved,
        peak_activation_bytes=counts.peak_activation_bytes,
        uncounted_ops=format_uncounted(counts.uncounted),
        counts_status=counts.status,
    )


def with_latency(row: ProfileRow, latency: Latency, macs: int | None) -> ProfileRow:
    """A copy of ``row`` carrying ``latency``'s statistics, and in ``latency_tails`` why a bound of
    p90 or p99 is missing where its calls are too few (``tail_note``)."""
    seconds = latency.median / 1e3
    return dataclasses.replace(
        row,
        backend=latency.backend,
        device=latency.device,
        threads=latency.threads,
        precision=latency.precision,
        latency_ms_median=latency.median,
        latency_ms_mean=latency.mean,
        latency_ms_std=latency.std,
        latency_ms_p10=latency.p10,
        latency_ms_p90=latency.p90,
        latency_ms_p99=latency.p99,
        latency_ms_p90_upper=latency.p90_upper,
        latency_ms_p99_upper=latency.p99_upper,
        latency_tails=tail_note(latency.runs) or "",
        latency_ms_iqr=latency.iqr,
        latency_ms_min=latency.min,
        latency_ms_ci_low=latency.ci_low,
        latency_ms_ci_high=latency.ci_high,
        runs=latency.runs,
        throughput_per_s=latency.batch / seconds if seconds > 0 else None,
        gmacs_per_s=(macs / seconds / 1e9) if (macs and seconds > 0) else None,
        setup_s=latency.setup_s,
        export_s=latency.export_s,
        first_run_ms=latency.first_run_ms,
        parity_max_abs=latency.parity_max_abs,
        parity_sqnr_db=latency.parity_sqnr_db,
        parity_top1_agreement=latency.parity_top1_agreement,
        peak_memory_bytes=latency.peak_memory_bytes,
        warnings=latency.warnings,
    )
