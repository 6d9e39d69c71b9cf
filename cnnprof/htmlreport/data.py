"""What the HTML report shows, read from the results database or from report files (CSV / JSON).

``from_store`` and ``from_files`` give the same ``Dataset``: rows of each kind as plain dicts
carrying ``revision`` and ``machine`` (from the database's columns, or from a file row's
environment fingerprint), the runs (database only) and the machines' roofs for the rooflines.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cnnprof.errors import UsageError
from cnnprof.store.columns import Kind, machine_label, revision_in
from cnnprof.store.schema import ROW_COLUMNS

UNKNOWN_MACHINE = "unknown machine"
WITH_RECORDS = (Kind.CLAIM, Kind.GATE_CHECK, Kind.SCALE)  # kinds whose rows the page reads with their record
UNKNOWN_REVISION = "unknown"


@dataclass
class Dataset:
    source: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in Kind.ALL})
    runs: list[dict[str, Any]] = field(default_factory=list)
    revision_order: dict[str, str] = field(default_factory=dict)  # revision -> first seen (sorts as text)
    roofs: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)  # (machine, run) -> peak, bandwidth
    environments: list[dict[str, Any]] = field(default_factory=list)  # see ``environments``

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.rows.get(kind, [])


# -- where the rows were measured -------------------------------------------------------------------
ENVIRONMENT_FIELDS = ("torch", "onnxruntime", "openvino", "python", "cpu", "cores", "gpu", "platform")


def environments(found: Sequence[tuple[str, str, int, str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """(machine, revision, rows, newest, environment) of each group of profile rows -> one entry per
    machine and set of runtime versions: the versions (torch, onnxruntime, openvino, python), CPU,
    cores, GPU and platform as stored with the rows, the revisions of cnnprof that measured them,
    how many rows and the newest. The same from the database and from report files."""
    entries: dict[tuple, dict[str, Any]] = {}
    for machine, revision, rows, newest, env in found:
        env = env if isinstance(env, dict) else {}
        values = {k: (None if env.get(k) in (None, "") else str(env.get(k))) for k in ENVIRONMENT_FIELDS}
        key = (machine, *values.values())
        entry = entries.setdefault(key, {"machine": machine, **values, "revisions": [], "rows": 0, "newest": ""})
        if revision not in entry["revisions"]:
            entry["revisions"].append(revision)
        entry["rows"] += rows
        entry["newest"] = max(entry["newest"], newest or "")
    out = sorted(entries.values(), key=lambda e: (e["machine"], e["newest"]))
    for e in out:
        e["revisions"] = ", ".join(e["revisions"])
    return out


# -- the database ---------------------------------------------------------------------------------
def from_store(store, *, models: Sequence[str] = ()) -> Dataset:
    from cnnprof.store import query

    data = Dataset(source=str(store.path))
    plain = [k for k in Kind.ALL if k not in WITH_RECORDS]
    rows = query.select(store, query.Filters(kind=plain, model=list(models)))
    # claims, gate verdicts and scale rows: some of what the page shows is in the record only (a
    # claim's statement, a verdict's note, the 2^φ and (α·β²·γ²)^φ of each φ), so each such row
    # carries its record's fields, as a row read from a report file does
    for r in query.select(store, query.Filters(kind=list(WITH_RECORDS)), records=True):
        if r["kind"] != Kind.CLAIM and models and not _matches(r["model"], models):
            continue
        record = r.pop("record")
        record = record if isinstance(record, dict) else {}  # not JSON as stored: the typed columns only
        rows.append({**r, **{k: v for k, v in record.items() if r.get(k) is None}})
    for r in rows:
        data.rows.setdefault(r["kind"], []).append(r)
    data.runs = query.runs(store)
    shown = {(r["machine"], r.get("env_key"), r["revision"]) for r in data.of(Kind.PROFILE)}
    groups = store._guarded(lambda: list(store.conn.execute(  # one record of each group: its environment
        "SELECT machine, env_key, revision, COUNT(*), MAX(recorded_at), record FROM rows WHERE kind = ? "
        "GROUP BY machine, env_key, revision", (Kind.PROFILE,))))
    data.environments = environments([(machine, revision, n, newest, _environment_of(record))
                                      for machine, env_key, revision, n, newest, record in groups
                                      if (machine, env_key, revision) in shown])
    data.revision_order = query.revision_times(store)
    layer_runs = {r["run_id"] for r in data.of(Kind.LAYER)}
    if layer_runs:
        marks = ",".join("?" * len(layer_runs))
        found = store._guarded(lambda: list(store.conn.execute(
            f"SELECT id, machine, context FROM runs WHERE id IN ({marks})", sorted(layer_runs))))
        for run_id, machine, context in found:
            context = query.as_json(context or "{}")
            roofs = context.get("roofs") if isinstance(context, dict) else None
            roofs = roofs if isinstance(roofs, dict) else {}
            peak, bandwidth = roofs.get("peak_gmacs"), roofs.get("bandwidth_gbs")
            if isinstance(peak, (int, float)) and isinstance(bandwidth, (int, float)) and peak and bandwidth:
                data.roofs[(machine, run_id)] = {"peak": float(roofs["peak_gmacs"]),
                                                 "bandwidth": float(roofs["bandwidth_gbs"])}
    return data


def _environment_of(record: str | None) -> dict[str, Any] | None:
    try:
        env = json.loads(record or "{}").get("environment")
    except (ValueError, AttributeError):
        return None
    return env if isinstance(env, dict) else None


def _matches(name: str | None, patterns: Sequence[str]) -> bool:
    import fnmatch

    return name is not None and any(fnmatch.fnmatchcase(name, p) for p in patterns)


# -- report files ---------------------------------------------------------------------------------
def kind_of(record: dict[str, Any]) -> str | None:
    """Which kind of report row a file's record is, from its fields."""
    keys = set(record)
    if {"statement", "verdict", "id"} <= keys:
        return Kind.CLAIM
    if {"op_kind", "intensity"} <= keys:
        return Kind.LAYER
    if {"phi", "compound_pow_phi"} <= keys:
        return Kind.SCALE
    if {"p_value", "baseline_ms", "verdict"} <= keys:
        return Kind.GATE_CHECK
    if {"median_ms", "normalised"} <= keys:
        return Kind.GATE_RECORD
    if "predicted_ms" in keys:
        return Kind.PREDICT
    if "model" in keys and ({"latency_ms_median", "macs", "params"} & keys):
        return Kind.PROFILE
    return None


def _typed(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    sql_type = ROW_COLUMNS.get(name)
    if value == "":
        return None if sql_type in ("INTEGER", "REAL") or name == "environment" else value
    if name == "environment":
        try:
            return json.loads(value)
        except ValueError:
            return None
    try:
        if sql_type == "INTEGER":
            return int(float(value))
        if sql_type == "REAL" or name in ("phi", "macs_ratio", "two_pow_phi", "compound_pow_phi", "median_ms",
                                          "normalised", "latency_share", "share_gap"):
            return float(value)
    except ValueError:
        return None
    return value


def _read_records(path: Path) -> list[dict[str, Any]]:
    from cnnprof.files import read_json

    suffix = path.suffix.lower()
    if not path.exists():
        raise UsageError(f"report file {str(path)!r} does not exist")
    if suffix == ".json":
        data = read_json(path, "report")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise UsageError(f"{str(path)!r} is not a cnnprof JSON report (a list of row objects)")
        return data
    if suffix == ".csv":
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                return [dict(r) for r in csv.DictReader(fh)]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UsageError(f"{str(path)!r} is not a readable CSV report ({exc})") from None
        except OSError as exc:
            raise UsageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    raise UsageError(f"{str(path)!r}: the report reads .csv and .json files (or the results database)")


def from_files(paths: Sequence[str | os.PathLike]) -> Dataset:
    data = Dataset(source=", ".join(str(p) for p in paths))
    for path in map(Path, paths):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = 0.0
        from cnnprof.store import now_iso

        stamp = now_iso(mtime)
        records = _read_records(path)
        for i, raw in enumerate(records):
            rec = {k: _typed(k, v) for k, v in raw.items()}
            kind = kind_of(rec)
            if kind is None:
                raise UsageError(f"{str(path)!r}, row {i + 1}: not a cnnprof report row (fields: "
                                 f"{', '.join(list(rec)[:8])})")
            env = rec.get("environment") if isinstance(rec.get("environment"), dict) else None
            if env:
                rec["revision"] = revision_in(env)
                rec["machine"] = machine_label(env, "")
            rec.setdefault("revision", UNKNOWN_REVISION)
            rec.setdefault("machine", UNKNOWN_MACHINE)
            rec["recorded_at"] = stamp
            rec["command"] = path.name
            rec["kind"] = kind
            rec["run_id"] = 0
            if kind == Kind.CLAIM:
                rec["claim"] = rec.get("id")
            if kind == Kind.SCALE:
                rec["model"] = rec.get("base")
            if kind == Kind.LAYER:
                rec["layer"] = rec.get("name")
                rec["latency_ms_median"] = rec.get("latency_ms")
            if kind == Kind.GATE_RECORD:
                rec["latency_ms_median"] = rec.get("median_ms")
            rec.setdefault("precision", "fp32" if kind in (Kind.PROFILE, Kind.LAYER) else None)
            data.rows.setdefault(kind, []).append(rec)
            data.revision_order.setdefault(rec["revision"], stamp)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in data.of(Kind.PROFILE):
        env = r.get("environment") if isinstance(r.get("environment"), dict) else None
        key = (r["machine"], r["revision"], json.dumps({k: (env or {}).get(k) for k in ENVIRONMENT_FIELDS}))
        groups.setdefault(key, []).append(r)
    data.environments = environments([(machine, revision, len(rows), max(r["recorded_at"] for r in rows),
                                       rows[0].get("environment")) for (machine, revision, _), rows in groups.items()])
    layers = data.of(Kind.LAYER)
    if layers:  # the roofs each layer was judged against: peak = the flat roof, bandwidth = the slope
        roofs = [(r["roof_gmacs"], r["intensity"]) for r in layers if r.get("roof_gmacs") and r.get("intensity")]
        if roofs:
            peak = max(g for g, _ in roofs)
            slopes = [g / i for g, i in roofs if g < peak * 0.999]
            if slopes:
                data.roofs[(layers[0]["machine"], 0)] = {"peak": peak, "bandwidth": max(slopes)}
    return data
