"""The results database: its schema and migrations, what commands store, what a damaged or foreign
database does (one line, exit 2, the file untouched), a killed writer, and two writers at once."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from store_data import environment, fill
from support import one_line

ROOT = Path(__file__).resolve().parents[1]
USER = str(Path(__file__).with_name("user_model.py"))


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# -- schema -----------------------------------------------------------------------------------------
def test_migrations_build_the_declared_columns(tmp_path):
    from cnnprof.store import Store
    from cnnprof.store.schema import APPLICATION_ID, ROW_COLUMNS, ROW_META, SCHEMA_VERSION

    with Store.open(tmp_path / "x.db") as store:
        info = {r[1]: r[2] for r in store.conn.execute("PRAGMA table_info(rows)")}
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {k: v for k, v in info.items() if k not in ROW_META} == ROW_COLUMNS
    assert set(ROW_META) <= set(info)


def test_every_profile_row_field_has_a_column_or_is_kept_in_the_record_on_purpose():
    """A field added to ProfileRow needs a migration (cnnprof/store/schema.py) that adds its column."""
    from cnnprof.rows import ProfileRow
    from cnnprof.store.schema import RECORD_ONLY, ROW_COLUMNS

    missing = [f for f in ProfileRow.field_names() if f not in ROW_COLUMNS and f not in RECORD_ONLY]
    assert not missing, f"ProfileRow fields without a column: {missing}; add a migration to store/schema.py"


def test_a_version_1_database_is_migrated_and_its_records_backfill_the_new_columns(tmp_path):
    from cnnprof.store import Store
    from cnnprof.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0].statements:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (uid, command, argv, tool, revision, host, machine, env_key, environment, "
                 "started_at, status) VALUES ('u', 'bench', '[]', 't', 'r', 'h', 'm', 'e', '{}', 's', 'done')")
    for kind, record in (("profile", {"model": "a", "precision": "fp16", "peak_memory_bytes": 1234,
                                      "peak_activation_bytes": 5678}),
                         ("profile", {"model": "b"}), ("claim", {"id": "c"})):
        conn.execute("INSERT INTO rows (run_id, kind, recorded_at, revision, machine, env_key, model, record) "
                     "VALUES (1, ?, 't', 'r', 'm', 'e', ?, ?)", (kind, record.get("model"), json.dumps(record)))
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        got = [tuple(r) for r in store.conn.execute("SELECT model, precision, peak_memory_bytes, peak_activation_bytes "
                                                    "FROM rows ORDER BY id")]
    assert got == [("a", "fp16", 1234, 5678), ("b", "fp32", None, None), (None, None, None, None)]


# -- what is stored ---------------------------------------------------------------------------------
def test_rows_are_stored_with_typed_columns_and_the_whole_record(tmp_path):
    from cnnprof.rows import ProfileRow
    from cnnprof.store import Store, now_iso, query
    from cnnprof.timing.environment import fingerprint

    env = fingerprint(1)
    rows = [ProfileRow(model="m1", batch=4, params=10, macs=20, backend="torch", threads=1, latency_ms_median=1.5,
                       environment=env).to_dict(),
            ProfileRow(model="m2", error="it broke").to_dict()]
    with Store.open(tmp_path / "x.db") as store:
        run = store.record("bench", ["cnnprof", "bench", "m1", "m2"], "profile", rows, environment=env.to_dict(),
                           started_at=now_iso())
        types = store.conn.execute("SELECT typeof(batch), typeof(latency_ms_median), typeof(macs) FROM rows "
                                   "WHERE model = 'm1'").fetchone()
        got = query.select(store, records=True)
        runs = query.runs(store)
        assert [r["model"] for r in query.select(store, query.Filters(errors="only"))] == ["m2"]
        assert [r["model"] for r in query.select(store, query.Filters(model=["m?"], backend=["torch"]))] == ["m1"]
    assert tuple(types) == ("integer", "real", "integer")
    assert got[0]["record"]["environment"]["cpu"] == env.cpu and got[0]["precision"] == "fp32"
    assert got[0]["revision"] == runs[0]["revision"] and runs[0]["id"] == run
    assert runs[0]["rows"] == 2 and runs[0]["errors"] == 1 and runs[0]["argv"] == "cnnprof bench m1 m2"


def test_commands_record_their_rows_and_no_db_records_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "r.db"
    assert cli("profile", f"{USER}:tiny_net", "--db", str(db), "-f", "json").exit_code == 0
    result = cli("bench", f"{USER}:tiny_net", "--db", str(db), "--min-time", "0", "--min-runs", "3", "--no-save",
                 "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert "recorded 1 row(s)" in result.stderr
    printed = json.loads(result.stdout)[0]
    assert cli("profile", f"{USER}:tiny_net", "--no-db", "--db", str(tmp_path / "none.db")).exit_code == 0
    assert not (tmp_path / "none.db").exists()
    result = cli("db", "rows", "--db", str(db), "-f", "json")
    rows = json.loads(result.stdout)
    assert [(r["command"], r["params"], r["backend"]) for r in rows] == [("profile", 322, None),
                                                                         ("bench", 322, "torch")]
    # what was stored is what bench printed, to the bit
    assert (rows[1]["latency_ms_median"], rows[1]["runs"]) == (printed["latency_ms_median"], printed["runs"])
    assert rows[1]["runs"] >= 3
    runs = json.loads(cli("db", "runs", "--db", str(db), "-f", "json").stdout)
    assert [r["command"] for r in runs] == ["bench", "profile"] and runs[0]["argv"].startswith("cnnprof bench")
    # and the options each command was run with, as parsed
    with sqlite3.connect(db) as con:
        contexts = [json.loads(c) for (c,) in con.execute("SELECT context FROM runs ORDER BY id")]
    assert [c.get("command", "").split()[-1:] for c in contexts] == [["profile"], ["bench"]]
    assert contexts[1]["params"]["min_runs"] == 3 and contexts[1]["params"]["db"] == str(db)


def test_the_default_database_is_reports_cnnprof_db(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CNNPROF_DB", raising=False)
    assert cli("profile", f"{USER}:tiny_net", "-f", "json").exit_code == 0
    assert (tmp_path / "reports" / "cnnprof.db").is_file()


def test_db_rows_formats_and_filters(cli, tmp_path):
    import pandas as pd

    from cnnprof.store.query import ROW_FIELDS

    db = tmp_path / "f.db"
    fill(db, revisions=2, models=["ghostnet_100", "mobilenetv3_small"], kinds=False)
    csv_text = cli("db", "rows", "--db", str(db), "-f", "csv", "--model", "ghost*", "--batch", "1").stdout
    header, *lines = csv_text.strip().splitlines()
    assert header.split(",") == ROW_FIELDS and len(lines) == 4  # 2 revisions x 2 backends
    latest = json.loads(cli("db", "rows", "--db", str(db), "-f", "json", "--latest").stdout)
    assert len(latest) == 8 and {r["revision"] for r in latest} == {"0abc001"}
    out = tmp_path / "rows.parquet"
    assert cli("db", "rows", "--db", str(db), "-f", "parquet", "-o", str(out), "--records").exit_code == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 16 and str(frame["batch"].dtype) == "Int64" and frame["latency_ms_median"].dtype == float
    assert json.loads(frame["record"][0])["model"] == frame["model"][0]
    result = cli("db", "rows", "--db", str(db), "-f", "parquet")
    assert result.exit_code == 2 and one_line(result) and "--output" in result.stderr


def test_the_python_api_returns_dataframes(tmp_path):
    import cnnprof

    db = tmp_path / "f.db"
    fill(db, revisions=2, models=["ghostnet_100"], kinds=False)
    frame = cnnprof.results(db=db, backend="onnxruntime", latest=True)
    assert len(frame) == 2 and set(frame["backend"]) == {"onnxruntime"}
    assert str(frame["batch"].dtype) == "Int64"
    assert list(cnnprof.runs(db=db)["command"]) == ["sweep", "sweep"]


# -- damaged, foreign, read-only, newer ----------------------------------------------------------------
def _real_db(path: Path) -> Path:
    fill(path, revisions=2, models=["ghostnet_100", "mobilenetv3_small"], kinds=False)
    return path


def _corrupt(path):
    data = bytearray(path.read_bytes())
    data[4096:8192] = os.urandom(4096)  # a page of the tables, destroyed
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def _newer(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()


def _foreign(path):
    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()


def _not_sqlite(path):
    path.write_text("model,latency\nghostnet,3.2\n")


def _read_only(path):
    path.chmod(0o444)


@pytest.mark.parametrize("damage, needle", [
    (_corrupt, "corrupt"), (_truncate, "truncated"), (_newer, "newer"), (_foreign, "not a cnnprof results database"),
    (_not_sqlite, "not an SQLite database"), (_read_only, "read-only"),
])
def test_a_bad_database_is_one_line_exit_2_before_measuring_and_left_untouched(cli, tmp_path, monkeypatch, damage,
                                                                               needle):
    monkeypatch.chdir(tmp_path)
    db = _real_db(tmp_path / "cnnprof.db")
    damage(db)
    before = digest(db)
    files = sorted(os.listdir(tmp_path))
    try:
        for args in (["bench", f"{USER}:tiny_net", "--min-time", "0", "--no-save"], ["profile", f"{USER}:tiny_net"],
                     ["claims", "--family", "espnet"]):
            result = cli(*args, "--db", str(db))
            assert result.exit_code == 2 and one_line(result) and needle in result.stderr, (args, result.stderr)
            assert result.stdout == ""  # nothing was measured: no table
        if damage is not _read_only:  # reading a read-only database is fine
            for args in (["db", "rows"], ["db", "runs"], ["report", "-o", str(tmp_path / "r.html")],
                         ["history", "ghostnet_100"]):
                result = cli(*args, "--db", str(db))
                assert result.exit_code == 2 and one_line(result) and needle in result.stderr, (args, result.stderr)
    finally:
        db.chmod(0o644)
    assert digest(db) == before and sorted(os.listdir(tmp_path)) == files


def test_a_read_only_database_can_still_be_read(cli, tmp_path):
    db = _real_db(tmp_path / "cnnprof.db")
    db.chmod(0o444)
    try:
        before = digest(db)
        result = cli("db", "rows", "--db", str(db), "-f", "json", "--latest")
        assert result.exit_code == 0, result.stderr and len(json.loads(result.stdout)) == 4
        assert digest(db) == before
    finally:
        db.chmod(0o644)


def test_a_missing_database_for_reading_and_a_missing_folder_for_writing(cli, tmp_path):
    result = cli("db", "runs", "--db", str(tmp_path / "nope.db"))
    assert result.exit_code == 2 and one_line(result) and "no results database" in result.stderr
    result = cli("profile", f"{USER}:tiny_net", "--db", str(tmp_path / "no" / "such" / "x.db"))
    assert result.exit_code == 2 and one_line(result) and "does not exist" in result.stderr
    result = cli("profile", f"{USER}:tiny_net", "--db", str(tmp_path / "x.db"), "-o", str(tmp_path / "x.db"))
    assert result.exit_code == 2 and one_line(result) and "results database" in result.stderr


# -- kill safety and concurrency ----------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from cnnprof.store import Store, Where, now_iso
    from cnnprof.store.db import transaction
    from store_data import environment

    path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    env = environment("feed123")
    with Store.open(path) as store:
        if mode == "kill":  # a run of 1000 rows, killed half-way through its transaction
            where = Where(env)
            with transaction(store.conn):
                run = store._insert_run("bench", ["x"], where, status="done", started_at=now_iso(), ended_at=None,
                                        context=None)
                store._insert_rows(run, "profile", [{{"model": f"m{{i}}"}} for i in range(500)], where)
                Path(sys.argv[4]).write_text("half")
                time.sleep(60)
        else:  # n runs of 10 rows, as fast as possible
            for i in range(n):
                store.record("bench", [mode, str(i)], "profile",
                             [{{"model": f"{{mode}}-{{i}}-{{j}}", "latency_ms_median": 1.0}} for j in range(10)],
                             environment=env, started_at=now_iso())
""")


def _writer(tmp_path, *args):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, stderr=subprocess.PIPE)


def test_a_writer_killed_mid_transaction_leaves_the_whole_row_or_nothing(tmp_path):
    db = _real_db(tmp_path / "x.db")
    marker = tmp_path / "half"
    proc = _writer(tmp_path, db, "kill", 0, marker)
    deadline = time.time() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM rows WHERE model LIKE 'm%' AND model NOT LIKE 'mobilenet%'"
                        ).fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2  # the two before it, whole
    conn.close()
    from cnnprof.store import Store

    with Store.open(db) as store:  # and it takes new rows
        store.record("bench", ["after"], "profile", [{"model": "after"}], environment=environment("x"),
                     started_at="now")


def test_two_writers_at_once_lose_nothing(tmp_path):
    db = tmp_path / "x.db"
    procs = [_writer(tmp_path, db, name, 60) for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = dict(conn.execute("SELECT substr(model, 1, 1), COUNT(*) FROM rows GROUP BY 1"))
    assert counts == {"a": 600, "b": 600}
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 120
    conn.close()
