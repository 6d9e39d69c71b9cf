"""A sweep's matrix: models x backends x precisions x batch sizes x threads x resolutions x devices,
from command-line options or a TOML file, and the cells it expands to.

The TOML format (every key optional; options given on the command line replace the file's)::

    # sweep.toml
    models = ["ghostnet*", "espnetv2"]      # names, aliases, patterns, user references
    backends = ["torch", "onnxruntime"]     # torch, compile, onnxruntime, openvino, tensorrt; [] = counting only
    precisions = ["fp32"]                   # fp32 (fp16, bf16, int8 where the timing supports them)
    batches = [1, 4]
    threads = [1]                           # numbers, or "all"
    resolutions = ["native", 160, "256x512"]
    devices = ["cpu"]
    input = "3x224x224"                     # the input of user models that declare none

    [run]
    passes = 2          # passes over all cells, each in its own shuffled order
    timeout = 600       # seconds one cell's worker may take before it is stopped
    min_time = 1.0      # seconds measured per cell and pass
    min_runs = 5        # calls measured per cell and pass, at least
    parallel = 2        # counting-only sweeps: workers at once (timing always runs one at a time)
    seed = 0            # of the shuffled order
    memory_limit = 8.0  # GB of address space per worker (none by default)

A key the format does not have, or a value of the wrong type, is one line naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from cnnprof.errors import UsageError, shorten
from cnnprof.numbers import MAX_BATCH, MAX_MEMORY_GB, real, whole
from cnnprof.timing.protocol import DEFAULT

NATIVE = "native"
DEFAULT_PASSES = 2
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_PRECISION = "fp32"


@dataclass(frozen=True)
class Cell:
    """One configuration to measure: a model on one backend, precision, batch, threads, resolution
    and device (``backend`` empty: count only)."""

    model: str
    backend: str = ""
    precision: str = DEFAULT_PRECISION
    batch: int = 1
    threads: int = 1
    resolution: str = NATIVE  # 'native', or 'HxW'
    device: str = "cpu"
    kind: str = ""  # on a cluster: the kind of node it runs on (its label); "" on this machine

    @property
    def timing(self) -> bool:
        return bool(self.backend)

    @property
    def key(self) -> str:
        """What names the cell in the database (stable: the same cell in two sweeps has one key)."""
        return (f"{self.model}|{self.backend or 'count'}|{self.precision}|b{self.batch}|t{self.threads}|"
                f"{self.resolution}|{self.device}" + (f"|{self.kind}" if self.kind else ""))

    def to_dict(self) -> dict[str, Any]:
        from cnnprof.workers import encode

        return encode(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Cell":
        from cnnprof.workers import decode

        return decode(data, cls)

    def describe(self) -> str:
        what = f"{self.backend} {self.precision}" if self.timing else "count"
        res = "" if self.resolution == NATIVE else f" @{self.resolution}"
        return (f"{self.model} {what} b{self.batch} t{self.threads}{res}" + ("" if self.device == "cpu" else
                                                                             f" {self.device}")
                + (f" on {self.kind}" if self.kind else ""))


@dataclass(frozen=True)
class Matrix:
    """What to sweep and how. ``cells()`` expands it (models resolved by the caller)."""

    models: tuple[str, ...] = ()
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    precisions: tuple[str, ...] = (DEFAULT_PRECISION,)
    batches: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    resolutions: tuple[str, ...] = (NATIVE,)
    devices: tuple[str, ...] = ("cpu",)
    input: str | None = None
    passes: int = DEFAULT_PASSES
    timeout_s: float = DEFAULT_TIMEOUT_S
    min_time_s: float | None = None  # per pass; default: the DEFAULT protocol's, shared by the passes
    min_runs: int | None = None
    parallel: int = 1
    seed: int = 0
    memory_limit_gb: float | None = None

    @property
    def timing(self) -> bool:
        return bool(self.backends)

    @property
    def effective_passes(self) -> int:
        """Counting is exact: one pass is enough."""
        return self.passes if self.timing else 1

    def pass_protocol(self) -> tuple[float, int]:
        """(seconds, calls) measured per cell and pass: by default the ``DEFAULT`` protocol's
        (bench's), shared among the passes, so that a cell pools as many samples as a bench row."""
        min_time = self.min_time_s if self.min_time_s is not None else DEFAULT.min_time_s / self.passes
        min_runs = self.min_runs if self.min_runs is not None else math.ceil(DEFAULT.min_runs / self.passes)
        return min_time, min_runs

    def cells(self, models: Sequence[str]) -> list[Cell]:
        """Every combination, in a fixed order (the driver shuffles it per pass)."""
        if not self.timing:
            return [Cell(model=m, backend="", precision=DEFAULT_PRECISION, batch=b, threads=1, resolution=r,
                         device="cpu") for m in models for b in self.batches for r in self.resolutions]
        return [Cell(model=m, backend=be, precision=p, batch=b, threads=t, resolution=r, device=d)
                for m in models for d in self.devices for be in self.backends for p in self.precisions
                for b in self.batches for t in self.threads for r in self.resolutions]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- TOML ---------------------------------------------------------------------------------------
TOP_KEYS = {"models", "backends", "precisions", "batches", "threads", "resolutions", "devices", "input", "run"}
RUN_KEYS = {"passes", "timeout", "min_time", "min_runs", "parallel", "seed", "memory_limit"}


def _close(key: str, keys: set[str]) -> str:
    import difflib

    near = difflib.get_close_matches(key, sorted(keys), n=1)
    return f" (did you mean {near[0]!r}?)" if near else f" (known keys: {', '.join(sorted(keys))})"


def _list(where: str, key: str, value: Any) -> list:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list) or any(isinstance(v, (list, dict, bool)) for v in value):
        raise UsageError(f"{where}: {key!r} must be a list of values, got {shorten(repr(value), 60)}")
    return value


def _strings(where: str, key: str, value: Any) -> list[str]:
    items = _list(where, key, value)
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise UsageError(f"{where}: {key!r} must be a list of strings, got {shorten(repr(bad[0]), 40)}")
    return items


def _number(where: str, key: str, value: Any, *, integer: bool = False, minimum: float = 0.0) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < minimum:
        kind = "a whole number" if integer else "a number"
        raise UsageError(f"{where}: {key!r} must be {kind} >= {minimum:g}, got {shorten(repr(value), 40)}")
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """The sweep file at ``path`` as option values (the names ``sweep`` takes); any problem is one
    line naming the file and the key."""
    import tomllib

    p = Path(path)
    where = str(p)
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"sweep file {where!r} is a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot read sweep file {where!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"sweep file {where!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"sweep file {where!r} is not valid TOML: {exc}") from None
    for key in data:
        if key not in TOP_KEYS:
            raise UsageError(f"{where}: unknown key {key!r}{_close(key, TOP_KEYS)}")
    out: dict[str, Any] = {}
    if "models" in data:
        out["models"] = _strings(where, "models", data["models"])
    if "backends" in data:
        out["backends"] = [b.lower() for b in _strings(where, "backends", data["backends"])]
    if "precisions" in data:
        out["precisions"] = [p.lower() for p in _strings(where, "precisions", data["precisions"])]
    if "devices" in data:
        out["devices"] = [d.lower() for d in _strings(where, "devices", data["devices"])]
    if "batches" in data:
        batches = [int(_number(where, "batches", b, integer=True, minimum=1))
                   for b in _list(where, "batches", data["batches"])]
        out["batches"] = list(dict.fromkeys(whole(b, f"{where}: 'batches'", lo=1, hi=MAX_BATCH) for b in batches))
    if "threads" in data:
        threads = []
        for t in _list(where, "threads", data["threads"]):
            threads.append(t if t == "all" else str(int(_number(where, "threads", t, integer=True, minimum=1))))
        out["threads"] = threads
    if "resolutions" in data:
        out["resolutions"] = [str(r) for r in _list(where, "resolutions", data["resolutions"])]
    if "input" in data:
        if not isinstance(data["input"], str):
            raise UsageError(f"{where}: 'input' must be a string such as \"3x224x224\"")
        out["input"] = data["input"]
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise UsageError(f"{where}: 'run' must be a table ([run])")
    for key in run:
        if key not in RUN_KEYS:
            raise UsageError(f"{where}: unknown key 'run.{key}'{_close(key, RUN_KEYS)}")
    if "passes" in run:
        out["passes"] = int(_number(where, "run.passes", run["passes"], integer=True, minimum=1))
    if "timeout" in run:
        out["timeout"] = float(_number(where, "run.timeout", run["timeout"], minimum=1))
    if "min_time" in run:
        out["min_time"] = float(_number(where, "run.min_time", run["min_time"]))
    if "min_runs" in run:
        out["min_runs"] = int(_number(where, "run.min_runs", run["min_runs"], integer=True, minimum=1))
    if "parallel" in run:
        out["parallel"] = int(_number(where, "run.parallel", run["parallel"], integer=True, minimum=1))
    if "seed" in run:
        out["seed"] = int(_number(where, "run.seed", run["seed"], integer=True, minimum=0))
    if "memory_limit" in run:
        out["memory_limit"] = real(_number(where, "run.memory_limit", run["memory_limit"], minimum=0.1),
                                   f"{where}: 'run.memory_limit' (GB)", lo=0.1, hi=MAX_MEMORY_GB)
    return out


def expand_models(refs: Sequence[str]) -> list[str]:
    """Model references -> the cells' models: names, aliases and patterns of the zoo become
    registered names (an unknown one is an error with the closest names); a user's reference
    (``file.py:factory``, an ``.onnx`` file) is kept as written: only a worker loads it, so that
    its code never runs in the sweep's own process."""
    from cnnprof import references
    from cnnprof.models import registry

    names: list[str] = []
    for ref in refs:
        found = [ref] if references.is_reference(ref) else registry.resolve([ref])
        names += [n for n in found if n not in names]
    if not names:
        raise UsageError("no model given")
    return names


def check_precisions(precisions: Sequence[str]) -> list[str]:
    """The precisions asked for, each one the timing knows (one line naming the choices if not);
    whether a backend can run it is the cell's own error row."""
    from cnnprof.timing import PRECISIONS

    for p in precisions:
        if p not in PRECISIONS:
            raise UsageError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    return list(precisions)


def parse_resolutions(values: Sequence[str]) -> list[str]:
    """'native', '224', '256x512' -> 'native', '224x224', '256x512'."""
    from cnnprof.targets import parse_resolution

    out = []
    for v in values:
        text = str(v).strip().lower()
        if text == NATIVE:
            out.append(NATIVE)
            continue
        h, w = parse_resolution(text)
        out.append(f"{h}x{w}")
    return list(dict.fromkeys(out))
