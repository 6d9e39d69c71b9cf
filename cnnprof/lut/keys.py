"""Block signatures (table keys) and the split of a network into stem, blocks and head.

A latency-table entry must be keyed by everything that decides what a block computes, and by
nothing else (not its weights, not where it sits in a network), so that the same block at the
same input shape is measured once and found again from any model that contains it. The key is
derived from the module itself: its class, then, for every sub-module in order, the class, the
plain hyper-parameters it stores (channels, kernel, stride, padding, groups, dilation, eps, the
``has_skip`` of a block ...) and the shapes of its own parameters (so a bias is seen), plus the
input shape. Modules that do nothing at inference (dropout, drop-path) count by class only, so
EfficientNet's per-block drop-path rates do not make equal blocks look different.

The key reads ``MBConv|24x56x56|5be0c2a913``: class, input C x H x W, and a digest of that
description; the entry keeps a readable label (``fbnet L05 k5_e6``, ``mobilenetv3_large
blocks.3``) beside it.

A network is split into *parts* whose composition is the network: ``stem``, each block of
``blocks`` (nested ``nn.Sequential`` stages, as in GhostNet, are opened), and a *head* that is
the model itself with ``stem`` and ``blocks`` replaced by identities, which runs whatever the
model's ``forward`` does after its blocks (head conv, pooling, flatten, classifier). The split
is checked: the parts applied in turn must give the model's own output.

A search space's keys form its index in the table (``space_index``): a layer x candidate grid of
keys, its stem and its heads, so that an architecture is a vector of indices.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from cnnprof.errors import CnnprofError
from cnnprof.lut.space import head_network
from cnnprof.lut.table import SpaceIndex

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.models.fbnet import SearchSpace

# Identity at inference: their class is enough (a drop rate does not change eval latency).
_INFERENCE_NOOPS = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "DropPath", "Identity")
_DIGEST_CHARS = 10


class SplitError(CnnprofError):
    """A model cannot be split into stem, blocks and head (exit 2)."""


@dataclass(frozen=True)
class Part:
    """One top-level piece of a network, with the input shape it sees there (C, H, W)."""

    role: str  # "stem" | "block" | "head"
    label: str  # e.g. "blocks.3"
    module: Any  # nn.Module
    input: tuple[int, ...]
    key: str


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return isinstance(value, tuple) and all(_plain(v) for v in value)


def describe(module: "nn.Module") -> str:
    """One line per sub-module: path, class, plain attributes, own parameter shapes."""
    lines = []
    for name, m in module.named_modules():
        cls = type(m).__name__
        if cls in _INFERENCE_NOOPS:
            lines.append(f"{name}:{cls}")
            continue
        attrs = sorted(
            (k, v) for k, v in vars(m).items() if not k.startswith("_") and k != "training" and _plain(v)
        )
        params = [f"{k}{list(p.shape)}" for k, p in m._parameters.items() if p is not None]
        text = ",".join(f"{k}={v!r}" for k, v in attrs)
        lines.append(f"{name}:{cls}({text})[{' '.join(params)}]")
    return "\n".join(lines)


def block_key(module: "nn.Module", input_shape: Sequence[int], *, cls: str | None = None) -> str:
    """The table key of ``module`` run on a (C, H, W) input: ``Class|CxHxW|digest``."""
    shape = shape_text(input_shape)
    digest = hashlib.sha1(f"{shape}\n{describe(module)}".encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{cls or type(module).__name__}|{shape}|{digest}"


def head_of(model: "nn.Module") -> "nn.Module":
    """The model with ``stem`` and ``blocks`` replaced by identities (shares the other modules).

    Its ``forward`` on the blocks' output is whatever the model does after its blocks."""
    from torch import nn

    head = copy.copy(model)
    head._modules = dict(model._modules)  # a shallow copy must not touch the model's own dict
    head._modules["stem"] = nn.Identity()
    head._modules["blocks"] = nn.Identity()
    return head


def head_key(head: "nn.Module", input_shape: Sequence[int]) -> str:
    return block_key(head, input_shape, cls=f"{type(head).__name__}.head")


def glue_key(network_class: str, input_shape: Sequence[int]) -> str:
    """The key of the time a network of ``network_class`` spends outside its parts (in-context
    tables): the framework's dispatch between the parts, ONNX Runtime's reorders."""
    return f"{network_class}.glue|{shape_text(input_shape)}|in-place"


def glue_part(parts: Sequence[Part]) -> Part:
    """The glue of a split network as a part (``role`` "glue"), keyed by the network's class
    (the head part is the network itself with stem and blocks removed) and its input."""
    head = parts[-1]
    return Part("glue", "glue", None, parts[0].input, glue_key(type(head.module).__name__, parts[0].input))


def _flat_blocks(blocks: "nn.Module", prefix: str) -> list[tuple[str, "nn.Module"]]:
    from torch import nn

    out: list[tuple[str, nn.Module]] = []
    for name, child in blocks.named_children():
        label = f"{prefix}.{name}"
        if isinstance(child, nn.Sequential):
            out.extend(_flat_blocks(child, label))
        else:
            out.append((label, child))
    return out


def split(model: "nn.Module", input_shape: Sequence[int], *, name: str = "model", check: bool = True) -> list[Part]:
    """``model`` as parts (stem, each block, head) with their input shapes and keys.

    Runs one seeded forward pass through the parts (batch 1) to learn each part's input shape
    and, with ``check``, compares the composed output with the model's own output."""
    import torch
    from torch import nn

    stem = getattr(model, "stem", None)
    blocks = getattr(model, "blocks", None)
    if not isinstance(stem, nn.Module) or not isinstance(blocks, nn.Sequential):
        raise SplitError(f"{name} cannot be split into blocks: it has no `stem` module and `blocks` sequence")
    pieces = [("stem", "stem", stem)] + [("block", label, m) for label, m in _flat_blocks(blocks, "blocks")]
    head = head_of(model)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, *input_shape, generator=gen)
    parts: list[Part] = []
    with torch.inference_mode():
        y = x
        for role, label, module in pieces:
            shape = tuple(int(s) for s in y.shape[1:])
            parts.append(Part(role, label, module, shape, block_key(module, shape)))
            y = module(y)
        shape = tuple(int(s) for s in y.shape[1:])
        parts.append(Part("head", "head", head, shape, head_key(head, shape)))
        composed = head(y)
        if check:
            whole = model(x)
            if composed.shape != whole.shape or not torch.allclose(composed, whole, rtol=1e-4, atol=1e-4):
                raise SplitError(
                    f"{name}: stem, blocks and head applied in turn do not give the model's output "
                    "(its forward does more than head(blocks(stem(x))))"
                )
    return parts


# -- a search space's keys -----------------------------------------------------------------------
def head_input(space: "SearchSpace") -> tuple[int, ...]:
    """The input (C, H, W) the head of ``space`` sees: the last searchable layer's output."""
    last = space.layers[-1]
    return (last.out_chs, *(-(-hw // last.stride) for hw in last.in_hw))


def space_index(space: "SearchSpace", *, head_widths: Sequence[int] = ()) -> SpaceIndex:
    """The keys of every (layer, candidate) of ``space``, its stem and its heads (the space's own
    width and ``head_widths``): modules built on the meta device, so nothing is allocated."""
    import torch

    meta = torch.device("meta")  # keys need shapes and hyper-parameters only: no allocation, no init
    grid = []
    for i, shape in enumerate(space.block_input_shapes()):
        with meta:
            grid.append(tuple(block_key(space.build_block(i, cand), shape) for cand in space.names))
    with meta:
        stem = block_key(space.build_stem(), space.input)
    heads = {}
    for width in dict.fromkeys([space.head_chs, *head_widths]):
        with meta:
            heads[str(width)] = head_key(head_network(space, width), head_input(space))
    return SpaceIndex(tuple(space.names), tuple(grid), stem, heads, str(space.head_chs), tuple(space.input))
