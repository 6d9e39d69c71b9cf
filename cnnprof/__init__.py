"""cnnprof: count, time and check the efficient CNNs of the seed chapter on your own machine.

The Python API (``list_models``, ``build_model``, ``input_shape``, ``count``, ``profile``,
``bench_rows``, and ``results`` / ``runs`` of the results database) is re-exported lazily from
``cnnprof.api``, and every submodule (``cnnprof.targets``, ``cnnprof.timing``, ``cnnprof.lut``,
``cnnprof.claims``, ``cnnprof.gate``, ...) loads on first access, so that ``import cnnprof``
stays instant.
"""

from __future__ import annotations

from cnnprof.version import __version__

_API = ("list_models", "build_model", "input_shape", "count", "profile", "bench_rows", "results", "runs")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        from cnnprof import api

        return getattr(api, name)
    if not name.startswith("_"):  # a submodule, imported on first access (then an attribute as usual)
        import importlib

        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # the submodule exists but needs something missing
                raise
    raise AttributeError(f"module 'cnnprof' has no attribute {name!r}")


def __dir__() -> list[str]:
    import pkgutil

    return sorted({*globals(), *_API, *(m.name for m in pkgutil.iter_modules(__path__))})
