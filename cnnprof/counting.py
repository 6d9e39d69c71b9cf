"""Parameters, multiply-adds, activations and bytes moved, per model, per module and per operator.

One traced forward pass does everything: fvcore's ``FlopCountAnalysis`` traces the model (its op
handles give multiply-adds per operator and per module) while forward hooks on the leaf modules
record the shapes each one saw (for activations and bytes moved). The model runs in ``eval()``
under ``torch.inference_mode()``; fvcore's log and tracer noise is kept off the terminal.

Conventions (see ``Counts``): ``macs`` = multiply-adds of convolutions and linear layers / matrix
products, the papers' "FLOPs"; ``macs_fvcore`` = fvcore's total, which adds batch norm, adaptive
pooling and upsampling. Operators that ran but that neither figure includes are listed with their
call counts. ``status`` is ``complete`` when all of those are element-wise, activation, pooling or
shape operators (no multiply-adds by the papers' convention), otherwise ``partial: <ops>``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings

import torch
from torch import nn

from cnnprof.errors import OutOfMemory, UsageError, is_out_of_memory, memory_guard, one_line
from cnnprof.rows import Counts, LayerCount, ModuleCount, format_shape

# fvcore operator keys that are multiply-adds of convolutions or matrix products.
CONV_LINEAR_OPS = frozenset({"conv", "linear", "addmm", "matmul", "bmm", "einsum", "mm"})
CONV_LINEAR_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
# Operators with no multiply-adds under the papers' convention: element-wise arithmetic,
# activations, pooling and resampling, tensor shape and copy operations (exact aten names,
# in-place "_" variants included), plus the pooling / resampling families by prefix.
_FREE_OPS = frozenset(
    """add sub rsub mul div neg sigmoid silu hardswish hardsigmoid relu relu6 prelu leaky_relu gelu
    tanh clamp clamp_min clamp_max hardtanh elu softmax mean sum max min cat stack split chunk
    slice select view reshape flatten transpose permute contiguous pad constant_pad_nd dropout
    feature_dropout expand repeat to sqrt pow exp fill zeros ones zeros_like ones_like copy clone
    channel_shuffle pixel_shuffle unsqueeze squeeze size numpy_t t narrow index""".split()
)
_FREE_PREFIXES = ("avg_pool", "max_pool", "adaptive_", "upsample", "interpolate")
BYTES_PER_ELEMENT = 4  # fp32


def is_free_op(op: str) -> bool:
    """True for operators without multiply-adds by the papers' convention (``aten::silu`` ...)."""
    base = op.split("::")[-1].strip("_").lower()
    return base in _FREE_OPS or base.startswith(_FREE_PREFIXES)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def _quiet():
    """Keep fvcore's logging and torch.jit's tracer warnings away from the user's terminal."""
    loggers = [logging.getLogger(n) for n in ("fvcore", "fvcore.nn.jit_analysis")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


@contextlib.contextmanager
def torch_threads_one():
    """One intra-op thread for a counting pass (see ``_count``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _first_tensor(obj) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for item in obj:
            t = _first_tensor(item)
            if t is not None:
                return t
    if isinstance(obj, dict):
        for item in obj.values():
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


@contextlib.contextmanager
def _untraced():
    """Read sizes outside torch.jit's tracer: under tracing they would come back as tensors and be
    recorded as graph nodes (slow, and noise in the traced graph)."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def _shape(t: torch.Tensor | None) -> tuple[int, ...]:
    if t is None:
        return ()
    with _untraced():
        return tuple(int(s) for s in t.shape)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class _LeafRecorder:
    """Forward hooks on leaf modules: the shapes each one saw, and how often it ran."""

    def __init__(self, model: nn.Module):
        self.records: dict[str, dict] = {}
        self.handles = []
        for name, module in model.named_modules():
            if next(module.children(), None) is None:
                self.handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            rec = self.records.get(name)
            if rec is not None:
                rec["calls"] += 1
                return
            with _untraced():
                self.records[name] = {
                    "kind": type(module).__name__,
                    "in": _shape(_first_tensor(inputs)),
                    "out": _shape(_first_tensor(output)),
                    "params": int(sum(p.numel() for p in module.parameters(recurse=False))),
                    "calls": 1,
                    "conv_linear": isinstance(module, CONV_LINEAR_MODULES),
                }

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def locate_failure(model: nn.Module, x: torch.Tensor) -> tuple[str, str, tuple[int, ...], BaseException] | None:
    """Run ``model(x)`` and, if it raises, name the innermost module that failed and its input."""
    stack: list[tuple[str, str, tuple[int, ...]]] = []
    failed: list[tuple[str, str, tuple[int, ...]]] = []
    handles = []

    def pre(name):
        def hook(module, inputs):
            stack.append((name, type(module).__name__, _shape(_first_tensor(inputs))))

        return hook

    def post(module, inputs, output):
        stack.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre(name or "<model>")))
        handles.append(module.register_forward_hook(post))
    try:
        with torch.inference_mode():
            model(x)
    except Exception as exc:  # noqa: BLE001 - we re-describe the user's model failure, never swallow ours
        failed = list(stack)
        return (*failed[-1], exc) if failed else ("<model>", type(model).__name__, _shape(x), exc)
    finally:
        for h in handles:
            h.remove()
    return None


def check_input(model: nn.Module, x: torch.Tensor, label: str) -> None:
    """Raise a one-line ``UsageError`` naming the layer that rejects ``x``, if one does."""
    failure = locate_failure(model, x)
    if failure is not None:
        layer, kind, shape, exc = failure
        if is_out_of_memory(exc):
            raise OutOfMemory(f"{label} ran out of memory at input {format_shape(tuple(x.shape[1:]))} "
                              f"(batch {x.shape[0]}) in layer {layer!r} ({kind}), which got {format_shape(shape)}")
        reason = one_line(exc, typed=False, limit=None)
        raise UsageError(
            f"{label} rejects input {format_shape(tuple(x.shape[1:]))}: layer {layer!r} ({kind}) "
            f"got {format_shape(shape)}: {reason}"
        )


def count(model: nn.Module, input_shape: tuple[int, ...], *, batch: int = 1, label: str = "model") -> Counts:
    """Count ``model`` on a random input of ``(batch, *input_shape)``.

    >>> from torch import nn
    >>> c = count(nn.Conv2d(3, 8, 3, padding=1, bias=False), (3, 16, 16))
    >>> c.params, c.macs  # 8*3*3*3 weights, each used at 16*16 positions
    (216, 55296)
    """
    model.eval()
    with memory_guard(f"{label} at input {format_shape(tuple(input_shape))}, batch {batch},"):
        return _count(model, tuple(input_shape), batch=batch, label=label)


def _count(model: nn.Module, input_shape: tuple[int, ...], *, batch: int, label: str) -> Counts:
    from fvcore.nn import FlopCountAnalysis

    x = torch.randn(batch, *input_shape)
    recorder = _LeafRecorder(model)
    threads = torch.get_num_threads()
    # One thread: counting needs one forward pass, not speed, and several OpenMP threads on a
    # shared machine can make that pass tens of times slower (spin-waiting).
    torch.set_num_threads(1)
    try:
        with _quiet(), torch.inference_mode():
            analysis = FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            try:
                by_module_op = analysis.by_module_and_operator()
            except Exception:  # noqa: BLE001 - describe the user's model failure in one line
                recorder.close()
                check_input(model, x, label)
                raise
            total = int(analysis.total())
            uncounted = {str(k): int(v) for k, v in analysis.unsupported_ops().items()}
    finally:
        recorder.close()
        torch.set_num_threads(threads)

    by_op = {str(k): int(v) for k, v in by_module_op.get("", {}).items()}
    macs = sum(v for k, v in by_op.items() if k in CONV_LINEAR_OPS)

    layers = []
    activations = 0
    bytes_moved = 0
    for name, rec in recorder.records.items():
        nbytes = BYTES_PER_ELEMENT * (_numel(rec["in"]) + rec["params"] + _numel(rec["out"])) * rec["calls"]
        layer_macs = sum(v for k, v in by_module_op.get(name, {}).items() if k in CONV_LINEAR_OPS)
        layers.append(
            LayerCount(
                name=name,
                kind=rec["kind"],
                input_shape=rec["in"],
                output_shape=rec["out"],
                params=rec["params"],
                macs=int(layer_macs),
                bytes_moved=nbytes,
                calls=rec["calls"],
            )
        )
        bytes_moved += nbytes
        if rec["conv_linear"]:
            activations += _numel(rec["out"]) * rec["calls"]

    modules = []
    for name, module in model.named_modules():
        ops = by_module_op.get(name, {})
        modules.append(
            ModuleCount(
                name=name,
                kind=type(module).__name__,
                depth=0 if not name else name.count(".") + 1,
                params=count_params(module),
                macs=int(sum(v for k, v in ops.items() if k in CONV_LINEAR_OPS)),
                macs_fvcore=int(sum(ops.values())),
            )
        )
    unknown = sorted(op for op in uncounted if not is_free_op(op))
    with torch_threads_one():
        peak = peak_activations(model, x)
    return Counts(
        status="complete" if not unknown else "partial: " + ", ".join(unknown),
        params=count_params(model),
        macs=int(macs),
        macs_fvcore=total,
        activations=int(activations),
        bytes_moved=int(bytes_moved),
        input_shape=tuple(x.shape),
        peak_activation_bytes=int(peak),
        by_op=by_op,
        uncounted=uncounted,
        layers=tuple(layers),
        modules=tuple(modules),
    )


def peak_live_bytes(events: list[tuple[int, int, int]]) -> int:
    """The largest sum of sizes alive at once, from (birth step, last-use step, bytes) intervals:
    a tensor is alive from the step that makes it through the last step that reads it (both
    ends included, so an operation's inputs and outputs are alive together)."""
    deltas: dict[int, int] = {}
    for birth, last, size in events:
        deltas[birth] = deltas.get(birth, 0) + size
        deltas[last + 1] = deltas.get(last + 1, 0) - size
    live = peak = 0
    for step in sorted(deltas):
        live += deltas[step]
        peak = max(peak, live)
    return peak


def peak_activations(model: nn.Module, x: torch.Tensor) -> int:
    """Peak live activation memory of one forward pass, in bytes: the largest sum of the
    activation tensors alive at one time, in execution order.

    Every ATen operation the pass dispatches is seen (a ``TorchDispatchMode``; under inference
    mode composite operations such as ``conv2d`` arrive whole). A tensor's storage is alive from
    the operation that makes it to the last one that reads it; the input is alive from the start
    and the outputs to the end; views and in-place results share their input's storage and count
    once; weights and buffers are not activations. This is the graph's lower bound: eager PyTorch
    frees a tensor when its last Python reference goes, which can be later."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    weights = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    live: dict[int, list[int]] = {}  # storage address -> [birth, last use, bytes], while it may be alive
    done: list[tuple[int, int, int]] = []
    step = [0]

    def storages(obj) -> list[tuple[int, int]]:
        out = []
        for t in tree_leaves(obj):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                s = t.untyped_storage()
                if s.nbytes() and s.data_ptr() not in weights:
                    out.append((s.data_ptr(), s.nbytes()))
        return out

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            step[0] += 1
            now = step[0]
            read = storages((args, kwargs))
            for ptr, _ in read:
                if ptr in live:
                    live[ptr][1] = now
            inputs = {ptr for ptr, _ in read}
            for ptr, size in storages(result):
                if ptr in inputs and ptr in live:  # a view or an in-place result: the same storage
                    live[ptr][1] = now
                    live[ptr][2] = max(live[ptr][2], size)
                    continue
                if ptr in live:  # a new allocation at a freed tensor's address: that one is dead
                    done.append(tuple(live.pop(ptr)))
                live[ptr] = [now, now, size]
            return result

    for ptr, size in storages(x):
        live[ptr] = [0, 0, size]
    with torch.inference_mode(), Recorder():
        out = model(x)
    end = step[0]
    for ptr, _ in storages(out):
        if ptr in live:
            live[ptr][1] = end
    done.extend(tuple(v) for v in live.values())
    return peak_live_bytes(done)


def scale_to_batch(counts: Counts, batch: int) -> Counts:
    """Counts taken at batch 1, restated for ``batch`` (MACs and activations scale linearly;
    weights are read once per call, activations once per sample)."""
    if counts.input_shape[0] != 1:
        raise ValueError("scale_to_batch needs counts taken at batch 1")
    if batch == 1:
        return counts
    layers = tuple(
        dataclasses.replace(
            layer,
            input_shape=(batch, *layer.input_shape[1:]) if layer.input_shape else (),
            output_shape=(batch, *layer.output_shape[1:]) if layer.output_shape else (),
            macs=layer.macs * batch,
            bytes_moved=BYTES_PER_ELEMENT
            * (batch * (_numel(layer.input_shape) + _numel(layer.output_shape)) + layer.params)
            * layer.calls,
        )
        for layer in counts.layers
    )
    return dataclasses.replace(
        counts,
        macs=counts.macs * batch,
        macs_fvcore=counts.macs_fvcore * batch,
        activations=counts.activations * batch,
        # every activation has the batch as its first dimension: its bytes scale with it
        peak_activation_bytes=None if counts.peak_activation_bytes is None else counts.peak_activation_bytes * batch,
        bytes_moved=sum(layer.bytes_moved for layer in layers),
        input_shape=(batch, *counts.input_shape[1:]),
        by_op={k: v * batch for k, v in counts.by_op.items()},
        layers=layers,
        modules=tuple(
            dataclasses.replace(m, macs=m.macs * batch, macs_fvcore=m.macs_fvcore * batch) for m in counts.modules
        ),
    )
