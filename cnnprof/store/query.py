"""Reading the results database back: runs, rows (filtered), a model's history.

Everything returns plain records (dicts); ``cnnprof db``, ``cnnprof history``, ``cnnprof report``
and the Python API render them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from cnnprof.errors import UsageError, shorten
from cnnprof.numbers import SQLITE_INT_MAX
from cnnprof.store import Store
from cnnprof.store.columns import Kind
from cnnprof.store.schema import ROW_COLUMNS

RUN_FIELDS = ["id", "command", "status", "started_at", "ended_at", "revision", "machine", "rows", "errors", "argv"]
ROW_META_FIELDS = ["row_id", "run_id", "command", "kind", "recorded_at", "revision", "machine", "env_key", "cell",
                   "passes"]
ROW_FIELDS = ROW_META_FIELDS + list(ROW_COLUMNS)
# what makes two rows the same configuration (the newest of each is the "latest" result)
CONFIG_KEYS = ("kind", "model", "claim", "layer", "phi", "input", "batch", "backend", "device", "threads", "precision",
               "machine")
# gate verdicts that flag a change
FLAGGED = ("regression", "count changed", "warning", "improvement")


def runs(store: Store, *, command: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The runs, newest first, with how many rows each stored and how many of them carry an error."""
    sql = ("SELECT r.id, r.command, r.status, r.started_at, r.ended_at, r.revision, r.machine, r.argv, "
           "COUNT(w.id) AS rows, SUM(CASE WHEN w.error IS NOT NULL AND w.error != '' THEN 1 ELSE 0 END) AS errors "
           "FROM runs r LEFT JOIN rows w ON w.run_id = r.id")
    args: list[Any] = []
    if command:
        sql += " WHERE r.command = ?"
        args.append(command)
    sql += " GROUP BY r.id ORDER BY r.id DESC"
    if limit:  # more than SQLite can count is every run
        sql += f" LIMIT {min(int(limit), SQLITE_INT_MAX)}"
    out = []
    for r in store._guarded(lambda: list(store.conn.execute(sql, args))):
        rec = {k: _text(v) if k in _RUN_TEXT else v for k, v in dict(r).items()}
        argv = as_json(rec["argv"])
        ok = isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        rec["argv"] = " ".join(argv) if ok else rec["argv"]  # anything else: the text as stored
        rec["errors"] = rec["errors"] or 0
        out.append(rec)
    return out


# -- values as stored -------------------------------------------------------------------------------
# A database is a file: a value written by something other than cnnprof (text in a number column,
# bytes, JSON that does not parse) is shown as stored, never a traceback in whatever reads it.
_RUN_TEXT = ("command", "status", "started_at", "ended_at", "revision", "machine", "argv")
_META_TYPES = {"passes": "INTEGER", "command": "TEXT", "kind": "TEXT", "recorded_at": "TEXT", "revision": "TEXT",
               "machine": "TEXT", "env_key": "TEXT", "cell": "TEXT"}


def _text(value: Any) -> Any:
    """A TEXT column's value as text (bytes as SQLite writes a blob literal, x'00ff')."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return f"x'{value[:32].hex()}{'...' if len(value) > 32 else ''}'"
    return str(value)


def as_json(value: Any) -> Any:
    """JSON text parsed, or the value as stored (as text) when it is not JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _text(value)


def as_stored(rec: dict[str, Any]) -> dict[str, Any]:
    """A row read back with every typed column holding its type: text where text belongs, a
    number (or nothing) in a number column. A number column holding something else is emptied and
    the row's error says what it held, so the row is shown (with its other figures) and left out
    of what plots and compares latencies."""
    bad = []
    for name, value in rec.items():
        kind = ROW_COLUMNS.get(name) or _META_TYPES.get(name)
        if kind == "TEXT" or name == "record":
            rec[name] = _text(value)
        elif kind in ("INTEGER", "REAL") and value is not None:
            number = isinstance(value, int) if kind == "INTEGER" else isinstance(value, (int, float))
            if not number or isinstance(value, bool):
                bad.append(f"{name} holds {shorten(repr(_text(value)), 40)}")
                rec[name] = None
    if bad:
        note = "not a number as stored: " + "; ".join(bad)
        rec["error"] = f"{rec['error']}; {note}" if rec.get("error") else note
    return rec


@dataclass
class Filters:
    """What ``db rows`` and the API select on (each list: any of its values; patterns for models)."""

    kind: Sequence[str] = ()
    model: Sequence[str] = ()  # shell patterns: 'ghostnet*'
    family: Sequence[str] = ()
    backend: Sequence[str] = ()
    precision: Sequence[str] = ()
    device: Sequence[str] = ()
    batch: Sequence[int] = ()
    threads: Sequence[int] = ()
    revision: Sequence[str] = ()  # prefixes: 'abc12'
    machine: str | None = None  # a part of the machine label
    command: Sequence[str] = ()
    run: Sequence[int] = ()
    since: str | None = None  # ISO date or time: rows recorded from then on
    errors: str | None = None  # 'only': rows with an error; 'none': rows without
    latest: bool = False  # the newest row of each configuration only
    extra_where: list[str] = field(default_factory=list)


def _in(column: str, values: Sequence[Any], where: list[str], args: list[Any]) -> None:
    if values:
        where.append(f"{column} IN ({', '.join('?' * len(values))})")
        args.extend(values)


def _literal(text: str) -> str:
    """``text`` for a LIKE pattern, taken literally: '%' and '_' are characters, not wildcards."""
    return "".join("\\" + c if c in "%_\\" else c for c in text)


def select(store: Store, filters: Filters | None = None, *, records: bool = False,
           limit: int | None = None, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows (oldest first) as dicts of ``ROW_FIELDS`` (with ``record``, the whole row, when asked;
    ``columns``: only these typed columns, besides where each row comes from)."""
    f = filters or Filters()
    where: list[str] = []
    args: list[Any] = []
    _in("w.kind", list(f.kind), where, args)
    if f.model:
        where.append("(" + " OR ".join("w.model GLOB ?" for _ in f.model) + ")")
        args.extend(f.model)
    _in("w.family", list(f.family), where, args)
    _in("w.backend", list(f.backend), where, args)
    _in("w.precision", list(f.precision), where, args)
    _in("w.device", list(f.device), where, args)
    _in("w.batch", list(f.batch), where, args)
    _in("w.threads", list(f.threads), where, args)
    _in("r.command", list(f.command), where, args)
    _in("w.run_id", list(f.run), where, args)
    if f.revision:
        where.append("(" + " OR ".join("w.revision LIKE ? ESCAPE '\\'" for _ in f.revision) + ")")
        args.extend(f"{_literal(r)}%" for r in f.revision)
    if f.machine:  # a part of the label
        where.append("w.machine LIKE ? ESCAPE '\\'")
        args.append(f"%{_literal(f.machine)}%")
    if f.since:
        where.append("w.recorded_at >= ?")
        args.append(f.since)
    if f.errors == "only":
        where.append("w.error IS NOT NULL AND w.error != ''")
    elif f.errors == "none":
        where.append("(w.error IS NULL OR w.error = '')")
    where.extend(f.extra_where)
    cols = ", ".join(f"w.{c}" for c in ROW_COLUMNS if columns is None or c in columns)
    sql = (f"SELECT w.id AS row_id, w.run_id, r.command, w.kind, w.recorded_at, w.revision, w.machine, w.env_key, "
           f"w.cell, w.passes, {cols}{', w.record' if records else ''} FROM rows w JOIN runs r ON r.id = w.run_id")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY w.id"
    out = [as_stored(dict(r)) for r in store._guarded(lambda: list(store.conn.execute(sql, args)))]
    if records:
        for r in out:
            r["record"] = as_json(r["record"])
    if f.latest:
        out = latest(out)
    if limit is not None:
        out = out[-limit:] if limit else []
    return out


def parse_since(text: str) -> str:
    """``--since``: a UTC date or time (2026-11-28, 2026-11-28T05:00, 2026-11-28 05:00:30) as the
    text stored times compare with; anything else (garbage, a 13th month) is one line."""
    from datetime import datetime, timezone

    raw = str(text).strip()
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise UsageError(f"--since takes a UTC date or time such as 2026-11-28 or 2026-11-28T05:00, "
                         f"got {shorten(raw, 40)!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    if len(raw) == 10:  # a date alone: from its first moment
        return when.strftime("%Y-%m-%d")
    return when.isoformat(timespec="milliseconds")


def latest(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest row (highest id) of each configuration (``CONFIG_KEYS``), in the rows' order."""
    newest: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        newest[tuple(r.get(k) for k in CONFIG_KEYS)] = r
    keep = {id(r) for r in newest.values()}
    return [r for r in rows if id(r) in keep]


def revision_times(store: Store) -> dict[str, str]:
    """When each revision was first seen (its earliest run's start): how revisions are ordered."""
    sql = "SELECT revision, MIN(started_at) FROM runs GROUP BY revision"
    return {r[0]: r[1] for r in store._guarded(lambda: list(store.conn.execute(sql)))}


HISTORY_FIELDS = ["model", "revision", "first_seen", "machine", "source", "backend", "precision", "batch", "threads",
                  "latency_ms_median", "latency_ms_ci_low", "latency_ms_ci_high", "runs", "rows", "gate", "gate_ratio",
                  "note"]


# What a history line reads of a timed row (reading all 60 columns of 10,000 rows takes a while).
HISTORY_COLUMNS = ("model", "input", "backend", "precision", "batch", "threads", "latency_ms_median",
                   "latency_ms_ci_low", "latency_ms_ci_high", "runs", "error", "model_revision")


def history(store: Store, model: str, *, backends: Sequence[str] = (), precision: Sequence[str] = (),
            batch: Sequence[int] = (), threads: Sequence[int] = (), machine: str | None = None) -> list[dict[str, Any]]:
    """A model's latency across revisions and machines (see ``history_lines``)."""
    f = Filters(model=[model], kind=[Kind.PROFILE], backend=backends, precision=precision, batch=batch,
                threads=threads, machine=machine, errors="none", extra_where=["w.latency_ms_median IS NOT NULL"])
    timed = select(store, f, columns=HISTORY_COLUMNS)
    wanted = {"backend": backends, "precision": precision, "batch": batch, "threads": threads}
    gate = [g for g in select(store, Filters(model=[model], kind=[Kind.GATE_CHECK], machine=machine))
            if all(not values or gate_config(g).get(k, values[0]) in values for k, values in wanted.items())]
    return history_lines(timed, gate, revision_times(store))


# What a gate check measured besides the model: a verdict belongs to the history lines of that
# configuration only (the gate times batch 1; a row that does not say a field matches any value of it).
GATE_CONFIG = ("input", "backend", "precision", "batch", "threads")


def gate_config(g: dict[str, Any]) -> dict[str, Any]:
    """The configuration a gate-check row measured, as far as the row says it."""
    config = {k: g.get(k) for k in GATE_CONFIG if g.get(k) not in (None, "")}
    config.setdefault("batch", 1)
    return config


def model_revision(row: dict[str, Any]) -> str:
    """The revision a row's history line is under: its model's own repository's
    (``model_revision``), else cnnprof's (a registered model's code is cnnprof's)."""
    return row.get("model_revision") or row["revision"]


def first_seen_models(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """When each model revision (``model_revision``) was first recorded."""
    out: dict[str, str] = {}
    for r in rows:
        rev, at = r.get("model_revision"), r.get("recorded_at")
        if rev and at and (rev not in out or at < out[rev]):
            out[rev] = at
    return out


def history_lines(timed: Sequence[dict[str, Any]], gate: Sequence[dict[str, Any]],
                  seen: dict[str, str]) -> list[dict[str, Any]]:
    """Latency across revisions and machines: one line per model x revision x machine x backend x
    precision x batch x threads (the newest row of each; ``rows`` says how many there were), in the
    order revisions were first seen (``seen``: revision -> when; a line's revision is its model's
    own, ``model_revision``, where the row has one, else cnnprof's), with the gate's verdict on that
    model at that revision and machine on the lines of the configuration it measured (``gate_config``;
    ``gate``: its most severe, ``gate_ratio``: the normalised ratio it judged). A gate check no line
    matches is a line of its own."""
    lines: dict[tuple, dict[str, Any]] = {}
    seen = {**seen, **first_seen_models([*timed, *gate])}
    for r in timed:
        if r.get("latency_ms_median") is None or r.get("error"):
            continue
        rev = model_revision(r)
        key = (r["model"], rev, r["machine"], r["backend"], r["precision"], r["batch"], r["threads"])
        line = lines.get(key)
        lines[key] = {
            "model": r["model"], "revision": rev, "cnnprof_revision": r["revision"],
            "first_seen": seen.get(rev, r["recorded_at"]),
            "machine": r["machine"], "source": r.get("command"), "backend": r["backend"], "precision": r["precision"],
            "batch": r["batch"], "threads": r["threads"], "latency_ms_median": r["latency_ms_median"],
            "latency_ms_ci_low": r.get("latency_ms_ci_low"), "latency_ms_ci_high": r.get("latency_ms_ci_high"),
            "runs": r.get("runs"), "rows": (line["rows"] if line else 0) + 1, "gate": None, "gate_ratio": None,
            "note": "", "input": r.get("input"),
        }
    verdicts: dict[tuple, dict[str, Any]] = {}

    def severity(verdict: str | None) -> int:
        return FLAGGED.index(verdict) if verdict in FLAGGED else len(FLAGGED)

    for g in gate:
        if g.get("kind", Kind.GATE_CHECK) != Kind.GATE_CHECK or not g.get("verdict"):
            continue
        key = (g["model"], model_revision(g), g["machine"], tuple(sorted(gate_config(g).items())))
        old = verdicts.get(key)
        if old is None or severity(g["verdict"]) < severity(old["verdict"]):
            verdicts[key] = g
    out = list(lines.values())
    marked = set()
    at: dict[tuple, list[tuple]] = {}  # (model, revision, machine) -> its verdicts: one look-up per line
    for key, g in verdicts.items():
        at.setdefault(key[:3], []).append((key, g))
    for line in out:
        where = (line["model"], line["revision"], line["machine"])
        found = [(key, g) for key, g in at.get(where, ()) if all(line.get(k) == v for k, v in key[3])]
        if found:
            key, g = min(found, key=lambda kg: severity(kg[1]["verdict"]))
            marked.update(k for k, _ in found)
            line["gate"] = g["verdict"]
            line["gate_ratio"] = g.get("ratio")
    for key, g in verdicts.items():
        if key not in marked:
            model, rev, mach, config = key
            out.append({k: None for k in HISTORY_FIELDS} | dict(config) | {
                "model": model, "revision": rev, "first_seen": seen.get(rev, g.get("recorded_at")), "machine": mach,
                "source": "gate-check", "gate": g["verdict"], "gate_ratio": g.get("ratio"), "rows": 0,
                "note": "gate check only", "cnnprof_revision": g.get("revision"), "now_ms": g.get("now_ms")})
    out.sort(key=lambda x: (x["model"] or "", x["first_seen"] or "", x["machine"] or "", x["backend"] or "",
                            x["precision"] or "", x["batch"] or 0, x["threads"] or 0))
    return out
