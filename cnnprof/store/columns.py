"""Which field of a report row fills which typed column, and the keys that say where a row was
measured (revision, machine, environment).

Rows keep their own field names in their record; the columns are shared by every kind of row, so
a few fields are renamed on the way in (a claim's ``id`` is the ``claim`` column, a lookup-table
prediction's relative ``error`` is ``prediction_error``, ...). A field with no column stays in
the record, where ``json_extract`` reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Mapping

from cnnprof.store.schema import ROW_COLUMNS


class Kind:
    """The kinds of rows the database holds (the ``kind`` column)."""

    PROFILE = "profile"  # ProfileRow: profile, compare, bench, sweep
    LAYER = "layer"  # layerprof.LayerRow: profile --timing
    CLAIM = "claim"  # claims.ClaimResult
    GATE_RECORD = "gate-record"  # one model of a baseline
    GATE_CHECK = "gate-check"  # gate.core.ModelCheck
    PREDICT = "predict"  # lut.evaluate.PredictRow
    SCALE = "scale"  # scaling.ScaleRow

    ALL = (PROFILE, LAYER, CLAIM, GATE_RECORD, GATE_CHECK, PREDICT, SCALE)


RENAMES: dict[str, dict[str, str]] = {
    Kind.CLAIM: {"id": "claim"},
    Kind.GATE_RECORD: {"median_ms": "latency_ms_median"},
    Kind.PREDICT: {"error": "prediction_error", "measured_ms": "latency_ms_median"},
    Kind.SCALE: {"base": "model"},
    Kind.LAYER: {"name": "layer", "latency_ms": "latency_ms_median", "note": "warnings"},
}


def _typed(value: Any, sql_type: str) -> Any:
    if value is None or value == "":
        return None  # no value, whatever the type: filters need one spelling of "nothing"
    if sql_type == "INTEGER":
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if sql_type == "REAL":
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) else None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def row_columns(kind: str, record: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The typed columns of one row (``record`` is its ``to_dict()``), ``extra`` filling what the
    row itself does not say (a prediction's backend: its table's; a sweep cell's precision)."""
    renames = RENAMES.get(kind, {})
    out: dict[str, Any] = {}
    for name, value in record.items():
        column = renames.get(name, name)
        if column in ROW_COLUMNS and column not in out:
            out[column] = _typed(value, ROW_COLUMNS[column])
    for name, value in (extra or {}).items():
        if name in ROW_COLUMNS and out.get(name) in (None, ""):
            out[name] = _typed(value, ROW_COLUMNS[name])
    if kind in (Kind.PROFILE, Kind.LAYER) and not out.get("precision"):
        out["precision"] = "fp32"  # what every backend timed in before precisions were an option
    return out


# -- where a row was measured ----------------------------------------------------------------------
# What makes two timings comparable: the machine and the software, not the load or the moment.
ENV_KEYS = ("python", "platform", "cpu", "cores", "torch", "onnxruntime", "gpu", "env")


def revision_of(tool: str) -> str:
    """'cnnprof 0.1.0 (abc1234+dirty)' -> 'abc1234+dirty'; without a git revision, the version."""
    m = re.search(r"\(([^()]+)\)\s*$", tool or "")
    if m:
        return m.group(1)
    m = re.search(r"cnnprof\s+(\S+)", tool or "")
    return m.group(1) if m else (tool or "unknown")


def machine_label(environment: Mapping[str, Any], host: str) -> str:
    """'host: CPU model, N cores[, GPU]': what the report's panels are named after."""
    cpu = str(environment.get("cpu") or "unknown CPU")
    cores = environment.get("cores")
    gpu = environment.get("gpu")
    text = cpu + (f", {cores} cores" if cores else "") + (f", {gpu}" if gpu else "")
    return f"{host}: {text}" if host else text


def env_key(environment: Mapping[str, Any], host: str) -> str:
    """A short digest of the host and the fingerprint's comparable keys (not threads: a sweep cell
    has its own; not the load or the revision)."""
    data = {k: environment.get(k) for k in ENV_KEYS}
    data["host"] = host
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
