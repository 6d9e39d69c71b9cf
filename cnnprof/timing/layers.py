"""Per-layer latency: where the time of one forward pass goes, on PyTorch eager or ONNX Runtime.

**Eager** (``time_layers_eager``): forward pre/post hooks read ``perf_counter`` around each
timed module (the leaf modules, or the modules at a chosen depth) inside the real forward pass,
many runs, median per module. Each step runs the model twice, once without hooks (the
whole-model latency coverage is stated against) and once with them, alternating which comes
first; modules that do nothing in inference (``Identity``, ``Dropout``, ``DropPath``) are not
hooked. CPU only: nothing on the CPU is asynchronous, so no synchronisation is needed.
What the hooks cannot see is the work a parent module does itself (a residual add, a
``torch.cat``, SE's rescaling product, an interpolation): that is what keeps the sum of the
per-module medians below the whole-model median, and why coverage is reported.

**ONNX Runtime** (``time_layers_ort``): the model's cached export (``cached_export``), one
session with ``enable_profiling``, one without, alternated; the profile's JSON trace gives each
node's kernel time per run (``<node>_kernel_time`` events, ``dur`` in microseconds), grouped by
the ``model_run`` events they fall in. Node names from the TorchScript exporter carry the module
scope (``/blocks/blocks.0/conv_dw/conv/Conv``); ``module_for_node`` maps them back to module
paths. Graph optimisation fuses and renames nodes (batch norm folded into the convolution, an
activation fused into it, layout ``Reorder`` nodes added): a node is attributed to the module
its name points to, and nodes with no scope stay nodes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from cnnprof.errors import one_line
from cnnprof.files import MODELS_DIR
from cnnprof.rows import Note, Notes
from cnnprof.timing import BackendError, torch_threads
from cnnprof.timing.protocol import PER_LAYER, CpuMonitor, Protocol, run, warnings_for
from cnnprof.timing.stats import summarize

# A profile needs many runs but every run is a few hundred trace events: cap the ORT runs.
ORT_MAX_RUNS = 300
DEFAULT_PROTOCOL = PER_LAYER
NO_OP_CLASSES = ("Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "DropPath")


@dataclass(frozen=True)
class LayerTime:
    """One timed unit: a module (``module=True``) or an ONNX node no module name matched."""

    name: str  # module path, or the ONNX node name
    samples: tuple[float, ...]  # ms per run, all calls in that run summed
    calls: int = 1  # calls per run
    module: bool = True
    nodes: tuple[str, ...] = ()  # ONNX Runtime: the node names attributed here
    ops: tuple[str, ...] = ()  # ONNX Runtime: their operator types
    order: float = 0.0  # position in execution order (first call)
    scope: str = ""  # ONNX Runtime: the deepest module path the node names point to ("" if none)

    @property
    def median_ms(self) -> float:
        return summarize(list(self.samples)).median if self.samples else 0.0

    @property
    def iqr_ms(self) -> float:
        return summarize(list(self.samples)).iqr if self.samples else 0.0


@dataclass(frozen=True)
class LayerTiming:
    """Per-unit times of one model on one backend, with the whole-model latency beside them."""

    backend: str
    threads: int
    batch: int
    layers: tuple[LayerTime, ...]  # execution order
    whole_samples: tuple[float, ...]  # ms, uninstrumented runs (no hooks / no profiling)
    instrumented_samples: tuple[float, ...]  # ms, the runs the per-layer times come from
    warnings: Notes = Notes()
    onnx_path: str = ""
    unmapped_nodes: tuple[str, ...] = field(default=())

    @property
    def whole_ms(self) -> float:
        return summarize(list(self.whole_samples)).median

    @property
    def instrumented_ms(self) -> float:
        return summarize(list(self.instrumented_samples)).median

    @property
    def layers_sum_ms(self) -> float:
        return sum(layer.median_ms for layer in self.layers)

    @property
    def coverage(self) -> float:
        """Sum of the per-unit medians over the uninstrumented whole-model median."""
        whole = self.whole_ms
        return self.layers_sum_ms / whole if whole > 0 else math.nan

    @property
    def coverage_in_run(self) -> float:
        """Median over runs of (that run's per-unit times summed) / (that run's instrumented
        latency): unlike ``coverage`` it compares times from the very same pass, so a machine
        that is busy only some of the time biases it much less."""
        n = len(self.instrumented_samples)
        ratios = [
            sum(layer.samples[k] for layer in self.layers if k < len(layer.samples)) / self.instrumented_samples[k]
            for k in range(n)
            if self.instrumented_samples[k] > 0
        ]
        return summarize(ratios).median if ratios else math.nan

    @property
    def runs(self) -> int:
        return len(self.whole_samples)


# -- which modules are timed ---------------------------------------------------------------------
def is_no_op(module) -> bool:
    """Modules that return their input in inference: not worth a hook (nor a row)."""
    return type(module).__name__ in NO_OP_CLASSES


def timed_modules(model, depth: int | None = None) -> list[tuple[str, object]]:
    """The modules to time, a partition of the model's work: the leaves (``depth=None``), or
    the modules at ``depth`` plus the leaves above it. No-op leaves are left out."""
    if depth is not None and depth < 0:
        from cnnprof.errors import UsageError

        raise UsageError(f"--depth must be at least 0, got {depth}")
    chosen = []
    for name, module in model.named_modules():  # pre-order: a module's children come after it
        level = 0 if not name else name.count(".") + 1
        leaf = next(module.children(), None) is None
        take = leaf if depth is None else (level == depth or (leaf and level < depth))
        if take and not is_no_op(module):
            chosen.append((name, module))
    return chosen


def _example(batch: int, input_shape: Sequence[int]):
    import torch

    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, *input_shape, generator=gen)


def _split_runs(values: list, kept: int) -> list:
    """The last ``kept`` entries: what ``protocol.run`` measured after its warm-up."""
    return values[len(values) - kept:] if kept else []


# -- eager ---------------------------------------------------------------------------------------
class _HookClock:
    """Pre/post forward hooks that add each module's wall time (ms) to ``acc`` for one run."""

    def __init__(self, modules: list[tuple[str, object]]):
        self.modules = modules
        self.acc: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.first: dict[str, int] = {}
        self.handles: list = []

    def attach(self) -> None:
        clock = time.perf_counter
        acc, calls, first = self.acc, self.calls, self.first
        starts: dict[str, float] = {}
        acc.clear()
        calls.clear()

        for name, module in self.modules:
            def pre(mod, inputs, name=name):
                starts[name] = clock()

            def post(mod, inputs, output, name=name):
                end = clock()
                acc[name] = acc.get(name, 0.0) + (end - starts.pop(name)) * 1e3
                calls[name] = calls.get(name, 0) + 1
                if name not in first:
                    first[name] = len(first)

            self.handles.append(module.register_forward_pre_hook(pre))
            self.handles.append(module.register_forward_hook(post))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def time_layers_eager(
    model,
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    batch: int = 1,
    depth: int | None = None,
    protocol: Protocol = DEFAULT_PROTOCOL,
) -> LayerTiming:
    """Time every module of ``timed_modules(model, depth)`` inside the real forward pass."""
    import torch

    from cnnprof.timing.environment import cpu_count

    model = model.eval()
    x = _example(batch, input_shape)
    modules = timed_modules(model, depth)
    clock = _HookClock(modules)
    plain: list[float] = []
    hooked: list[float] = []
    per_run: list[dict[str, float]] = []
    calls_per_run: list[dict[str, int]] = []

    def timed_call() -> float:
        t0 = time.perf_counter()
        model(x)
        return (time.perf_counter() - t0) * 1e3

    def step() -> float:
        order = (False, True) if len(plain) % 2 == 0 else (True, False)
        for with_hooks in order:
            if with_hooks:
                clock.attach()
                try:
                    hooked.append(timed_call())
                finally:
                    clock.detach()
                per_run.append(dict(clock.acc))
                calls_per_run.append(dict(clock.calls))
            else:
                plain.append(timed_call())
        return plain[-1]

    with torch_threads(threads), torch.inference_mode():
        try:
            model(x)
        except Exception as exc:  # noqa: BLE001 - the user's model failing becomes one line
            raise BackendError(f"torch failed under the profiler: {one_line(exc)}") from exc
        monitor = CpuMonitor()
        samples = run(step, protocol)
        others = monitor.others_cores()
    kept = len(samples)
    per_run = _split_runs(per_run, kept)
    calls = calls_per_run[-1] if calls_per_run else {}
    layers = tuple(
        LayerTime(
            name=name,
            samples=tuple(r.get(name, 0.0) for r in per_run),
            calls=calls.get(name, 0),
            order=float(clock.first[name]),
        )
        for name, _ in modules
        if name in clock.first
    )
    notes = warnings_for(list(samples), threads=threads, cores=cpu_count(), others_cores=others)
    return LayerTiming(
        backend="torch",
        threads=threads,
        batch=batch,
        layers=tuple(sorted(layers, key=lambda layer: layer.order)),
        whole_samples=tuple(samples),
        instrumented_samples=tuple(_split_runs(hooked, kept)),
        warnings=Notes(notes),
    )


# -- ONNX Runtime --------------------------------------------------------------------------------
def module_for_node(node: str, module_names: Iterable[str] | set[str]) -> str | None:
    """The deepest module path a TorchScript-exported node name points to, or ``None``.

    ``/blocks/blocks.1/conv_pw/conv/Conv_output_0_nchwc`` -> ``blocks.1.conv_pw.conv``: scope
    segments are attribute names, except that children of containers carry the container's
    segment as a prefix (``/blocks/blocks.2/blocks.2.0/ghost1``): each segment is tried as a child
    of the path so far, then as that prefix plus the child's index.

    >>> module_for_node("/blocks/blocks.0/se/Mul", {"blocks", "blocks.0", "blocks.0.se"})
    'blocks.0.se'
    """
    names = module_names if isinstance(module_names, set) else set(module_names)
    if not node.startswith("/"):
        return None
    path = ""
    matched = None
    prev = ""
    for seg in node.strip("/").split("/")[:-1]:  # the last segment is the operator
        candidates = [f"{path}.{seg}" if path else seg]
        if path and prev and seg.startswith(prev + "."):  # a container's child: "blocks.2" + ".0"
            candidates.append(path + seg[len(prev):])
        hit = next((c for c in candidates if c in names), None)
        if hit is None:
            break
        path, prev, matched = hit, seg, hit
    return matched


@dataclass(frozen=True)
class NodeRun:
    name: str
    op: str
    dur_us: float


def parse_ort_profile(events: list[dict]) -> list[list[NodeRun]]:
    """ONNX Runtime's trace -> the node kernel times of each ``model_run``, in order."""
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )
    nodes = sorted(
        (e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")),
        key=lambda e: e["ts"],
    )
    out: list[list[NodeRun]] = [[] for _ in runs]
    i = 0
    for k, r in enumerate(runs):
        start, end = r["ts"], r["ts"] + r.get("dur", 0)
        while i < len(nodes) and nodes[i]["ts"] < start:
            i += 1
        while i < len(nodes) and nodes[i]["ts"] <= end:
            e = nodes[i]
            name = e["name"][: -len("_kernel_time")]
            op = str(e.get("args", {}).get("op_name", ""))
            out[k].append(NodeRun(name=name, op=op, dur_us=float(e.get("dur", 0))))
            i += 1
    return out


def ort_layer_times(
    node_runs: list[list[NodeRun]], module_names: set[str], unit_of: dict[str, str]
) -> tuple[list[LayerTime], list[str]]:
    """Group node times into units: each node goes to the timed unit its scope falls in
    (``unit_of`` maps every module path to its timed unit, if it is inside one); a node whose
    scope is above the timed units, or that has none, stays a unit of its own."""
    units: dict[str, dict] = {}
    unmapped: list[str] = []
    for k, nodes in enumerate(node_runs):
        for pos, node in enumerate(nodes):
            path = module_for_node(node.name, module_names)
            unit = unit_of.get(path) if path is not None else None
            key = unit if unit is not None else node.name
            u = units.get(key)
            if u is None:
                u = units[key] = {"module": unit is not None, "per_run": defaultdict(float), "nodes": [], "ops": [],
                                  "calls": defaultdict(int), "order": (k, pos), "scope": path or ""}
                if unit is None and path is None and k == 0:
                    unmapped.append(node.name)
            u["per_run"][k] += node.dur_us / 1e3
            u["calls"][k] += 1
            if node.name not in u["nodes"]:
                u["nodes"].append(node.name)
                u["ops"].append(node.op)
    n_runs = len(node_runs)
    layers = [
        LayerTime(
            name=key,
            samples=tuple(u["per_run"].get(k, 0.0) for k in range(n_runs)),
            calls=max(u["calls"].values()) if u["calls"] else 0,
            module=u["module"],
            nodes=tuple(u["nodes"]),
            ops=tuple(u["ops"]),
            order=float(u["order"][1]),
            scope=u["scope"],
        )
        for key, u in units.items()
    ]
    return sorted(layers, key=lambda layer: layer.order), unmapped


def time_layers_ort(
    model,
    input_shape: Sequence[int],
    *,
    name: str,
    threads: int = 1,
    batch: int = 1,
    depth: int | None = None,
    protocol: Protocol = DEFAULT_PROTOCOL,
    onnx_dir: str | Path = MODELS_DIR,
) -> LayerTiming:
    """Per-node kernel times from ONNX Runtime's profiler, mapped back to the timed modules."""
    from cnnprof.errors import CnnprofError
    from cnnprof.onnx_export import cached_export
    from cnnprof.timing.environment import cpu_count
    from cnnprof.timing.ort import make_session

    model = model.eval()
    x = _example(batch, input_shape)
    modules = timed_modules(model, depth)
    units = [n for n, _ in modules]
    module_names = {n for n, _ in model.named_modules() if n}
    unit_of = {}
    for n in module_names:
        unit_of[n] = next((u for u in units if u == n or (u and n.startswith(u + "."))), None)
        if unit_of[n] is None:
            del unit_of[n]
    try:
        path, _, _ = cached_export(model, x, name=name, folder=onnx_dir)
        plain_session = make_session(path, threads=threads)
        tmp = tempfile.TemporaryDirectory(prefix="cnnprof-ortprof-")
        profiled = make_session(path, threads=threads, profile_prefix=str(Path(tmp.name) / "ort"))
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend failure becomes one line
        raise BackendError(f"onnxruntime failed under the profiler: {one_line(exc)}") from exc
    feed = {plain_session.get_inputs()[0].name: x.numpy()}
    plain: list[float] = []
    instrumented: list[float] = []

    def timed(session) -> float:
        t0 = time.perf_counter()
        session.run(None, feed)
        return (time.perf_counter() - t0) * 1e3

    def step() -> float:
        if len(plain) % 2 == 0:
            plain.append(timed(plain_session))
            instrumented.append(timed(profiled))
        else:
            instrumented.append(timed(profiled))
            plain.append(timed(plain_session))
        return plain[-1]

    capped = dataclasses.replace(protocol, max_runs=min(protocol.max_runs, ORT_MAX_RUNS))
    with tmp:
        monitor = CpuMonitor()
        samples = run(step, capped)
        others = monitor.others_cores()
        trace = profiled.end_profiling()
        try:
            events = json.loads(Path(trace).read_text())
        except (OSError, ValueError) as exc:
            raise BackendError(f"onnxruntime profile could not be read: {one_line(exc)}") from exc
    kept = len(samples)
    node_runs = parse_ort_profile(events)
    node_runs = _split_runs(node_runs, kept)
    layers, unmapped = ort_layer_times(node_runs, module_names, unit_of)
    notes = warnings_for(list(samples), threads=threads, cores=cpu_count(), others_cores=others)
    if len(node_runs) != kept:
        notes.append(Note.tagged("profile", f"{len(node_runs)} runs for {kept} timed"))
    return LayerTiming(
        backend="onnxruntime",
        threads=threads,
        batch=batch,
        layers=tuple(layers),
        whole_samples=tuple(samples),
        instrumented_samples=tuple(_split_runs(instrumented, kept)),
        warnings=Notes(notes),
        onnx_path=str(path),
        unmapped_nodes=tuple(unmapped),
    )
