"""The baseline file: what ``cnnprof gate record`` writes and ``cnnprof gate check`` reads.

A baseline is JSON with a versioned ``schema``. It keeps everything a later check needs to
judge without trusting anything it cannot see again: the exact parameter and MAC counts, every
timed call (model and the calibration calls right before and after it, per process), how they
were taken (backend, precision, threads, protocol, calibration version) and where (environment
fingerprint). ``precision`` (fp32 when absent, as in files written before it existed) is what
``check`` times again.

Layout (``schema`` = ``cnnprof.gate.baseline/1``)::

    {"schema": ..., "created": "2026-...Z", "backend": "torch", "precision": "fp32", "threads": 1,
     "threads_spec": "1",
     "calibration": {"version": 1, "name": "gate_calibration_v1", "input": [3, 128, 128]},
     "protocol": {"processes": 5, "min_time_s": 4.0, "min_rounds": 10, "warmup_s": 0.3},
     "environment": {...fingerprint...},
     "runs": [{"others_cores": 0.4, "rounds": 52, "measure_s": 4.1, "wall_s": 8.6}, ...],
     "models": [{"name": "efficientnet_b0", "input": [3, 224, 224], "params": 5288548,
                 "macs": 385814752,
                 "processes": [{"ms": [...], "calibration_before_ms": [...],
                                "calibration_after_ms": [...], "cpu_ms": [...],
                                "calibration_before_cpu_ms": [...],
                                "calibration_after_cpu_ms": [...]}, ...]}, ...]}

Loading never trusts the file: a missing, empty, truncated or corrupt file, another schema, a
missing or mistyped field, or a model the registry no longer has is a ``UsageError`` (exit 2)
with one line saying which file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cnnprof.errors import UsageError, shorten
from cnnprof.files import read_json
from cnnprof.rows import plain

SCHEMA = "cnnprof.gate.baseline/1"
# Copies of every network per process (``gate record --instances``; a baseline's protocol is held
# to it too): each copy is the network's weights and buffers again, in one process.
MAX_INSTANCES = 16


@dataclass(frozen=True)
class ProcessSamples:
    """One process's calls of one model, each with the calibration calls around it.

    Wall-clock milliseconds, and the same calls on the CPU clock of the timing thread (``cpu_``,
    empty when not recorded): with one thread, that clock leaves out the time another process
    held the core, the commonest noise on a shared machine.
    """

    ms: tuple[float, ...]
    calibration_before_ms: tuple[float, ...]
    calibration_after_ms: tuple[float, ...]
    cpu_ms: tuple[float, ...] = ()
    calibration_before_cpu_ms: tuple[float, ...] = ()
    calibration_after_cpu_ms: tuple[float, ...] = ()

    def clock(self, clock: str) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """(model, calibration before, calibration after) on the ``"wall"`` or ``"cpu"`` clock."""
        if clock == "cpu":
            return self.cpu_ms, self.calibration_before_cpu_ms, self.calibration_after_cpu_ms
        return self.ms, self.calibration_before_ms, self.calibration_after_ms

    @property
    def has_cpu(self) -> bool:
        return bool(self.cpu_ms)

    def to_dict(self) -> dict[str, Any]:
        """As the baseline file holds it: the CPU-clock lists only where recorded (files written
        before that clock existed have none, and read and write alike)."""
        out = {"ms": list(self.ms), "calibration_before_ms": list(self.calibration_before_ms),
               "calibration_after_ms": list(self.calibration_after_ms)}
        if self.has_cpu:
            out.update(cpu_ms=list(self.cpu_ms), calibration_before_cpu_ms=list(self.calibration_before_cpu_ms),
                       calibration_after_cpu_ms=list(self.calibration_after_cpu_ms))
        return out


@dataclass(frozen=True)
class ModelRecord:
    """A model as recorded: exact counts at its input, and its samples per process."""

    name: str
    input: tuple[int, int, int]
    params: int
    macs: int
    processes: tuple[ProcessSamples, ...]

    def to_dict(self) -> dict[str, Any]:
        """Its fields (``rows.plain``), each process as ``ProcessSamples.to_dict`` writes it."""
        return {**plain(self), "processes": [p.to_dict() for p in self.processes]}


@dataclass(frozen=True)
class Baseline:
    backend: str
    threads: int
    threads_spec: str  # what the user asked for ("1", "all"): a check resolves it again
    calibration: dict[str, Any]
    protocol: dict[str, Any]
    environment: dict[str, Any]
    models: tuple[ModelRecord, ...]
    runs: tuple[dict[str, Any], ...] = ()
    created: str = ""
    schema: str = SCHEMA
    precision: str = "fp32"
    extra: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> ModelRecord:
        return next(m for m in self.models if m.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "created": self.created, "backend": self.backend, "precision": self.precision,
            "threads": self.threads,
            "threads_spec": self.threads_spec, "calibration": self.calibration, "protocol": self.protocol,
            "environment": self.environment, "runs": list(self.runs), "models": [m.to_dict() for m in self.models],
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"


# -- loading and validation ------------------------------------------------------------------------
class _Invalid(Exception):
    """A problem in the document; turned into one UsageError line naming the file."""


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise _Invalid(f"{where or 'top level'} is not an object")
    if key not in obj:
        raise _Invalid(f"field {where + '.' if where else ''}{key} is missing")
    value = obj[key]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind))
    if not ok:
        raise _Invalid(f"field {where + '.' if where else ''}{key} should be {_kind_name(kind)}, "
                       f"got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number", bool: "true/false"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _times(obj: dict, key: str, where: str) -> tuple[float, ...]:
    values = _field(obj, key, list, where)
    if not values:
        raise _Invalid(f"field {where}.{key} is empty")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise _Invalid(f"field {where}.{key} holds {v!r}, not a positive time in ms")
    return tuple(float(v) for v in values)


def _shape(value: Any, where: str) -> tuple[int, int, int]:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise _Invalid(f"field {where} should be [C, H, W] positive integers, got {value!r}")
    return (value[0], value[1], value[2])


def _count(obj: dict, key: str, where: str) -> int:
    value = _field(obj, key, int, where)
    if value < 0:
        raise _Invalid(f"field {where}.{key} is negative")
    return value


def _threads(doc: dict, threads: int, environment: dict) -> str:
    """The threads a check asks for (``threads_spec``), within the bounds of ``--threads``
    (``parse_threads``: a positive count or 'all'); ``threads``, what the recording timed with,
    at most the cores it recorded (``gate record`` caps the threads at the cores, as ``--threads`` does)."""
    from cnnprof.timing.environment import parse_threads

    spec = doc.get("threads_spec", str(threads))
    for value, key in ((threads, "threads"), (spec, "threads_spec")):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _Invalid(f"field {key} should be a count of threads or 'all', got {type(value).__name__}")
        try:
            parse_threads(value)
        except UsageError as exc:
            raise _Invalid(f"field {key}: {exc}") from None
    cores = environment.get("cores")
    if isinstance(cores, int) and not isinstance(cores, bool) and cores >= 1 and threads > cores:
        raise _Invalid(f"field threads is {threads}, more than the {cores} cores of the machine that recorded it "
                       "(gate record never times with more threads than cores)")
    return str(spec)


def _protocol(protocol: dict) -> dict:
    """The protocol, its ``instances`` within the bounds of ``gate record --instances``."""
    if "instances" in protocol:
        n = protocol["instances"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_INSTANCES:
            raise _Invalid(f"field protocol.instances is {shorten(repr(n), 40)}, not a count from 1 to {MAX_INSTANCES}")
    return protocol


def parse_baseline(doc: Any) -> Baseline:
    """A validated ``Baseline`` from a decoded JSON document (raises ``_Invalid``)."""
    schema = _field(doc, "schema", str, "")
    if schema != SCHEMA:
        raise _Invalid(f"schema is {schema!r}, this cnnprof reads {SCHEMA!r}")
    calibration = _field(doc, "calibration", dict, "")
    _field(calibration, "version", int, "calibration")
    from cnnprof.references import same_model

    models = []
    seen: dict[tuple, str] = {}
    for i, item in enumerate(_field(doc, "models", list, "")):
        where = f"models[{i}]"
        name = _field(item, "name", str, where)
        key = same_model(name)
        if key in seen:
            spelled = "" if seen[key] == name else f" (as {shorten(seen[key])!r} and {shorten(name)!r})"
            raise _Invalid(f"model {shorten(name)!r} appears twice{spelled}")
        seen[key] = name
        procs = []
        for j, proc in enumerate(_field(item, "processes", list, where)):
            pw = f"{where}.processes[{j}]"
            ms = _times(proc, "ms", pw)
            before = _times(proc, "calibration_before_ms", pw)
            after = _times(proc, "calibration_after_ms", pw)
            cpu: tuple[tuple[float, ...], ...] = ((), (), ())
            if "cpu_ms" in proc:
                cpu = tuple(_times(proc, k, pw) for k in ("cpu_ms", "calibration_before_cpu_ms",
                                                          "calibration_after_cpu_ms"))
            if len({len(ms), len(before), len(after), *(len(c) for c in cpu if c)}) != 1:
                raise _Invalid(f"{pw}: its lists of times differ in length")
            procs.append(ProcessSamples(ms, before, after, *cpu))
        if not procs:
            raise _Invalid(f"field {where}.processes is empty")
        models.append(ModelRecord(name=name, input=_shape(_field(item, "input", list, where), f"{where}.input"),
                                  params=_count(item, "params", where), macs=_count(item, "macs", where),
                                  processes=tuple(procs)))
    if not models:
        raise _Invalid("field models is empty")
    threads = _field(doc, "threads", int, "")
    environment = _field(doc, "environment", dict, "")
    threads_spec = _threads(doc, threads, environment)
    precision = _field(doc, "precision", str, "") if "precision" in doc else "fp32"
    from cnnprof.timing.precision import PRECISIONS

    if precision not in PRECISIONS:
        raise _Invalid(f"field precision is {precision!r}, not one of {', '.join(PRECISIONS)}")
    return Baseline(
        schema=schema,
        created=str(doc.get("created", "")),
        backend=_field(doc, "backend", str, ""),
        threads=threads,
        threads_spec=threads_spec,
        calibration=calibration,
        protocol=_protocol(_field(doc, "protocol", dict, "")),
        environment=environment,
        runs=tuple(r for r in doc.get("runs", []) if isinstance(r, dict)),
        models=tuple(models),
        precision=precision,
    )


def load_baseline(path: str | os.PathLike, *, trust: Sequence[str] = ()) -> Baseline:
    """Read and validate a baseline; every problem is a one-line ``UsageError`` (exit 2).

    Its models are data: a reference that would run code the trust policy does not allow
    (``references.check_trusted``; ``trust``: the ``--trust`` values) is refused here, before
    anything resolves it."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"baseline {str(p)!r} does not exist (write one with `cnnprof gate record MODEL... "
                         f"--baseline {p}`)")
    doc = read_json(p, "gate baseline")
    try:
        baseline = parse_baseline(doc)
    except OverflowError:
        raise UsageError(f"baseline {str(p)!r} is not a cnnprof gate baseline: it holds a number too large to "
                         "use") from None
    except _Invalid as exc:
        raise UsageError(f"baseline {str(p)!r} is not a cnnprof gate baseline: {exc}") from None
    from cnnprof.references import check_trusted

    check_trusted([m.name for m in baseline.models], source=p, trusted=trust, what="baseline")
    return baseline


def check_models_exist(baseline: Baseline, source: str) -> None:
    """Every model of the baseline must still exist: a registered one under exactly that name, a
    user's reference (file, factory, ONNX file) must still resolve at its recorded input; and that
    input must be one ``--resolution`` / ``--input`` would take (the network's downsampling, this
    machine's memory: ``targets.target_input``)."""
    from cnnprof import references
    from cnnprof.errors import CnnprofError
    from cnnprof.models import registry
    from cnnprof.targets import check_workload, resolve_one, target_input

    known = set(registry.list_models("*"))
    for m in baseline.models:
        if references.is_reference(m.name):
            try:
                target = resolve_one(m.name, m.input)
            except CnnprofError as exc:
                raise UsageError(f"baseline {source!r} names model {m.name!r}, which no longer loads: {exc}") from None
        elif m.name not in known:
            raise UsageError(f"baseline {source!r} names model {m.name!r}, which cnnprof no longer has; "
                             f"record the baseline again (`cnnprof gate record ... --update`)")
        else:
            target = resolve_one(m.name, m.input)
        try:
            if target.onnx_path is not None or target.spec is None:
                check_workload(target, m.input, 1)
            else:
                if m.input[0] != target.input[0]:
                    raise UsageError(f"{m.name} takes {target.input[0]} input channel(s), not {m.input[0]}")
                target_input(target, m.input[1:])
        except CnnprofError as exc:
            raise UsageError(f"baseline {source!r}: input {'x'.join(map(str, m.input))} of model {m.name!r}: "
                             f"{exc}") from None
