"""Which model, built how: the one way any command turns a reference into a network and its input.

A *reference* is what a user types: a registered name, a family alias or a pattern
(``'ghostnet*'``), a user's ``path/to/file.py:factory(width=2)`` or ``package.module:factory``,
an ``.onnx`` file, or ``timm:NAME`` / ``torchvision:NAME``. ``resolve_targets`` turns references
into :class:`Target` values (the registry and ``references`` do the loading); a target builds its
network, seeded, in eval mode and, for a registered variant, with its batch norms calibrated at
the input it will run on (``calibrate_model``: the only place cnnprof calibrates). ``count_target``
counts any target: fvcore on the built module, or the ONNX-graph counter for an ONNX file.

Claims, scaling, the lookup tables, the gate, per-layer profiling and export all get their
models here, so a model is built, seeded and calibrated the same way whichever command asks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from cnnprof.errors import OutOfMemory, UsageError, memory_guard, shorten
from cnnprof.models import registry

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.rows import Counts


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
    error: str = ""  # a user's reference that failed to load, kept as this model's error row
    # how another process resolves the same target (``from_recipe``): a Python literal, "" if none
    recipe: str = ""
    # where the weights come from: "random", "package" or a state-dict file (``models/weights.py``)
    weights: str = "random"

    @property
    def weights_label(self) -> str:
        """``random``, ``<file>@sha256:<12 hex>`` or ``package:<distribution>==<version>``; "" for an
        ONNX file (its weights are its own)."""
        if self.onnx_path is not None:
            return ""
        if self.weights == "random":
            return "random"
        from cnnprof.models.weights import weights_info

        return weights_info(self.name, self.weights).label

    def build(self, seed: int | None = 0, *, calibrate: bool = True, shape: Sequence[int] | None = None) -> "nn.Module":
        """Build in eval mode; seeded so that two builds have the same weights (and an ONNX
        export of one can be reused for the other). A registered variant's batch norms are
        calibrated at ``shape`` (default: the target's input), the input it will run on, so that
        its random-weight activations keep a realistic scale (see ``calibrate_model``);
        ``calibrate=False`` skips that (counting does not need it). A user's model is built as
        its factory returns it. Trained weights (``weights`` not "random") are loaded onto the
        built module, and then nothing is calibrated: the file's statistics are kept."""
        if self.error:
            raise UsageError(self.error)
        if self.builder is None:
            raise UsageError(f"{self.name} is an ONNX file: it has no PyTorch module to build")
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        with running(self.name):
            model = self.builder().eval()
        if self.weights != "random":
            from cnnprof.models.weights import load_weights

            load_weights(model, self.name, self.weights)
            return model.eval()
        if calibrate and self.spec is not None:
            at = tuple(shape or self.input)
            with memory_guard(f"{self.name} at input {'x'.join(map(str, at))}"):
                model = calibrate_model(model, at)
        return model


@contextlib.contextmanager
def running(name: str) -> Iterator[None]:
    """A model's own code runs inside this block (a user's factory or forward): its ``sys.exit()``
    becomes this model's one-line error, not cnnprof's exit."""
    try:
        yield
    except SystemExit as exc:
        raise UsageError(f"{shorten(name)}: the model called sys.exit({exc.code!r})") from None


def calibrate_model(model: "nn.Module", shape: Sequence[int]) -> "nn.Module":
    """Calibrate a randomly initialised network's batch norms at ``shape`` (C, H, W), the input it
    will be timed at (``cnnprof.models.calibrate`` says why); returns it in eval mode."""
    from cnnprof.models.calibrate import calibrate_batchnorm

    return calibrate_batchnorm(model, tuple(shape))


def registered(name: str, *, input_shape: Sequence[int] | None = None, **options: Any) -> Target:
    """The target of one registered variant or family alias, its builder called with
    ``options`` on top of the variant's own (``registered("efficientnet_b0", width_mult=1.1)``)."""
    spec = registry.get(name)
    builder = functools.partial(spec.build, **options) if options else spec.build
    shape = tuple(input_shape or spec.input)
    return Target(name=spec.name, family=spec.family, input=shape, builder=builder,
                  min_input=spec.min_input, spec=spec, recipe=_recipe("registered", spec.name, shape, options))


def _recipe(kind: str, ref: str, shape: Sequence[int] | None, options: dict, weights: str = "random") -> str:
    """The literal ``from_recipe`` reads back; "" when an option is not a plain literal."""
    import ast

    text = repr((kind, ref, tuple(shape) if shape else None, sorted(options.items()), weights))
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return ""
    return text


def from_recipe(recipe: str) -> Target:
    """The target a ``Target.recipe`` describes, resolved again (in a measurement process)."""
    import ast

    try:
        kind, ref, shape, options, *rest = ast.literal_eval(recipe)
    except (ValueError, SyntaxError, TypeError):
        raise UsageError(f"not a model recipe: {shorten(str(recipe))!r}") from None
    weights = str(rest[0]) if rest else "random"
    if kind == "registered":
        target = registered(ref, input_shape=shape, **dict(options))
    else:
        target = resolve_targets([ref], input_shape=shape, model_args=dict(options))[0]
    return with_weights(target, weights)


def with_weights(target: Target, weights: str | None) -> Target:
    """``target`` with its weights taken from ``weights`` ("random", "package" or a file; None
    keeps random weights), its recipe carrying them. Checks at once that the file exists or the
    package is installed (one-line error otherwise); the tensors are fitted when it is built."""
    import ast
    import dataclasses

    weights = "random" if weights is None else str(weights).strip()
    if weights == "random" or target.error:
        return target
    if target.builder is None:
        raise UsageError(f"{target.name} is an ONNX file: it carries its own weights (--weights applies to "
                         "PyTorch models)")
    from cnnprof.models.weights import weights_info

    info = weights_info(target.name, weights)
    source = info.path if info.source != "package" and info.path else info.source
    recipe = target.recipe
    if recipe:
        kind, ref, shape, options, *_ = ast.literal_eval(recipe)
        recipe = _recipe(kind, ref, shape, dict(options), source)
    return dataclasses.replace(target, weights=source, recipe=recipe)


def _shape(input_shape: Sequence[int] | str | None) -> tuple[int, ...] | None:
    from cnnprof import references

    if isinstance(input_shape, str):
        return references.parse_input(input_shape)
    return tuple(input_shape) if input_shape is not None else None


def resolve_targets(
    refs: Iterable[str],
    *,
    input_shape: Sequence[int] | str | None = None,
    model_args: Sequence[str] | dict | None = None,
    keep_errors: bool = False,
    weights: str | None = None,
) -> list[Target]:
    """Model references -> targets, in the order given (unknown names: exit 2 with suggestions).

    ``input_shape`` (CxHxW) sets the input of every target; ``model_args`` (``key=value`` strings
    or a dict) are passed to user factories. With ``keep_errors`` (a run of several models), a
    user's reference that fails to load (its file, its factory) becomes a target carrying that
    ``error``, which the run reports as that model's row, instead of stopping everything.
    ``weights`` ("random", "package" or a state-dict file; see ``with_weights``) applies to every
    target.
    """
    from cnnprof import references

    shape = _shape(input_shape)
    kwargs = model_args if isinstance(model_args, dict) else references.parse_model_args(list(model_args or []))
    targets: list[Target] = []
    names: list[str] = []
    for ref in refs:
        if references.is_reference(ref):
            try:
                r = references.resolve_user(ref, input_shape=shape, model_args=kwargs)
            except UsageError as exc:
                if not keep_errors:
                    raise
                targets.append(Target(name=ref, family="user", input=tuple(shape or ()), builder=None, error=str(exc)))
                continue
            targets.append(Target(name=r.name, family=r.family, input=r.input, builder=r.builder,
                                  onnx_path=r.onnx_path, recipe=_recipe("reference", ref, r.input, kwargs)))
            continue
        for name in registry.resolve([ref]):
            if name not in names:
                names.append(name)
                targets.append(registered(name, input_shape=shape))
    if not targets:
        raise UsageError("no model given")
    targets = [with_weights(t, weights) for t in targets]
    for t in targets:
        check_weights(t)
    return targets


def check_weights(target: Target) -> None:
    """Fit a target's trained weights onto its network once, before any work: a file that does not
    fit is one line and exit 2 (``models/weights.py``), not an error row after the counting."""
    if target.weights == "random" or target.error or target.builder is None:
        return
    from cnnprof.models.weights import load_weights

    with running(target.name):
        model = target.builder()
    load_weights(model, target.name, target.weights)


def resolve_one(ref: str, input_shape: Sequence[int]) -> Target:
    """The target a stored reference names (a gate baseline's model), at the input it was
    recorded with: a user's reference needs that input to resolve; a registered name has its own."""
    from cnnprof import references

    if references.is_reference(ref):
        return resolve_targets([ref], input_shape=tuple(input_shape))[0]
    return resolve_targets([ref])[0]


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


def target_input(target: Target, resolution: tuple[int, int] | None, *, batch: int = 1) -> tuple[int, int, int]:
    """The (C, H, W) to use for ``target``: its native input, or ``resolution`` checked against
    the network's downsampling, and against what this machine can run (``check_workload``)."""
    if resolution is None or target.error:
        shape = target.input
    elif target.onnx_path is not None:
        raise UsageError(f"{target.name} is an ONNX file with a fixed input; --resolution cannot change it")
    else:
        h, w = resolution
        if h < target.min_input or w < target.min_input:
            raise UsageError(
                f"resolution {h}x{w} is too small for {target.name}: its downsampling needs at least "
                f"{target.min_input}x{target.min_input}"
            )
        shape = (target.input[0], h, w)
    if not target.error:
        check_workload(target, shape, batch)
    return shape


# A network this much larger than the zoo's largest (EfficientNet-B7: 37 GMACs) would take hours to
# count or time on one CPU; the input alone must leave room for the activations it makes.
MAX_MACS = 2e12
ACTIVATIONS_PER_INPUT = 16  # peak live activations / input size: about 10-30 across the zoo


def available_memory() -> int | None:
    """Bytes of memory this machine can give a new allocation now (Linux), or None."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_workload(target: Target, shape: Sequence[int], batch: int) -> None:
    """Refuse (exit 2) an input that cannot fit in memory, or that makes a registered network so
    large (its official MACs scaled by the input area) that counting or timing it would not end."""
    elements = batch
    for d in shape:
        elements *= int(d)
    need = 4 * elements * ACTIVATIONS_PER_INPUT
    free = available_memory()
    size = "x".join(str(d) for d in shape)
    if free is not None and need > free:
        raise OutOfMemory(f"{target.name} at input {size}, batch {batch}: the input alone is {4 * elements / 1e9:.3g} GB "
                          f"and its activations about {need / 1e9:.3g} GB, more than the {free / 1e9:.3g} GB free here")
    ref = target.spec.reference if target.spec is not None else None
    if ref is not None and ref.macs:
        native = target.spec.input[1] * target.spec.input[2]
        macs = ref.macs * batch * shape[1] * shape[2] / native
        if macs > MAX_MACS:
            raise UsageError(f"{target.name} at input {size}, batch {batch} would be about {macs / 1e12:.3g} TMACs "
                             f"(its {ref.macs / 1e9:.3g} GMACs at its native input, scaled by area): too large to "
                             f"count or time on this machine (the limit is {MAX_MACS / 1e12:g} TMACs)")


def check_batch(batch: int) -> int:
    from cnnprof.numbers import MAX_BATCH, whole

    return whole(batch, "batch", lo=1, hi=MAX_BATCH)


def count_target(target: Target, shape: Sequence[int], *, batch: int = 1) -> "Counts":
    """Count a target: fvcore on the built module, or the ONNX-graph counter for an ONNX file."""
    if target.onnx_path is None:
        from cnnprof import counting

        model = target.build(calibrate=False)
        with running(target.name):
            return counting.count(model, tuple(shape), batch=batch, label=target.name)
    from cnnprof.onnx_count import onnx_counts

    return onnx_counts(target.onnx_path, batch=batch)
