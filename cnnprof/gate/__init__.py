"""CI latency-regression gate: a baseline file, re-measurement, and verdicts that hold on a noisy,
shared machine.

- ``baseline``: the versioned JSON file (``load_baseline``, ``Baseline``), validated on load.
- ``calibration``: the fixed calibration network every model call is timed against.
- ``worker`` / ``measure``: fresh measurement processes, run one after another.
- ``stats``: normalised samples, Welch's t on per-process levels, verdicts.
- ``core``: ``record`` and ``check``.
- ``budgets``: the named measurement budgets of ``gate check --budget`` (default, thorough).
- ``bisect``: ``gate bisect``, the first slower commit of a model's repository (``git bisect run``).

Importing this package imports neither torch nor numpy; the submodules do what they need.
"""

from __future__ import annotations

__all__ = ["record", "check", "plan", "load_baseline", "Settings", "GateModel", "Baseline", "ModelCheck",
           "Verdict", "CheckResult", "SCHEMA"]

_WHERE = {
    "record": "core", "check": "core", "plan": "core", "ModelCheck": "core", "Verdict": "core", "CheckResult": "core",
    "load_baseline": "baseline", "Baseline": "baseline", "SCHEMA": "baseline",
    "Settings": "measure", "GateModel": "measure",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"cnnprof.gate.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cnnprof.gate' has no attribute {name!r}")
