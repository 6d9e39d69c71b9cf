"""cnnprof: count, time and check the efficient CNNs of the seed chapter on your own machine.

The Python API (``list_models``, ``build_model``, ``input_shape``, ``count``, ``profile``,
``bench_rows``, and ``results`` / ``runs`` of the results database) is
re-exported lazily from ``cnnprof.api`` so that ``import cnnprof`` stays instant.
"""

from __future__ import annotations

from cnnprof.version import __version__

_API = ("list_models", "build_model", "input_shape", "count", "profile", "bench_rows", "results", "runs")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        from cnnprof import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnnprof' has no attribute {name!r}")
