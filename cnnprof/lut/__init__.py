"""Per-block latency lookup tables and additive latency prediction (FBNet, Wu et al., CVPR 2019).

FBNet estimates a network's latency as the sum of its blocks' latencies, each read from a table
measured once on the target device (LAT(a) = sum_l LAT(b_l), paper Eq. 3), and ranks candidates
with it. This package builds such a table on the user's own machine, learns a correction from
whole networks, predicts from it and measures how far the sum holds there (``additivity``).

* ``keys``: block signatures and the split of a network into stem, blocks and head (and glue);
* ``table``: the JSON file, its environments, loading with one-line errors;
* ``measure``: timing one block or one network with the project's protocol, the speed probe,
  and a network timed in place (its parts' shares of the real forward pass);
* ``builder``: isolated entries (what to time, resume / skip, the single-scale calibration);
* ``context``: in-context entries (every block read inside networks of the space; the default);
* ``correction``: ``lut calibrate``'s learned correction, adaptive sampling, held-out check;
* ``predict``: the vectorised space predictor, error statistics, Spearman, FBNet's loss,
  ``additivity``; ``evaluate``: ``lut predict`` as one call.
"""

from cnnprof.lut.builder import BuildReport, Job, build, calibrate, fbnet_space_jobs, model_jobs, space_jobs
from cnnprof.lut.context import build_in_context, space_networks, target_networks
from cnnprof.lut.correction import Calibration
from cnnprof.lut.keys import Part, SplitError, block_key, split
from cnnprof.lut.learn import CalibrationReport
from cnnprof.lut.measure import InPlace, SpeedProbe, make_in_place_timer
from cnnprof.lut.predict import (
    FBNET_ALPHA,
    FBNET_BETA,
    AdditivityRow,
    SpaceMatrix,
    additivity,
    error_stats,
    fbnet_loss,
    sample_choices,
    spearman,
)
from cnnprof.lut.table import Entry, SpaceIndex, Table, TableError, default_path, load

__all__ = [
    "FBNET_ALPHA", "FBNET_BETA", "AdditivityRow", "BuildReport", "Calibration", "CalibrationReport", "Entry",
    "InPlace", "Job", "Part", "SpaceIndex", "SpaceMatrix", "SpeedProbe", "SplitError", "Table", "TableError",
    "additivity", "block_key", "build", "build_in_context", "calibrate", "default_path", "error_stats",
    "fbnet_loss", "fbnet_space_jobs", "load", "make_in_place_timer", "model_jobs", "sample_choices",
    "space_jobs", "space_networks", "spearman", "split", "target_networks",
]
