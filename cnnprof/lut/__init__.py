"""Per-block latency lookup tables and additive latency prediction (FBNet, Wu et al., CVPR 2019).

FBNet estimates a network's latency as the sum of its blocks' latencies, each read from a table
measured once on the target device (LAT(a) = sum_l LAT(b_l), paper Eq. 3), and ranks candidates
with it. This package builds such a table on the user's own machine (each block read in place
inside networks of the space, or timed alone), learns a correction from whole networks, predicts
from it and measures how far the sum holds there (``additivity``).

The modules, bottom to top; each imports only from those below it (``pyproject.toml`` holds the
order as an import-linter contract, checked by the tests):

* ``space``: the FBNet search space as the table sees it: its networks, FBNet-A/B/C (the
  reference models), architectures as index vectors, random and disjoint samples;
  ``baseline``: the MACs predictors a table is compared with (beside ``space``: neither imports
  the other);
* ``table``: the JSON file: entries, the environments they were measured in, the space indexes,
  the calibration stored with the table, the ``Mode`` and ``Allocator`` it was built with;
  loading with one-line errors, ``open_table`` for a build;
* ``keys``: block signatures, the split of a network into stem, blocks and head (and glue), a
  space's index of keys;
* ``probe``: the speed probe, the clocks and the steady allocator: the machine's state kept out
  of the readings;
* ``measure``: timing one block or one network with the project's protocol, and a network timed
  in place (its parts' shares of the real forward pass);
* ``builder``: isolated entries (what to time, resume / skip); ``context``: in-context entries
  (every block read inside networks of the space; the default). Neither imports the other;
* ``predict``: arithmetic on a table: a model's sum and calibrated prediction, the vectorised
  space predictor, error statistics, Spearman, FBNet's loss;
* ``correction``: the fit behind ``lut calibrate`` (ridge regression, adaptive sampling);
* ``learn``: ``lut calibrate``'s procedure and ``lut build --calibrate``'s single scale;
  ``evaluate``: ``lut predict`` as one call and ``additivity`` (neither imports the other);
* ``on_cluster``: a table built on the nodes of a Ray cluster (``lut build --cluster``; not
  imported here: it needs Ray).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# the package's names and the module each comes from: loaded on first use, so that importing one
# module (the CLI reads ``table``'s Mode and Allocator) does not load the timers and the builders
_HOME = {
    "Job": "builder", "build": "builder", "fbnet_space_jobs": "builder", "model_jobs": "builder",
    "space_jobs": "builder",
    "build_in_context": "context", "space_networks": "context", "target_networks": "context",
    "AdditivityRow": "evaluate", "additivity": "evaluate",
    "Part": "keys", "SplitError": "keys", "block_key": "keys", "split": "keys",
    "CalibrationReport": "learn", "calibrate": "learn",
    "InPlace": "measure", "make_in_place_timer": "measure",
    "FBNET_ALPHA": "predict", "FBNET_BETA": "predict", "SpaceMatrix": "predict", "error_stats": "predict",
    "fbnet_loss": "predict", "spearman": "predict",
    "SpeedProbe": "probe",
    "sample_choices": "space",
    "Allocator": "table", "BuildReport": "table", "Calibration": "table", "Entry": "table", "Mode": "table",
    "SpaceIndex": "table", "Table": "table", "TableError": "table", "default_path": "table", "load": "table",
}
_RENAMED = {"calibrate": "calibrate_scale"}  # ``cnnprof.lut.calibrate`` is ``lut build --calibrate``'s scale

__all__ = [
    "FBNET_ALPHA", "FBNET_BETA", "AdditivityRow", "Allocator", "BuildReport", "Calibration", "CalibrationReport",
    "Entry", "InPlace", "Job", "Mode", "Part", "SpaceIndex", "SpaceMatrix", "SpeedProbe", "SplitError", "Table",
    "TableError", "additivity", "block_key", "build", "build_in_context", "calibrate", "default_path", "error_stats",
    "fbnet_loss", "fbnet_space_jobs", "load", "make_in_place_timer", "model_jobs", "sample_choices", "space_jobs",
    "space_networks", "spearman", "split", "target_networks",
]

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.lut.builder import Job, build, fbnet_space_jobs, model_jobs, space_jobs
    from cnnprof.lut.context import build_in_context, space_networks, target_networks
    from cnnprof.lut.evaluate import AdditivityRow, additivity
    from cnnprof.lut.keys import Part, SplitError, block_key, split
    from cnnprof.lut.learn import CalibrationReport
    from cnnprof.lut.learn import calibrate_scale as calibrate
    from cnnprof.lut.measure import InPlace, make_in_place_timer
    from cnnprof.lut.predict import FBNET_ALPHA, FBNET_BETA, SpaceMatrix, error_stats, fbnet_loss, spearman
    from cnnprof.lut.probe import SpeedProbe
    from cnnprof.lut.space import sample_choices
    from cnnprof.lut.table import (
        Allocator,
        BuildReport,
        Calibration,
        Entry,
        Mode,
        SpaceIndex,
        Table,
        TableError,
        default_path,
        load,
    )


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'cnnprof.lut' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cnnprof.lut.{_HOME[name]}"), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
