"""Op kinds: what sort of operation a layer (or an ONNX node) is, for per-layer profiles.

The kinds the seed's families turn on: dense conv, pointwise (1x1), depthwise, dilated (kernel
> 1 with dilation > 1, ESPNet's ESP/EESP branches), grouped (ESPNetv2's and FBNet's grouped 1x1
convs), squeeze-excite, Ghost cheap op (GhostNet's depthwise ``cheap_operation``), DFC attention
(GhostNetV2), linear, pooling/upsampling, elementwise (batch norm, activations, shuffles), and
``mixed`` for a ``--depth`` unit whose convolutions differ. A convolution's kind comes from its
attributes (groups, kernel, dilation); the sub-blocks (SE, cheap op, DFC) from the class or path
of the module it sits in, innermost first, so every leaf of an SE block is squeeze-excite.
"""

from __future__ import annotations

OP_KINDS = (
    "dense conv", "pointwise", "depthwise", "dilated", "grouped", "squeeze-excite", "Ghost cheap op",
    "DFC attention", "linear", "pooling/upsampling", "elementwise", "mixed", "other",
)
_SE_CLASSES = ("SqueezeExcite", "SqueezeExcitation", "SELayer", "SEModule", "SqueezeExcite2d")
CONV_OPS = ("Conv", "FusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul", "NhwcFusedConv")
_POOL_OPS = ("AveragePool", "GlobalAveragePool", "MaxPool", "GlobalMaxPool", "Resize", "Upsample")


def conv_kind(module) -> str:
    """dilated (kernel > 1 and dilation > 1), depthwise (groups = input channels), grouped,
    pointwise (1x1), or dense conv."""
    groups = int(getattr(module, "groups", 1))
    cin = int(getattr(module, "in_channels", 0))
    kernel = tuple(getattr(module, "kernel_size", (1,)))
    dilation = tuple(getattr(module, "dilation", (1,)))
    if any(d > 1 and k > 1 for d, k in zip(dilation, kernel)):
        return "dilated"
    if groups > 1 and groups == cin:
        return "depthwise"
    if groups > 1:
        return "grouped"
    if all(k == 1 for k in kernel):
        return "pointwise"
    return "dense conv"


def context_kind(path: str, modules: dict) -> str | None:
    """The sub-block a module path sits in, innermost first: squeeze-excite (an SE class or a
    path segment ``se``), DFC attention (a ``DFC`` class or a segment ``dfc*``), Ghost cheap op
    (a segment ``cheap*``, GhostNet's ``cheap_operation``)."""
    parts = path.split(".") if path else []
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        seg = parts[end - 1].lower()
        cls = type(modules.get(prefix)).__name__ if prefix in modules else ""
        if cls in _SE_CLASSES or seg == "se":
            return "squeeze-excite"
        if "DFC" in cls or seg.startswith("dfc"):
            return "DFC attention"
        if seg.startswith("cheap"):
            return "Ghost cheap op"
    return None


def module_kind(module) -> str:
    """The op kind of one module by its class and attributes, ignoring where it sits."""
    from torch import nn

    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    if isinstance(module, convs):
        return conv_kind(module)
    if isinstance(module, nn.Linear):
        return "linear"
    name = type(module).__name__
    if "Pool" in name or "Upsampl" in name or name in ("PixelShuffle", "PixelUnshuffle"):
        return "pooling/upsampling"
    return "elementwise"


def op_kind(path: str, modules: dict) -> str:
    """The op kind of the module at ``path``: its sub-block if it sits in one, else its own.
    A module with children (``--depth``) takes the one kind all its leaves with weights share
    (a ConvBNAct is its conv's kind), else ``mixed``; without weighted leaves, pooling if it
    pools, else elementwise."""
    ctx = context_kind(path, modules)
    if ctx is not None:
        return ctx
    module = modules[path]
    if next(module.children(), None) is None:
        return module_kind(module)
    kinds: set[str] = set()
    pools = False
    for name, leaf in module.named_modules(prefix=path):
        if next(leaf.children(), None) is not None:
            continue
        kind = context_kind(name, modules) or module_kind(leaf)
        pools = pools or kind == "pooling/upsampling"
        if kind not in ("elementwise", "pooling/upsampling"):
            kinds.add(kind)
    if len(kinds) == 1:
        return kinds.pop()
    if kinds:
        return "mixed"
    return "pooling/upsampling" if pools else "elementwise"


def onnx_op_kind(op: str) -> str:
    if op in _POOL_OPS:
        return "pooling/upsampling"
    if op in ("Gemm", "FusedGemm", "MatMul", "FusedMatMul"):
        return "linear"
    if op in CONV_OPS:
        return "other"
    return "elementwise"
