"""A second, independent counter: parameters and multiply-adds read from an ONNX graph.

After ONNX shape inference every node's input and output shapes are known, so the multiply-adds
of the nodes that carry them follow from shapes alone:

* ``Conv``: output elements x (input channels / group) x kernel area;
* ``ConvTranspose``: input elements x (output channels / group) x kernel area;
* ``Gemm`` / ``MatMul``: batch x M x K x N.

Parameters are the floating-point initializers (an exported model in eval mode has batch norm
folded into the convolutions, so this differs from the PyTorch module's count by the BN terms).
Nodes whose shapes could not be inferred, or operators that carry multiply-adds but are not
handled (``Einsum``, recurrent layers, ...), make the status ``partial`` and are named.
This counter knows nothing of PyTorch or fvcore: it is how cnnprof cross-checks them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnnprof.errors import UsageError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.rows import Counts

MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
UNHANDLED_MAC_OPS = {"Einsum", "LSTM", "GRU", "RNN", "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul",
                     "Attention", "MultiHeadAttention"}
_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
# bytes per element of the ONNX tensor types (TensorProto.DataType)
_ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


@dataclass(frozen=True)
class NodeCount:
    name: str
    op: str
    macs: int
    output_shape: tuple[int, ...]


@dataclass(frozen=True)
class OnnxCounts:
    params: int
    macs: int
    input_name: str
    input_shape: tuple[int, ...]  # with batch (a symbolic batch dimension is reported as 1)
    opset: int
    nodes: tuple[NodeCount, ...] = ()
    op_histogram: dict[str, int] = field(default_factory=dict)
    uncounted: tuple[str, ...] = ()  # nodes that carry multiply-adds but could not be counted
    peak_activation_bytes: int | None = None  # None where a value's shape or type is unknown

    @property
    def status(self) -> str:
        if not self.uncounted:
            return "complete"
        return "partial: " + ", ".join(sorted(set(self.uncounted))[:8])


def load(path: str | os.PathLike):
    """Load and check an ONNX file; a missing, corrupt or non-ONNX file is a one-line UsageError."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"ONNX file {str(p)!r} does not exist")
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - any parser/checker failure means "not a valid ONNX model"
        raise UsageError(f"{str(p)!r} is not a valid ONNX model: {one_line(exc, typed=False, limit=200)}") from None
    if not model.graph.node:
        raise UsageError(f"{str(p)!r} is not a valid ONNX model: the graph has no nodes")
    return model


def _dims(value_info) -> tuple[int, ...] | None:
    tt = value_info.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            return None
    return tuple(dims)


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def graph_input(model) -> tuple[str, tuple[int, ...]]:
    """The first real input (not an initializer) and its shape; a symbolic batch counts as 1."""
    init = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in init:
            continue
        dims = []
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif i == 0:
                dims.append(1)
            else:
                raise UsageError(f"ONNX input {inp.name!r} has a symbolic dimension {i}; cnnprof needs fixed C, H, W")
        return inp.name, tuple(dims)
    raise UsageError("the ONNX graph has no input")


def _with_batch(model, batch: int):
    """A copy of the model whose first input has a fixed batch dimension, for shape inference."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    init = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in init:
            dim0 = inp.type.tensor_type.shape.dim[0]
            if not (dim0.HasField("dim_value") and dim0.dim_value > 0):
                dim0.Clear()
                dim0.dim_value = batch
            break
    return model


_FOLDED_ELEMENTS = 64  # a shape or a padding list, never a weight


def _fold_index_constants(model) -> None:
    """Evaluate, in place, the nodes whose inputs are all constants and whose outputs are small
    integer tensors (the pads an exporter computes for a ``Pad``: TF "SAME" padding), storing
    the values as initializers, so that shape inference knows the shapes after them. Float
    tensors are never folded: initializers of float type are counted as parameters."""
    import numpy as np
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    known = {i.name: numpy_helper.to_array(i) for i in graph.initializer
             if i.data_type not in _FLOAT_TYPES and _prod(tuple(i.dims)) <= _FOLDED_ELEMENTS}
    opset = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    kept = []
    for node in graph.node:
        inputs = [n for n in node.input if n]
        if node.domain not in ("", "ai.onnx") or not all(n in known for n in inputs) or len(node.output) != 1:
            kept.append(node)
            continue
        try:
            single = helper.make_model(
                helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(node.output[0], 0, None)],
                                  initializer=[numpy_helper.from_array(known[n], n) for n in inputs]),
                opset_imports=opset)
            (value,) = ReferenceEvaluator(single).run(None, {})
        except Exception:  # noqa: BLE001 - an operator the evaluator lacks: leave the node as it is
            kept.append(node)
            continue
        value = np.asarray(value)
        if value.dtype.kind not in "iub" or value.size > _FOLDED_ELEMENTS:
            kept.append(node)
            continue
        known[node.output[0]] = value
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
    del graph.node[:]
    graph.node.extend(kept)


def count_onnx(path_or_model, *, batch: int = 1) -> OnnxCounts:
    """Count parameters and conv / matmul multiply-adds of an ONNX model (file or ModelProto)."""
    from onnx import shape_inference

    model = load(path_or_model) if isinstance(path_or_model, (str, os.PathLike)) else path_or_model
    model = _with_batch(model, batch)
    _fold_index_constants(model)
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    graph = inferred.graph
    shapes: dict[str, tuple[int, ...] | None] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        shapes[vi.name] = _dims(vi)
    params = 0
    for init in graph.initializer:
        dims = tuple(int(d) for d in init.dims)
        shapes[init.name] = dims
        if init.data_type in _FLOAT_TYPES:
            params += _prod(dims)
    # Constant nodes (the TorchScript exporter sometimes stores weights as such)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(int(d) for d in attr.t.dims)

    nodes: list[NodeCount] = []
    uncounted: list[str] = []
    histogram: dict[str, int] = {}
    for node in graph.node:
        histogram[node.op_type] = histogram.get(node.op_type, 0) + 1
        if not known_op(node):  # a custom operator: what it computes (and costs) is unknown here
            uncounted.append(f"{node.op_type} {node.name} (unknown operator"
                             + (f" of domain {node.domain})" if node.domain else ")"))
            continue
        if node.op_type in UNHANDLED_MAC_OPS:
            uncounted.append(f"{node.op_type} {node.name}")
            continue
        if node.op_type not in MAC_OPS:
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            uncounted.append(f"{node.op_type} {node.name} (shape unknown)")
            continue
        nodes.append(NodeCount(node.name, node.op_type, macs, shapes.get(node.output[0]) or ()))
    name, shape = graph_input(model)
    peak = _peak_activations(graph, shapes)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxCounts(
        params=params,
        macs=sum(n.macs for n in nodes),
        input_name=name,
        input_shape=shape,
        opset=int(opset),
        nodes=tuple(nodes),
        op_histogram=histogram,
        uncounted=tuple(uncounted),
        peak_activation_bytes=peak,
    )


def _peak_activations(graph, shapes) -> int | None:
    """The largest sum of activation bytes alive at once, nodes in graph order: a value is alive
    from the node that makes it (the graph input: from the start) to the last node that reads it
    (graph outputs: to the end). Initializers and constants are weights, not activations. None
    when a value's shape or element type is unknown (never a silent under-count)."""
    from cnnprof.counting import peak_live_bytes

    elem = {vi.name: vi.type.tensor_type.elem_type for vi in list(graph.input) + list(graph.value_info)
            + list(graph.output)}
    weights = {i.name for i in graph.initializer}
    weights |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    span: dict[str, list[int]] = {}
    for vi in graph.input:
        if vi.name not in weights:
            span[vi.name] = [0, 0]
    for step, node in enumerate(graph.node, start=1):
        for name in node.input:
            if name in span:
                span[name][1] = step
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if name:
                span[name] = [step, step]
    end = len(graph.node)
    for vi in graph.output:
        if vi.name in span:
            span[vi.name][1] = end
    events = []
    for name, (birth, last) in span.items():
        dims, size = shapes.get(name), _ELEMENT_BYTES.get(elem.get(name, 0))
        if dims is None or size is None:
            return None
        events.append((birth, last, size * _prod(dims)))
    return peak_live_bytes(events)


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            if a.ints:
                return list(a.ints)
            return a.i
    return default


def known_op(node) -> bool:
    """Whether ``node`` is an operator of the ONNX standard (any opset), or one of ONNX Runtime's
    contrib operators this counter names (``UNHANDLED_MAC_OPS``)."""
    from onnx import defs

    domain = "" if node.domain == "ai.onnx" else node.domain
    if node.op_type in UNHANDLED_MAC_OPS and domain in ("", "com.microsoft"):
        return True
    try:
        return bool(defs.has(node.op_type, domain))
    except Exception:  # noqa: BLE001 - an odd domain string: not a known operator
        return False


def _node_macs(node, shapes) -> int | None:
    ins = [shapes.get(i) for i in node.input]
    out = shapes.get(node.output[0])
    if node.op_type == "Conv":
        w = ins[1] if len(ins) > 1 else None
        if out is None or w is None:
            return None
        # weight: (C_out, C_in / group, k...) -> each output element needs C_in/group * k... MACs
        return _prod(out) * _prod(w[1:])
    if node.op_type == "ConvTranspose":
        x, w = ins[0], (ins[1] if len(ins) > 1 else None)
        if x is None or w is None:
            return None
        # weight: (C_in, C_out / group, k...) -> each input element feeds C_out/group * k... outputs
        return _prod(x) * _prod(w[1:])
    if node.op_type == "Gemm":
        a, b = ins[0], ins[1]
        if a is None or b is None:
            return None
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return int(m) * int(k) * int(n)
    if node.op_type == "MatMul":
        a, b = ins[0], ins[1]
        if a is None or b is None or out is None:
            return None
        k = a[-1] if len(a) >= 1 else 1
        return _prod(out) * int(k)
    return None


def module_path(node_name: str) -> str:
    """'/blocks/blocks.0/conv_dw/conv/Conv' -> 'blocks.0.conv_dw.conv' (the PyTorch module path
    the TorchScript exporter encodes in node names), or '' when the name carries none."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2:
        return ""
    path: list[str] = []
    previous = ""
    for scope in parts[:-1]:
        # a Sequential's child is named after its parent ('blocks' -> 'blocks.0'): keep the new part
        path.append(scope[len(previous) + 1:] if previous and scope.startswith(previous + ".") else scope)
        previous = scope
    return ".".join(path)


def onnx_counts(path_or_model, *, batch: int = 1) -> "Counts":
    """``count_onnx`` as the ``Counts`` every report row is made from: per-operator MACs, the
    output elements of every counted node as activations, and the other operators (constants
    aside) as uncounted. An ONNX graph has no fvcore total and no per-module bytes."""
    from cnnprof.rows import Counts

    oc = count_onnx(path_or_model, batch=batch)
    by_op: dict[str, int] = {}
    for node in oc.nodes:
        by_op[node.op] = by_op.get(node.op, 0) + node.macs
    return Counts(
        params=oc.params, macs=oc.macs, macs_fvcore=None, activations=sum(_prod(n.output_shape) for n in oc.nodes),
        bytes_moved=None, input_shape=oc.input_shape, status=oc.status, by_op=by_op,
        peak_activation_bytes=oc.peak_activation_bytes,
        uncounted={op: n for op, n in oc.op_histogram.items() if op not in by_op and op != "Constant"},
    )
