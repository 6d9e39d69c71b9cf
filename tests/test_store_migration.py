"""Migrating a results database written by an older cnnprof: from every earlier schema version,
each column a later version adds is backfilled from the stored records, value for value (every
added column has a distinct value in the fixture, so a backfill that is dropped or reads the wrong
field fails), and the rows whose records lack a field get the documented default or nothing."""

from __future__ import annotations

import pytest
from store_data import added_columns, distinct_values, old_database

from cnnprof.store import Store
from cnnprof.store.schema import MIGRATIONS, SCHEMA_VERSION

# The backfill's default for a row whose record lacks the field: a profile or per-layer row stored
# before precisions existed was timed in fp32 (store/schema.py, version 2), and before weights
# could be loaded had random weights (version 5). Every other added column stays empty for such a row.
DEFAULTS = {"precision": {"profile": "fp32", "layer": "fp32"}, "weights": {"profile": "random", "layer": "random"}}


@pytest.mark.parametrize("version", [m.version for m in MIGRATIONS if m.version < SCHEMA_VERSION])
def test_every_column_a_later_version_adds_is_backfilled_from_the_records(tmp_path, version):
    columns = added_columns(version)
    assert columns, "a version below the newest adds no column? read store/schema.py"
    other = {name: table for name, (table, _) in columns.items() if table != "rows"}
    assert not other, f"extend tests/store_data.old_database for the columns added to other tables: {other}"
    values = distinct_values(columns)
    assert len(set(map(repr, values.values()))) == len(values)
    path = tmp_path / "old.db"
    old_database(path, version, values)
    names = sorted(columns)
    with Store.open(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = [dict(zip(["kind", "model", "batch", *names], r)) for r in store.conn.execute(
            f"SELECT kind, model, batch, {', '.join(names)} FROM rows ORDER BY id")]
    full, bare, claim = rows
    assert full == {"kind": "profile", "model": "full", "batch": 2, **values}
    assert bare == {"kind": "profile", "model": "bare", "batch": 1,
                    **{n: DEFAULTS.get(n, {}).get("profile") for n in names}}
    assert claim == {"kind": "claim", "model": None, "batch": None,
                     **{n: DEFAULTS.get(n, {}).get("claim") for n in names}}


def test_the_fixture_gives_every_added_column_a_value_of_its_type():
    columns = added_columns(1)
    assert {"precision", "parity_sqnr_db", "parity_top1_agreement", "peak_memory_bytes",
            "peak_activation_bytes", "latency_ms_p90_upper", "latency_ms_p99_upper",
            "latency_tails", "weights", "model_revision",
            "top1", "top1_low", "top1_high", "top5", "top5_low", "top5_high", "images",
            "top1_drop", "top1_agreement", "crop_pct", "interpolation", "mean", "std"} <= set(columns)
    values = distinct_values(columns)
    for name, (_, kind) in columns.items():
        assert isinstance(values[name], {"INTEGER": int, "REAL": float, "TEXT": str}[kind]), name
