"""The Python API: name -> model -> counts (and latency) -> report rows.

Everything the command line does goes through these functions, so a notebook gets the same
numbers as ``cnnprof``. Heavy imports (torch, fvcore) happen inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from cnnprof.errors import UsageError
from cnnprof.models import registry
from cnnprof.rows import Counts, ProfileRow, counts_row

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from torch import nn


@dataclass(frozen=True)
class Target:
    """A model ready to build: a registered variant (``spec`` set), a user's own model, or an
    ONNX file (``onnx_path`` set, no builder: counted from its graph, timed by ONNX Runtime)."""

    name: str
    family: str
    input: tuple[int, ...]
    builder: Callable[[], "nn.Module"] | None
    min_input: int = 1
    spec: registry.ModelSpec | None = None
    onnx_path: str | None = None

    def build(self, seed: int | None = 0, *, calibrate: bool = True, shape: Sequence[int] | None = None) -> "nn.Module":
        """Build in eval mode; seeded so that two builds have the same weights (and an ONNX
        export of one can be reused for the other). A registered variant's batch norms are
        calibrated at ``shape`` (default: the target's input), the input it will run on, so that
        its random-weight activations keep a realistic scale (``cnnprof.models.calibrate``);
        ``calibrate=False`` skips that (counting does not need it). A user's model is built as
        its factory returns it."""
        if self.builder is None:
            raise UsageError(f"{self.name} is an ONNX file: it has no PyTorch module to build")
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        model = self.builder().eval()
        if calibrate and self.spec is not None:
            from cnnprof.models.calibrate import calibrate_batchnorm

            calibrate_batchnorm(model, tuple(shape or self.input))
        return model


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, in natural order.

    >>> list_models("efficientnet_b?")[:3]
    ['efficientnet_b0', 'efficientnet_b1', 'efficientnet_b2']
    """
    return registry.list_models(pattern)


def build_model(name: str, **options: Any) -> "nn.Module":
    """Build a registered variant (in eval mode), passing ``options`` to its builder.

    >>> model = build_model("mobilenetv3_small")
    >>> sum(p.numel() for p in model.parameters())
    2542856
    """
    model = registry.get(name).build(**options)
    return model.eval()


def input_shape(name: str) -> tuple[int, int, int]:
    """The native input (C, H, W) of a registered variant.

    >>> input_shape("espnet")
    (3, 512, 1024)
    """
    return registry.get(name).input


def parse_resolution(text: str | int | None) -> tuple[int, int] | None:
    """``"224"`` -> (224, 224); ``"512x1024"`` -> (512, 1024) (H x W); ``None`` stays ``None``."""
    if text is None:
        return None
    s = str(text).strip().lower()
    m = re.fullmatch(r"(-?\d+)(?:x(-?\d+))?", s)
    if not m:
        raise UsageError(f"resolution must be N or HxW (e.g. 224 or 512x1024), got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) is not None else h
    if h <= 0 or w <= 0:
        raise UsageError(f"resolution must be positive, got {text!r}")
    return h, w


def resolve_targets(
    refs: Iterable[str], *, input_shape: Sequence[int] | str | None = None, model_args: Sequence[str] | dict | None = None
) -> list[Target]:
    """Model references -> targets, in the order given (unknown names: exit 2 with suggestions).

    A reference is a registry name, family alias or pattern (``'ghostnet*'``); a user's
    ``path/to/file.py:factory`` or ``package.module:factory(width=1.5)``; an ``.onnx`` file; or
    ``timm:NAME`` / ``torchvision:NAME`` where those are installed. ``input_shape`` (CxHxW)
    sets the input of every target; ``model_args`` (``key=value`` strings or a dict) are passed
    to user factories.
    """
    from cnnprof import references

    shape = references.parse_input(input_shape) if isinstance(input_shape, str) else (
        tuple(input_shape) if input_shape is not None else None)
    kwargs = model_args if isinstance(model_args, dict) else references.parse_model_args(list(model_args or []))
    targets: list[Target] = []
    names: list[str] = []
    for ref in refs:
        if references.is_reference(ref):
            r = references.resolve_user(ref, input_shape=shape, model_args=kwargs)
            targets.append(Target(name=r.name, family=r.family, input=r.input, builder=r.builder, onnx_path=r.onnx_path))
            continue
        for name in registry.resolve([ref]):
            if name in names:
                continue
            names.append(name)
            spec = registry.get(name)
            targets.append(
                Target(
                    name=spec.name,
                    family=spec.family,
                    input=shape or spec.input,
                    builder=lambda spec=spec: spec.build(),
                    min_input=spec.min_input,
                    spec=spec,
                )
            )
    if not targets:
        raise UsageError("no model given")
    return targets


def target_input(target: Target, resolution: tuple[int, int] | None) -> tuple[int, int, int]:
    """The (C, H, W) to use for ``target``: its native input, or ``resolution`` checked against
    the network's downsampling."""
    if resolution is None:
        return target.input
    if target.onnx_path is not None:
        raise UsageError(f"{target.name} is an ONNX file with a fixed input; --resolution cannot change it")
    h, w = resolution
    if h < target.min_input or w < target.min_input:
        raise UsageError(
            f"resolution {h}x{w} is too small for {target.name}: its downsampling needs at least "
            f"{target.min_input}x{target.min_input}"
        )
    return (target.input[0], h, w)


def check_batch(batch: int) -> int:
    if batch < 1:
        raise UsageError(f"batch must be at least 1, got {batch}")
    return batch


def count(
    model_or_name: "str | nn.Module", input_shape: Sequence[int] | None = None, *, batch: int = 1
) -> Counts:
    """Count parameters, MACs, activations and bytes moved of a model.

    >>> c = count("efficientnet_b0")
    >>> c.params, round(c.macs / 1e6, 1)
    (5288548, 385.8)
    """
    from cnnprof import counting

    check_batch(batch)
    if isinstance(model_or_name, str):
        target = resolve_targets([model_or_name], input_shape=input_shape)[0]
        return count_target(target, target.input, batch=batch)
    if input_shape is None:
        raise UsageError("count(model) needs input_shape=(C, H, W) for a model that is not registered")
    return counting.count(model_or_name, tuple(input_shape), batch=batch)


def count_target(target: Target, shape: Sequence[int], *, batch: int = 1) -> Counts:
    """Count a target: fvcore on the built module, or the ONNX-graph counter for an ONNX file."""
    from cnnprof import counting

    if target.onnx_path is None:
        return counting.count(target.build(calibrate=False), tuple(shape), batch=batch, label=target.name)
    from cnnprof.onnx_count import count_onnx

    oc = count_onnx(target.onnx_path, batch=batch)
    by_op: dict[str, int] = {}
    for node in oc.nodes:
        by_op[node.op] = by_op.get(node.op, 0) + node.macs
    activations = 0
    for node in oc.nodes:
        n = 1
        for d in node.output_shape:
            n *= d
        activations += n
    return Counts(
        params=oc.params, macs=oc.macs, macs_fvcore=None, activations=activations, bytes_moved=None,
        input_shape=oc.input_shape, status=oc.status, by_op=by_op,
        uncounted={op: n for op, n in oc.op_histogram.items() if op not in by_op and op != "Constant"},
    )


def count_rows(
    targets: Sequence[Target],
    *,
    resolution: tuple[int, int] | None = None,
    batch: int = 1,
    on_progress: Callable[[str], None] | None = None,
) -> list[tuple[ProfileRow, Counts | None]]:
    """Count each target; a model that fails becomes a row with ``error`` set."""
    from cnnprof.errors import CnnprofError

    check_batch(batch)
    shapes = [target_input(t, resolution) for t in targets]  # validate all before any work
    out: list[tuple[ProfileRow, Counts | None]] = []
    for target, shape in zip(targets, shapes):
        if on_progress:
            on_progress(f"counting {target.name} at {shape[1]}x{shape[2]}")
        try:
            counts = count_target(target, shape, batch=batch)
        except CnnprofError as exc:
            if len(targets) == 1:
                raise
            out.append((ProfileRow(model=target.name, family=target.family, batch=batch, error=str(exc)), None))
            continue
        out.append((counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape, batch=batch), counts))
    return out


def profile(
    names: str | Iterable[str], *, resolution: str | int | None = None, batch: int = 1
) -> "pandas.DataFrame":
    """The report rows of ``names`` (names, aliases or patterns) as a DataFrame.

    >>> df = profile(["mobilenetv3_small"])
    >>> int(df.loc[0, "params"]), df.loc[0, "input"]
    (2542856, '3x224x224')
    """
    from cnnprof.report import rows_to_frame

    refs = [names] if isinstance(names, str) else list(names)
    rows = count_rows(resolve_targets(refs), resolution=parse_resolution(resolution), batch=batch)
    return rows_to_frame([row for row, _ in rows])


def parse_threads(text: str | int) -> int:
    """``"1"`` -> 1, ``"all"`` -> the cores this process may use."""
    from cnnprof.timing.environment import cpu_count

    s = str(text).strip().lower()
    if s == "all":
        return cpu_count()
    if not s.isdigit() or int(s) < 1:
        raise UsageError(f"threads must be a positive integer or 'all', got {text!r}")
    return int(s)


def parse_list(text: str, *, what: str, choices: Sequence[str] | None = None) -> list[str]:
    items = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what}: empty list")
    if choices is not None:
        bad = [t for t in items if t not in choices]
        if bad:
            raise UsageError(f"unknown {what} {bad[0]!r}; choose from {', '.join(choices)}")
    return list(dict.fromkeys(items))


def parse_batches(text: str) -> list[int]:
    """``"1,8,32"`` -> [1, 8, 32]."""
    try:
        batches = [int(t) for t in parse_list(text, what="batch")]
    except ValueError:
        raise UsageError(f"batch list must be integers separated by commas (e.g. 1,8), got {text!r}") from None
    for b in batches:
        check_batch(b)
    return batches


def bench_rows(
    targets: Sequence[Target],
    *,
    backends: Sequence[str] = ("torch",),
    device: str = "cpu",
    batches: Sequence[int] = (1,),
    threads: int = 1,
    channels_last: bool = False,
    train: bool = False,
    resolution: tuple[int, int] | None = None,
    protocol=None,
    onnx_dir: str = "models",
    on_progress: Callable[[str], None] | None = None,
) -> "Iterator[ProfileRow]":
    """Count and time every target x batch x backend, yielding one row as each is done.

    A model that fails on one backend (export, compile, session) yields a row with ``error``
    and the others go on. Counting happens once per target, at batch 1.
    """
    from cnnprof import counting, timing
    from cnnprof.errors import CnnprofError
    from cnnprof.rows import with_latency
    from cnnprof.timing.environment import fingerprint

    for backend in backends:
        timing.check_options(timing.TimingOptions(backend=backend, device=device, threads=threads))
    for b in batches:
        check_batch(b)
    shapes = [target_input(t, resolution) for t in targets]
    for target, shape in zip(targets, shapes):
        if on_progress:
            on_progress(f"{target.name}: counting")
        try:
            base = count_target(target, shape)
        except CnnprofError as exc:
            yield ProfileRow(model=target.name, family=target.family, error=str(exc))
            continue
        for batch in batches:
            counts = base if target.onnx_path else counting.scale_to_batch(base, batch)
            row = counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape, batch=batch)
            for backend in backends:
                opts = timing.TimingOptions(
                    backend=backend, device=device, threads=threads, batch=batch, channels_last=channels_last,
                    train=train, onnx_dir=onnx_dir, **({"protocol": protocol} if protocol is not None else {}),
                )
                if on_progress:
                    on_progress(f"{target.name}: timing {backend} on {device}, batch {batch}, {threads} thread(s)")
                try:
                    if target.onnx_path is not None:
                        if backend != "onnxruntime":
                            raise UsageError(f"{target.name} is an ONNX file: it is timed with onnxruntime only")
                        if batch != counts.input_shape[0]:
                            counts = count_target(target, shape, batch=batch)
                            row = counts_row(model=target.name, family=target.family, counts=counts,
                                             input_shape=shape, batch=batch)
                        latency = timing.time_model(None, shape, name=target.name, opts=opts,
                                                    onnx_path=target.onnx_path)
                    else:
                        latency = timing.time_model(target.build(shape=shape), shape, name=target.name, opts=opts)
                except CnnprofError as exc:
                    yield dataclasses.replace(row, backend=backend, device=device, threads=threads, error=str(exc))
                    continue
                env = fingerprint(threads).to_dict()
                yield dataclasses.replace(with_latency(row, latency, counts.macs), environment=env)
