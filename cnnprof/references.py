"""Model references beyond registry names: a user's own PyTorch model, an ONNX file, timm / torchvision.

* ``package.module:factory`` or ``path/to/file.py:factory``, optionally with keyword options
  ``:factory(width=1.5)`` (literals only) and repeated ``--model-arg key=value``: a callable that
  returns an ``nn.Module``. Its input comes from ``--input CxHxW``, else from an ``input_shape``
  attribute declared on the module (or on the factory).
* ``path/to/model.onnx``: counted from the graph, timed with ONNX Runtime only.
* ``timm:NAME`` / ``torchvision:NAME``: when those packages are installed (never dependencies).

Every way a reference can be wrong is a one-line ``UsageError``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cnnprof.errors import UsageError, one_line, shorten

_CALL = re.compile(r"^(?P<target>[^()]+?)(?:\((?P<args>.*)\))?$", re.S)
HUBS = ("timm", "torchvision")


def is_reference(ref: str) -> bool:
    """True for anything that is not a registry name, alias or pattern."""
    return ":" in ref or ref.lower().endswith(".onnx")


def _is_file_location(location: str) -> bool:
    """Whether the part before ':' names a ``.py`` file (imported from that path), not a module."""
    return location.endswith(".py") or "/" in location or "\\" in location


def reference_files(refs) -> list[str]:
    """The files that model references read (an ``.onnx`` file, a ``file.py:factory``'s file):
    inputs that no output of the same command may overwrite."""
    out = []
    for ref in refs or []:
        if not is_reference(ref):
            continue
        if ref.lower().endswith(".onnx"):
            out.append(ref)
            continue
        location = ref.partition(":")[0]
        if _is_file_location(location):
            out.append(location)
    return out


def parse_input(text: str | None) -> tuple[int, ...] | None:
    """``"3x224x224"`` -> (3, 224, 224)."""
    if text is None:
        return None
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--input must be CxHxW (e.g. 3x224x224), got {text!r}") from None
    if len(dims) != 3 or min(dims) < 1:
        raise UsageError(f"--input must be three positive sizes CxHxW (e.g. 3x224x224), got {text!r}")
    return dims


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """``["width=1.5", "name=small"]`` -> {"width": 1.5, "name": "small"} (Python literals, else text)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--model-arg must be key=value with a Python name as key, got {item!r}")
        out[key.strip()] = _literal(value.strip())
    return out


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_call(spec: str, ref: str) -> tuple[str, dict[str, Any]]:
    """'factory(width=1.5, name="a")' -> ('factory', {...})."""
    m = _CALL.match(spec.strip())
    if not m:
        raise UsageError(f"cannot read model reference {shorten(ref)!r}")
    name, args = m.group("target").strip(), m.group("args")
    if not args or not args.strip():
        return name, {}
    try:
        call = ast.parse(f"f({args})", mode="eval").body
        if not isinstance(call, ast.Call) or call.args:
            raise ValueError
        return name, {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except (ValueError, SyntaxError):
        raise UsageError(f"options of {shorten(ref)!r} must be keyword literals, e.g. {name}(width=1.5)") from None


@dataclass(frozen=True)
class Resolved:
    """What a reference resolved to: a model factory (or an ONNX file) and its input."""

    name: str
    family: str
    input: tuple[int, ...]
    builder: Callable[[], Any] | None
    onnx_path: str | None = None


def _import_target(location: str, ref: str):
    """'pkg.mod' or 'path/to/file.py' -> the module object."""
    if _is_file_location(location):
        path = Path(location)
        if not path.is_file():
            raise UsageError(f"{shorten(ref)!r}: file {shorten(location)!r} does not exist")
        mod_name = f"cnnprof_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"{shorten(ref)!r}: cannot import {shorten(location)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        loader: Any = spec.loader
    else:
        module, loader = None, None
    try:
        if loader is not None:
            loader.exec_module(module)
            return module
        return importlib.import_module(location)
    except SystemExit as exc:  # the user's module exits while it is imported: that is its error, not ours
        raise UsageError(f"{shorten(ref)!r}: importing {shorten(location)!r} called sys.exit({exc.code!r})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import: say how, in one line
        raise UsageError(f"{shorten(ref)!r}: cannot import {shorten(location)!r}: {one_line(exc)}") from None


def _call_factory(factory: Callable, kwargs: dict[str, Any], ref: str):
    from torch import nn

    try:
        model = factory(**kwargs)
    except SystemExit as exc:  # the factory exits: its model's error, not cnnprof's exit
        raise UsageError(f"{shorten(ref)!r}: the factory called sys.exit({exc.code!r})") from None
    except Exception as exc:  # noqa: BLE001 - the user's factory raised: report it in one line
        raise UsageError(f"{shorten(ref)!r}: the factory raised {one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{shorten(ref)!r}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def resolve_user(ref: str, *, input_shape: tuple[int, ...] | None, model_args: dict[str, Any]) -> Resolved:
    if ref.lower().endswith(".onnx"):
        return resolve_onnx(ref, input_shape=input_shape)
    prefix, _, rest = ref.partition(":")
    if prefix in HUBS:
        return resolve_hub(prefix, rest, ref, input_shape=input_shape, model_args=model_args)
    location, _, call = ref.partition(":")
    attr, kwargs = _parse_call(call, ref)
    kwargs = {**kwargs, **model_args}
    module = _import_target(location, ref)
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise UsageError(f"{shorten(ref)!r}: {location!r} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise UsageError(f"{shorten(ref)!r}: {attr!r} is a {type(factory).__name__}, not a callable that returns a model")
    model = _call_factory(factory, kwargs, ref)
    declared = getattr(model, "input_shape", None) or getattr(factory, "input_shape", None)
    shape = input_shape or (tuple(int(d) for d in declared) if declared else None)
    if shape is None:
        raise UsageError(f"{shorten(ref)!r} declares no input shape: pass --input CxHxW")
    return Resolved(name=ref, family="user", input=shape, builder=lambda: _call_factory(factory, kwargs, ref))


def resolve_onnx(ref: str, *, input_shape: tuple[int, ...] | None) -> Resolved:
    from cnnprof.onnx_count import graph_input, load

    model = load(ref)
    _, shape = graph_input(model)
    if input_shape is not None and tuple(input_shape) != tuple(shape[1:]):
        raise UsageError(f"{shorten(ref)!r} has a fixed input {'x'.join(map(str, shape[1:]))}; --input cannot change it")
    return Resolved(name=ref, family="onnx", input=tuple(shape[1:]), builder=None, onnx_path=str(Path(ref)))


def resolve_hub(hub: str, name: str, ref: str, *, input_shape, model_args) -> Resolved:
    if importlib.util.find_spec(hub) is None:
        raise UsageError(f"{shorten(ref)!r}: {hub} is not installed (pip install {hub}); cnnprof does not depend on it")
    if not name:
        raise UsageError(f"{shorten(ref)!r}: give a model name after '{hub}:'")
    if hub == "timm":
        import timm

        def factory():
            return timm.create_model(name, pretrained=False, **model_args)
    else:
        import torchvision

        def factory():
            return torchvision.models.get_model(name, weights=None, **model_args)

    model = _call_factory(factory, {}, ref)
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    shape = input_shape or tuple(cfg.get("input_size", (3, 224, 224)))
    return Resolved(name=ref, family=hub, input=shape, builder=lambda: _call_factory(factory, {}, ref))


# -- trust: references read from a data file -------------------------------------------------------
# A baseline, a sweep file or a results database is data: loading one must never import or call
# code its author chose. The references it may name without asking are those that run nothing but
# what the user already has: registered names (the registry), ``.onnx`` files (parsed, not run),
# a hub's plain model name (looked up in the installed package's own registry), and ``file.py``
# factories inside the data file's own folder or git repository (the user's own code, next to the
# data). Anything else (``package.module:factory``, a ``.py`` file elsewhere) needs ``--trust``.
TRUST_OPTION = "--trust"
_HUB_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def _code_of(ref: str) -> tuple[str | None, Path | None]:
    """(module, file) whose code loading ``ref`` would run, without importing anything; (None,
    None) for a reference that runs no code of its own (a registered name, an ``.onnx`` file, a
    hub's plain model name)."""
    if not is_reference(ref) or ref.lower().endswith(".onnx"):
        return None, None
    location, _, rest = ref.partition(":")
    if location in HUBS:
        return (None, None) if _HUB_NAME.fullmatch(rest) else (location, None)
    if _is_file_location(location):
        return None, _real(location) or Path(location).absolute()  # no such path: compared as written
    return location.strip(), None


def _real(location: str) -> Path | None:
    """The absolute path ``location`` names, links followed; None if it cannot be one (a NUL byte,
    a loop of links)."""
    try:
        return Path(location).resolve()
    except (OSError, ValueError, RuntimeError):
        return None


def repository_of(folder: Path) -> Path | None:
    """The root of the git repository holding ``folder`` (a ``.git`` folder or file above it), or None."""
    for parent in (folder, *folder.parents):
        if (parent / ".git").exists():
            return parent
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _trusts(value: str, ref: str, module: str | None, file: Path | None) -> bool:
    """Whether one ``--trust`` value covers ``ref``: the reference itself, its module (or a
    package above it), its file, or a folder holding its file."""
    value = value.strip()
    if not value:
        return False
    if value == ref:
        return True
    if module is not None and (module == value or module.startswith(value + ".")):
        return True
    folder = _real(value)
    return file is not None and folder is not None and _inside(file, folder)


def check_trusted(refs: Iterable[str], *, source: str | os.PathLike, trusted: Sequence[str] = (),
                  what: str = "file") -> None:
    """Refuse (one-line ``UsageError``, exit 2) the first of ``refs``, read from the data file
    ``source`` (a ``what``: "baseline", "sweep file", "results database"), that would import or
    run code neither the policy above nor ``trusted`` (the ``--trust`` values) allows.

    Called before anything resolves the references: nothing is imported or called here."""
    folder = Path(source).absolute().parent.resolve()
    roots = [folder] + [r for r in [repository_of(folder)] if r is not None]
    for ref in refs:
        module, file = _code_of(ref)
        if module is None and file is None:
            continue
        if file is not None and any(_inside(file, root) for root in roots):
            continue
        if any(_trusts(t, ref, module, file) for t in trusted or ()):
            continue
        if file is not None:
            runs, allow = f"the file {shorten(str(file), 120)!r}, outside that file's folder and repository", str(file)
        else:
            runs, allow = f"code from module {shorten(module or '', 60)!r}", module or ref
        # a value to paste into a shell; escaped (not pasteable) if it holds control characters
        hint = shlex.quote(allow) if allow.isprintable() else repr(allow)
        raise UsageError(f"{what} {shorten(str(source))!r} names model {shorten(ref)!r}, which would run {runs}: "
                         f"not trusted (a data file may name registered models, .onnx files and .py files in its "
                         f"own folder or git repository); pass {TRUST_OPTION} {shorten(hint, 300)} to allow it")


def same_model(ref: str) -> tuple:
    """A key equal for two spellings of the same model, without importing anything: a registered
    name or alias in any case -> its registered name; a file (``.onnx``, ``file.py:factory``) by
    its resolved path; a factory by its module, name and options."""
    from cnnprof.errors import UnknownModelError
    from cnnprof.models import registry

    if not is_reference(ref):
        try:
            return ("registered", registry.get(ref).name)
        except UnknownModelError:
            return ("registered", ref.strip().lower())
    if ref.lower().endswith(".onnx"):
        return ("onnx", str(_real(ref) or ref))
    location, _, call = ref.partition(":")
    where = str(_real(location) or location) if _is_file_location(location) else location.strip()
    try:
        attr, kwargs = _parse_call(call, ref)
    except (UsageError, RecursionError, MemoryError):
        return ("reference", where, call.strip())
    return ("reference", where, attr, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
