"""The results database's schema: its versions, and the migrations between them.

The schema is written out here, version by version; nothing derives it from the row types at run
time. A field a row type gains is kept in the row's full record (the ``record`` column, JSON) at
once, and becomes a typed column only through a new migration appended to ``MIGRATIONS``: a
``CREATE``/``ALTER`` and a backfill from the records already stored. ``tests/test_store.py``
fails when a ``ProfileRow`` field has neither a column nor a place in ``RECORD_ONLY``, so a new
field cannot be forgotten.

Tables:

* ``runs``: one command that recorded rows (``bench``, ``sweep``, ...): its command line, the
  cnnprof revision, the host and environment fingerprint, when it started and ended, and how
  (``running`` while a sweep goes on, then ``done``, ``interrupted`` or ``failed``);
* ``rows``: the report rows of every run, one per row the command printed (a sweep: one per cell,
  its passes pooled), with typed columns for what people filter and plot on, and the whole row as
  JSON in ``record``;
* ``passes``: each pass of each sweep cell as a worker returned it (its samples, its overhead),
  what a sweep's pooled rows are computed from and what ``--resume`` reads.

The version is SQLite's ``user_version``; ``application_id`` marks the file as cnnprof's.
"""

from __future__ import annotations

from dataclasses import dataclass

APPLICATION_ID = 0x636E6E70  # "cnnp"

# The typed columns of ``rows`` at the current version, with their SQLite types. Which record
# field fills which column is ``store.columns``' business.
RUN_COLUMNS = ("id", "uid", "command", "argv", "tool", "revision", "host", "machine", "env_key", "environment",
               "started_at", "ended_at", "status", "context")

PASS_COLUMNS = ("id", "run_id", "cell", "pass", "revision", "env_key", "ok", "seconds", "overhead", "samples", "result",
                "error", "recorded_at")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V1 = (
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,          -- random; keeps runs apart when databases are merged
        command TEXT NOT NULL,             -- bench, compare, profile, claims, gate-record, sweep, ...
        argv TEXT NOT NULL,                -- the command line, JSON list
        tool TEXT NOT NULL,                -- 'cnnprof 0.1.0 (abc1234)'
        revision TEXT NOT NULL,            -- the git revision ('abc1234', 'abc1234+dirty'), else the version
        host TEXT NOT NULL,
        machine TEXT NOT NULL,             -- host, CPU, cores, GPU: a label people read
        env_key TEXT NOT NULL,             -- digest of what makes timings comparable (machine, versions, env vars)
        environment TEXT NOT NULL,         -- the fingerprint, JSON
        started_at TEXT NOT NULL,          -- ISO 8601, UTC
        ended_at TEXT,
        status TEXT NOT NULL,              -- running, done, interrupted, failed
        context TEXT                       -- JSON: a sweep's matrix, a gate's baseline, the machine's roofs
    )""",
    """CREATE TABLE rows (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,                -- profile, layer, claim, gate-record, gate-check, predict, scale
        recorded_at TEXT NOT NULL,
        revision TEXT NOT NULL,            -- of the process that measured the row
        machine TEXT NOT NULL,
        env_key TEXT NOT NULL,
        cell TEXT,                         -- a sweep cell's key
        passes INTEGER,                    -- a sweep cell: how many passes the row pools
        model TEXT, family TEXT, input TEXT, batch INTEGER,
        backend TEXT, device TEXT, threads INTEGER,
        params INTEGER, macs INTEGER, macs_fvcore INTEGER, activations INTEGER, bytes_moved INTEGER,
        counts_status TEXT,
        latency_ms_median REAL, latency_ms_mean REAL, latency_ms_std REAL, latency_ms_p10 REAL,
        latency_ms_p90 REAL, latency_ms_p99 REAL, latency_ms_iqr REAL, latency_ms_min REAL,
        latency_ms_ci_low REAL, latency_ms_ci_high REAL, runs INTEGER,
        throughput_per_s REAL, gmacs_per_s REAL, setup_s REAL, export_s REAL, first_run_ms REAL,
        parity_max_abs REAL,
        claim TEXT, verdict TEXT, expected REAL, measured REAL, unit TEXT,
        ratio REAL, p_value REAL, baseline_ms REAL, now_ms REAL, normalised REAL,
        predicted_ms REAL, prediction_error REAL,
        phi REAL, resolution INTEGER,
        layer TEXT, op_kind TEXT, intensity REAL, roof_gmacs REAL,
        warnings TEXT, error TEXT,
        record TEXT NOT NULL               -- the whole row, JSON (every field, whatever the columns)
    )""",
    """CREATE TABLE passes (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        cell TEXT NOT NULL,
        pass INTEGER NOT NULL,
        revision TEXT NOT NULL,
        env_key TEXT NOT NULL,
        ok INTEGER NOT NULL,               -- 1: measured; 0: the cell's error (crash, timeout, out of memory)
        seconds REAL,                      -- the worker's wall time, start to exit
        overhead TEXT,                     -- JSON: start, import, build, calibrate seconds
        samples TEXT,                      -- JSON list of milliseconds
        result TEXT NOT NULL,              -- JSON: the row this pass alone gave
        error TEXT,
        recorded_at TEXT NOT NULL,
        UNIQUE (run_id, cell, pass)
    )""",
    "CREATE INDEX rows_run ON rows (run_id)",
    "CREATE INDEX rows_model ON rows (model, kind)",
    "CREATE INDEX rows_cell ON rows (cell, revision, env_key)",
    "CREATE INDEX passes_cell ON passes (cell, revision, env_key)",
    "CREATE INDEX runs_revision ON runs (revision)",
)

# The report-row fields of DESIGN.md's table that the timing of precisions brings: typed columns,
# filled from the records already stored (a row measured before precisions existed was fp32).
_V2 = (
    "ALTER TABLE rows ADD COLUMN precision TEXT",
    "ALTER TABLE rows ADD COLUMN parity_sqnr_db REAL",
    "ALTER TABLE rows ADD COLUMN parity_top1_agreement REAL",
    "ALTER TABLE rows ADD COLUMN peak_memory_bytes INTEGER",
    """UPDATE rows SET
        precision = COALESCE(json_extract(record, '$.precision'),
                             CASE WHEN kind IN ('profile', 'layer') THEN 'fp32' END),
        parity_sqnr_db = json_extract(record, '$.parity_sqnr_db'),
        parity_top1_agreement = json_extract(record, '$.parity_top1_agreement'),
        peak_memory_bytes = json_extract(record, '$.peak_memory_bytes')""",
    "CREATE INDEX rows_precision ON rows (model, backend, precision)",
)

# profile's peak live activation memory (counting.peak_activations), filled from the stored records.
_V3 = (
    "ALTER TABLE rows ADD COLUMN peak_activation_bytes INTEGER",
    "UPDATE rows SET peak_activation_bytes = json_extract(record, '$.peak_activation_bytes')",
)

# the 95% upper bounds of the tail percentiles (timing.stats.tail_upper), filled from the stored
# records (a row stored before them has none: its bound stays empty, as for too few calls).
_V4 = (
    "ALTER TABLE rows ADD COLUMN latency_ms_p90_upper REAL",
    "ALTER TABLE rows ADD COLUMN latency_ms_p99_upper REAL",
    "ALTER TABLE rows ADD COLUMN latency_tails TEXT",
    """UPDATE rows SET
        latency_ms_p90_upper = json_extract(record, '$.latency_ms_p90_upper'),
        latency_ms_p99_upper = json_extract(record, '$.latency_ms_p99_upper'),
        latency_tails = json_extract(record, '$.latency_tails')""",
)

# where a row's network got its weights (models/weights.py): "random", "<file>@sha256:<12 hex>" or
# "package:<distribution>==<version>"; a row stored before weights could be loaded had random
# weights (a row that measured no network, a claim or a prediction, keeps its record's value).
_V5 = (
    "ALTER TABLE rows ADD COLUMN weights TEXT",
    """UPDATE rows SET weights = COALESCE(json_extract(record, '$.weights'),
                                        CASE WHEN kind IN ('profile', 'layer') THEN 'random' END)""",
)

# the revision of the repository the measured model lives in (a user's file.py:factory or .onnx in a
# git work tree, or --revision): what history and change points run over. A row stored before has
# none (NULL): its model is read at cnnprof's revision.
_V6 = (
    "ALTER TABLE rows ADD COLUMN model_revision TEXT",
    "UPDATE rows SET model_revision = NULLIF(json_extract(record, '$.model_revision'), '')",
)

# eval's accuracy on the user's images (eval.EvalRow) and the preprocessing it was measured with,
# filled from the stored records (rows stored before eval existed have none).
_EVAL_COLUMNS = (("top1", "REAL"), ("top1_low", "REAL"), ("top1_high", "REAL"), ("top5", "REAL"),
                 ("top5_low", "REAL"), ("top5_high", "REAL"), ("images", "INTEGER"), ("top1_drop", "REAL"),
                 ("top1_agreement", "REAL"), ("crop_pct", "REAL"), ("interpolation", "TEXT"), ("mean", "TEXT"),
                 ("std", "TEXT"))
_V7 = (
    *(f"ALTER TABLE rows ADD COLUMN {name} {sql}" for name, sql in _EVAL_COLUMNS),
    "UPDATE rows SET " + ", ".join(f"{name} = json_extract(record, '$.{name}')" for name, _ in _EVAL_COLUMNS),
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, rows and sweep passes", _V1),
    Migration(2, "precision, parity (SQNR, top-1 agreement) and peak memory columns", _V2),
    Migration(3, "peak live activation memory column", _V3),
    Migration(4, "upper confidence bounds of p90 and p99, and why one is missing", _V4),
    Migration(5, "where a row's weights came from (random, a file and its digest, a package)", _V5),
    Migration(6, "the model's own repository revision", _V6),
    Migration(7, "accuracy on the user's images (eval) and its preprocessing", _V7),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

# The typed columns of ``rows`` and their SQLite types, at SCHEMA_VERSION (tests check this
# against the database the migrations build).
ROW_COLUMNS: dict[str, str] = {
    "model": "TEXT", "family": "TEXT", "input": "TEXT", "batch": "INTEGER", "backend": "TEXT", "device": "TEXT",
    "threads": "INTEGER", "params": "INTEGER", "macs": "INTEGER", "macs_fvcore": "INTEGER",
    "activations": "INTEGER", "bytes_moved": "INTEGER", "counts_status": "TEXT",
    "latency_ms_median": "REAL", "latency_ms_mean": "REAL", "latency_ms_std": "REAL", "latency_ms_p10": "REAL",
    "latency_ms_p90": "REAL", "latency_ms_p99": "REAL", "latency_ms_iqr": "REAL", "latency_ms_min": "REAL",
    "latency_ms_ci_low": "REAL", "latency_ms_ci_high": "REAL", "runs": "INTEGER", "throughput_per_s": "REAL",
    "gmacs_per_s": "REAL", "setup_s": "REAL", "export_s": "REAL", "first_run_ms": "REAL", "parity_max_abs": "REAL",
    "claim": "TEXT", "verdict": "TEXT", "expected": "REAL", "measured": "REAL", "unit": "TEXT",
    "ratio": "REAL", "p_value": "REAL", "baseline_ms": "REAL", "now_ms": "REAL", "normalised": "REAL",
    "predicted_ms": "REAL", "prediction_error": "REAL", "phi": "REAL", "resolution": "INTEGER",
    "layer": "TEXT", "op_kind": "TEXT", "intensity": "REAL", "roof_gmacs": "REAL",
    "warnings": "TEXT", "error": "TEXT",
    "precision": "TEXT", "parity_sqnr_db": "REAL", "parity_top1_agreement": "REAL", "peak_memory_bytes": "INTEGER",
    "peak_activation_bytes": "INTEGER", "latency_ms_p90_upper": "REAL", "latency_ms_p99_upper": "REAL",
    "latency_tails": "TEXT", "weights": "TEXT", "model_revision": "TEXT", **dict(_EVAL_COLUMNS),
}
# What every row has besides them (set by the store, not read from the row).
ROW_META = ("id", "run_id", "kind", "recorded_at", "revision", "machine", "env_key", "cell", "passes", "record")

# The columns each table must have at SCHEMA_VERSION (checked when a database is opened).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": RUN_COLUMNS, "rows": (*ROW_META, *ROW_COLUMNS), "passes": PASS_COLUMNS}

# ProfileRow fields deliberately kept in the record only: the environment fingerprint (the run
# and the row's machine / env_key columns say where it was measured) and the list of operators
# that were not counted (read, not filtered on).
RECORD_ONLY = {"environment", "uncounted_ops"}
