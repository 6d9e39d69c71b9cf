"""The latency table file: entries, the environments they were measured in, and space indexes.

One JSON file per backend, thread count and clock (default ``models/lut-<backend>-t<threads>.json``,
``...-cpu.json`` for the CPU-time clock):

* ``entries``: block key -> label, input shape, median / IQR / p10 / p90 (ms), runs, warnings,
  when, and the id of the environment it was measured in;
* ``environments``: id -> fingerprint (CPU model, backend, threads, clock, torch and onnxruntime
  versions decide the id; cores, Python, load and the tool's revision are kept for the record);
* ``spaces``: a search space's layer x candidate grid of keys, its stem and heads, so that an
  architecture is a vector of indices (``cnnprof.lut.predict``);
* ``mode``: how the entries were measured: ``isolated`` (each block alone, called again and again
  on a random input) or ``in-context`` (each block inside whole networks of the space, read in
  place; ``cnnprof.lut.context``), with the per-context values an in-context entry averages;
* ``allocator``: ``steady`` when ``malloc`` was kept from returning memory to the kernel while
  measuring (``cnnprof.lut.probe.use_allocator``; every later check of the table does the same);
* ``probe``: the speed probe whose reference time the entries are normalised to (in-context
  tables; ``cnnprof.lut.probe.SpeedProbe``), so that a later measurement can be put in the same
  units whatever the machine's speed is then;
* ``calibration``: the residual model fitted by ``lut calibrate`` (a per-network overhead and a
  scale per block type, with its held-out accuracy), or the older single scale of ``lut build
  --calibrate`` (``Calibration`` reads both); never applied silently: predictions report the raw
  sum first.

``open_table`` is where every build starts: the table at a path to add to, or a new one.
Files are written atomically. A file that is not valid JSON, or not this schema, is refused with
one line (exit 2); an entry from another environment is reported with the difference.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnnprof.errors import UsageError
from cnnprof.files import MODELS_DIR, read_json
from cnnprof.rows import Choice, Note


class Mode(Choice):
    """How a table's entries were measured: each block alone, or read in place inside networks."""

    ISOLATED = "isolated"
    IN_CONTEXT = "in-context"


class Allocator(Choice):
    """How ``malloc`` behaved while measuring (``probe.use_allocator``): ``steady`` keeps what is
    freed (no call pays page faults that depend on what ran before), ``default`` is glibc as it starts."""

    STEADY = "steady"
    DEFAULT = "default"


SCHEMA = "cnnprof-lut/1"
BACKENDS = ("torch", "onnxruntime")
CLOCKS = ("wall", "cpu")
MODES = tuple(m.value for m in Mode)
ALLOCATORS = tuple(a.value for a in Allocator)
ENV_KEYS = ("cpu", "backend", "threads", "clock", "torch", "onnxruntime")  # what makes measurements comparable


class TableError(UsageError):
    """A table file that cannot be used: missing, corrupt, truncated, wrong schema (exit 2)."""


def default_path(backend: str = "torch", threads: int = 1, clock: str = "wall", folder: str | Path = MODELS_DIR) -> Path:
    """Where ``lut build`` writes, and ``lut predict`` reads, by default."""
    suffix = "" if clock == "wall" else f"-{clock}"
    return Path(folder) / f"lut-{backend}-t{threads}{suffix}.json"


def find_default(backend: str | None, threads: int | None, clock: str | None, folder: str | Path = MODELS_DIR) -> Path:
    """The table ``lut predict`` reads when given no --table: the one ``lut build`` wrote with the
    same --backend/--threads/--clock; with no --clock named, the wall-clock table, else the
    cpu-clock one. None there: one line naming every file looked for and the options to pass."""
    backend, threads = backend or "torch", threads or 1
    clocks = [clock] if clock else ["wall", "cpu"] if threads == 1 else ["wall"]
    paths = [default_path(backend, threads, c, folder) for c in clocks]
    for p in paths:
        if p.exists():
            return p
    looked = " nor ".join(repr(str(p)) for p in paths)
    raise TableError(f"no latency table at {looked}; build one with `cnnprof lut build` and the same --backend, "
                     "--threads and --clock, or give --table PATH")


def environment(backend: str, threads: int, clock: str = "wall") -> dict[str, Any]:
    """This process's fingerprint for a table: the comparable keys first, then the record."""
    from cnnprof.timing.environment import fingerprint

    fp = fingerprint(threads).to_dict()
    env = {k: fp.get(k) for k in ENV_KEYS if k not in ("backend", "clock")}
    env["backend"] = backend
    env["clock"] = clock
    for k in ("cores", "python", "platform", "env", "tool", "loadavg"):
        env[k] = fp.get(k)
    from cnnprof.timing.backends import record

    if "onnxruntime" not in record(backend).env_keys:
        env["onnxruntime"] = ""  # not involved: a new ORT must not invalidate a torch table
    return env


def env_id(env: dict[str, Any]) -> str:
    text = json.dumps({k: env.get(k) for k in ENV_KEYS}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def env_differences(measured: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """'cpu: 'A' -> 'B'' for each comparable key that differs (measured -> here)."""
    return [f"{k}: {measured.get(k)!r} -> {here.get(k)!r}" for k in ENV_KEYS if measured.get(k) != here.get(k)]


@dataclass(frozen=True)
class Entry:
    """One measured block. Times in milliseconds."""

    label: str
    input: tuple[int, ...]
    median_ms: float
    iqr_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    env: str
    measured_at: str = ""
    warnings: tuple[str, ...] = ()
    rounds: int = 1
    # in-context entries: one value per (network, round) the block was read in; their mean is the
    # entry's latency, their standard deviation how much the context moves it
    contexts: int = 0
    mean_ms: float | None = None
    spread_ms: float = 0.0
    context_ms: tuple[float, ...] = ()

    @property
    def latency_ms(self) -> float:
        """What a prediction adds up: the mean over contexts (in-context), else the median."""
        return self.mean_ms if self.contexts and self.mean_ms is not None else self.median_ms

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input"] = list(self.input)
        d["warnings"] = list(self.warnings)
        if not self.contexts:  # isolated entries keep the old file layout
            for k in ("contexts", "mean_ms", "spread_ms", "context_ms"):
                d.pop(k)
        else:
            d["context_ms"] = list(self.context_ms)
        return d


@dataclass(frozen=True)
class SpaceIndex:
    """A search space in the table: ``layers[l][c]`` is the key of candidate ``c`` at layer ``l``."""

    candidates: tuple[str, ...]
    layers: tuple[tuple[str, ...], ...]
    stem: str
    heads: dict[str, str]  # head width -> key
    default_head: str
    input: tuple[int, ...]
    glue: str = ""  # in-context tables: the key of the time a network spends outside its parts

    def to_dict(self) -> dict[str, Any]:
        d = {
            "candidates": list(self.candidates), "layers": [list(r) for r in self.layers], "stem": self.stem,
            "heads": dict(self.heads), "default_head": self.default_head, "input": list(self.input),
        }
        if self.glue:
            d["glue"] = self.glue
        return d

    def type_of(self) -> dict[str, str]:
        """Key -> candidate name for every cell (the block types a calibration scales)."""
        out: dict[str, str] = {}
        for row in self.layers:
            for cand, key in zip(self.candidates, row):
                out.setdefault(key, cand)
        return out


# -- the calibration stored with the table --------------------------------------------------------
METHOD = ("per-network overhead + per-block-type scale, or one shared scale, or none, whichever has the least "
          "leave-one-out error on the training networks (ridge, leave-one-out strength), relative error")


@dataclass(frozen=True)
class Calibration:
    """The fitted correction (``lut calibrate``, ``cnnprof.lut.correction``): ``overhead_ms`` per
    network, ``scales`` per block type (a type the fit did not see gets ``default_scale``), and the
    record of how it was fitted; or the single scale of ``lut build --calibrate``."""

    overhead_ms: float = 0.0
    scales: dict[str, float] = field(default_factory=dict)
    default_scale: float = 1.0
    method: str = METHOD
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        """A stored calibration; also the single scale of ``lut build --calibrate``."""
        if not isinstance(d, dict):
            raise TypeError("the calibration is not a JSON object")
        if "scales" in d:
            scales = {str(k): _finite(v, f"calibration scale {k}") for k, v in dict(d["scales"]).items()}
            record = {k: v for k, v in d.items() if k not in ("overhead_ms", "scales", "default_scale", "method")}
            return cls(_finite(d.get("overhead_ms", 0.0), "calibration overhead_ms"), scales,
                       _finite(d.get("default_scale", 1.0), "calibration default_scale"), str(d.get("method", METHOD)),
                       record)
        scale = _finite(d["scale"], "calibration scale")
        if scale <= 0:
            raise ValueError("calibration scale must be positive")
        return cls(0.0, {}, scale, str(d.get("method", "single scale")), {k: v for k, v in d.items() if k != "method"})

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "overhead_ms": self.overhead_ms, "scales": dict(self.scales),
                "default_scale": self.default_scale, **self.record}

    def scale_of(self, kind: str | None) -> float:
        return self.scales.get(kind, self.default_scale) if kind is not None else self.default_scale

    @property
    def single(self) -> bool:
        """An older single-scale calibration (no overhead, one scale for everything)."""
        return not self.scales

    def apply(self, fixed_ms: float, by_type: dict[str | None, float]) -> float:
        """Calibrated latency from the fixed parts' sum and the blocks' sums by type."""
        if self.single:
            return self.default_scale * (fixed_ms + sum(by_type.values()))
        return self.overhead_ms + fixed_ms + sum(self.scale_of(t) * v for t, v in by_type.items())

    def trained_on(self) -> set[str]:
        return set(self.record.get("trained_on", []))


def _finite(value: Any, what: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite")
    return v


# -- the table -------------------------------------------------------------------------------------
@dataclass
class Table:
    backend: str
    threads: int
    clock: str = "wall"  # "cpu": the calling thread's CPU time, immune to pre-emption by other processes
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    spaces: dict[str, SpaceIndex] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    mode: Mode = Mode.ISOLATED
    allocator: Allocator = Allocator.DEFAULT  # steady: malloc kept from returning memory while measuring
    probe: dict[str, Any] | None = None  # {"name", "clock", "reference_ms"}: the unit of normalised entries
    contexts: dict[str, str] = field(default_factory=dict)  # in-context: network measured -> environment id

    def __post_init__(self) -> None:
        self.mode = Mode(self.mode)  # a plain "in-context" from a caller becomes the member
        self.allocator = Allocator(self.allocator)

    def to_json(self) -> str:
        doc = {
            "schema": SCHEMA,
            "backend": self.backend,
            "threads": self.threads,
            "clock": self.clock,
            "mode": self.mode,
            "allocator": self.allocator,
            "probe": self.probe,
            "contexts": self.contexts,
            "protocol": self.protocol,
            "environments": self.environments,
            "calibration": self.calibration,
            "spaces": {name: s.to_dict() for name, s in self.spaces.items()},
            "entries": {k: e.to_dict() for k, e in sorted(self.entries.items())},
        }
        return json.dumps(doc, indent=1, allow_nan=False) + "\n"

    def save(self, path: str | Path) -> Path:
        from cnnprof.files import write_atomic

        return write_atomic(path, self.to_json())

    def lookup(self, keys: list[str]) -> tuple[list[float | None], list[str]]:
        """Latencies of ``keys`` (None where missing) and the keys that are missing."""
        values = [self.entries[k].latency_ms if k in self.entries else None for k in keys]
        return values, [k for k, v in zip(keys, values) if v is None]

    def foreign(self, keys: list[str], here: dict[str, Any]) -> list[str]:
        """Differences between ``here`` and the environments that measured ``keys`` (deduplicated)."""
        out: list[str] = []
        for eid in sorted({self.entries[k].env for k in keys if k in self.entries}):
            for d in env_differences(self.environments.get(eid, {}), here):
                if d not in out:
                    out.append(d)
        return out


@dataclass
class BuildReport:
    """What a build did: per group of entries, how many there are, were measured now or reused."""

    path: Path
    seconds: float = 0.0
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> counts and ms
    foreign: list[str] = field(default_factory=list)  # environment differences of kept entries
    calibration: dict | None = None
    interrupted: bool = False
    networks: int = 0  # in-context builds: networks timed in place now


def open_table(path: str | Path, *, backend: str, threads: int, force: bool, clock: str = "wall",
               mode: Mode = Mode.ISOLATED, allocator: Allocator = Allocator.DEFAULT) -> Table:
    """The table at ``path`` to add to, or a new one (a corrupt file, or one of entries measured the
    other way, is replaced only with ``force``)."""
    p = Path(path)
    mode, allocator = Mode(mode), Allocator(allocator)
    if not p.exists():
        return Table(backend=backend, threads=threads, clock=clock, mode=mode, allocator=allocator)
    try:
        table = load(p)
    except TableError:
        if force:
            return Table(backend=backend, threads=threads, clock=clock, mode=mode, allocator=allocator)
        raise
    if (table.backend, table.threads, table.clock) != (backend, threads, clock):
        raise UsageError(
            f"{str(p)!r} holds {table.backend} entries at {table.threads} thread(s) ({table.clock} clock), not "
            f"{backend} at {threads} ({clock} clock): choose another --output"
        )
    if (table.mode, table.allocator) != (mode, allocator):
        if force:
            return Table(backend=backend, threads=threads, clock=clock, mode=mode, allocator=allocator)
        raise UsageError(
            f"{str(p)!r} holds {table.mode} entries measured with the {table.allocator} allocator, not {mode} ones "
            f"with the {allocator} one: choose another --output, or --force to replace it"
        )
    return table


# -- reading -------------------------------------------------------------------------------------
def load(path: str | Path) -> Table:
    """Read and check a table; any problem is one ``TableError`` line naming the file."""
    p = Path(path)
    if not p.exists():
        raise TableError(f"no latency table at {str(p)!r}; build one with `cnnprof lut build`")
    doc = read_json(p, "latency table", TableError)
    try:
        return parse(doc)
    except OverflowError:
        raise TableError(f"{str(p)!r} is not a valid latency table: a number too large to use") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise TableError(f"{str(p)!r} is not a valid latency table: {what}") from exc


def _runs(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: runs must be a positive integer, got {str(value)[:20]}")
    return value


def _positive(value: Any, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what} must be a finite non-negative number, got {value!r}")
    return v


def parse(doc: Any) -> Table:
    if not isinstance(doc, dict):
        raise TypeError("the file holds no JSON object")
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
    backend = doc["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    threads = int(doc["threads"])
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    clock = doc.get("clock", "wall")
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}")
    mode = doc.get("mode", Mode.ISOLATED)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    allocator = doc.get("allocator", Allocator.DEFAULT)
    if allocator not in ALLOCATORS:
        raise ValueError(f"unknown allocator {allocator!r}")
    probe = doc.get("probe")
    if probe is not None:
        probe = dict(probe)
        if _positive(probe["reference_ms"], "probe reference_ms") <= 0:
            raise ValueError("probe reference_ms must be positive")
    environments = {str(k): dict(v) for k, v in doc["environments"].items()}
    entries = {}
    for key, e in doc["entries"].items():
        if e["env"] not in environments:
            raise ValueError(f"entry {key!r} names an unknown environment {e['env']!r}")
        entries[str(key)] = Entry(
            label=str(e["label"]), input=tuple(int(s) for s in e["input"]),
            median_ms=_positive(e["median_ms"], f"{key}: median_ms"), iqr_ms=_positive(e["iqr_ms"], f"{key}: iqr_ms"),
            p10_ms=_positive(e["p10_ms"], f"{key}: p10_ms"), p90_ms=_positive(e["p90_ms"], f"{key}: p90_ms"),
            runs=_runs(e["runs"], key), env=str(e["env"]), measured_at=str(e.get("measured_at", "")),
            warnings=tuple(Note.parse(str(w)) for w in e.get("warnings", [])), rounds=int(e.get("rounds", 1)),
            **_context_fields(e, key),
        )
    spaces = {}
    for name, s in (doc.get("spaces") or {}).items():
        layers = tuple(tuple(str(k) for k in row) for row in s["layers"])
        candidates = tuple(str(c) for c in s["candidates"])
        if any(len(row) != len(candidates) for row in layers):
            raise ValueError(f"space {name!r}: a layer does not have one key per candidate")
        heads = {str(k): str(v) for k, v in s["heads"].items()}
        if s["default_head"] not in heads:
            raise ValueError(f"space {name!r}: default head {s['default_head']!r} is not among its heads")
        spaces[str(name)] = SpaceIndex(candidates, layers, str(s["stem"]), heads, str(s["default_head"]),
                                       tuple(int(v) for v in s["input"]), glue=str(s.get("glue", "")))
    calibration = doc.get("calibration")
    if calibration is not None:
        Calibration.from_dict(calibration)  # raises ValueError / KeyError on a malformed one
    contexts = {str(k): str(v) for k, v in (doc.get("contexts") or {}).items()}
    return Table(backend=backend, threads=threads, clock=clock, environments=environments, entries=entries,
                 spaces=spaces, calibration=calibration, protocol=dict(doc.get("protocol") or {}), mode=Mode(mode),
                 allocator=Allocator(allocator), probe=probe, contexts=contexts)


def _context_fields(e: dict, key: str) -> dict[str, Any]:
    contexts = int(e.get("contexts", 0))
    if contexts <= 0:
        return {}
    values = tuple(_positive(v, f"{key}: context_ms") for v in e.get("context_ms", []))
    return {"contexts": contexts, "mean_ms": _positive(e["mean_ms"], f"{key}: mean_ms"),
            "spread_ms": _positive(e.get("spread_ms", 0.0), f"{key}: spread_ms"), "context_ms": values}
