"""The results database: every run's rows, kept (SQLite by default, ``reports/cnnprof.db``).

``Store.open(path, write=True)`` checks and opens it (``db.connect``: a corrupt, truncated,
read-only or newer database is one line and exit 2, the file untouched); ``record`` stores one
command's run and its rows in one transaction; a sweep opens a run (``start_run``), stores each
cell as it is measured (``add_pass``: the pass and the cell's pooled row, in one transaction) and
closes it (``finish_run``). ``query`` reads runs, rows and histories back.

Knows only ``rows`` (plain records) and its own schema: the callers pass the environment
fingerprint and the command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from cnnprof.files import DEFAULT_DB
from cnnprof.rows import finite
from cnnprof.store.columns import Kind, env_key, machine_label, revision_in, row_columns
from cnnprof.store.db import DatabaseError, connect, transaction
from cnnprof.store.identity import Identity, abandon
from cnnprof.store.schema import ROW_COLUMNS, SCHEMA_VERSION

__all__ = ["DEFAULT_DB", "DatabaseError", "Kind", "SCHEMA_VERSION", "Store", "now_iso"]


def now_iso(t: float | None = None) -> str:
    """UTC, to the millisecond: '2026-11-28T05:19:12.345Z' (sorts as text)."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _json(value: Any) -> str:
    return json.dumps(finite(value), allow_nan=False, default=str)


class Where:
    """Where rows were measured: revision, host, machine label and environment key of a fingerprint."""

    def __init__(self, environment: Mapping[str, Any], host: str | None = None):
        self.environment = dict(environment)
        self.host = host or socket.gethostname()
        self.revision = revision_in(self.environment)
        self.machine = machine_label(self.environment, self.host)
        self.env_key = env_key(self.environment, self.host)


class _Replaced(Exception):
    """The database's file changed (raised under the write lock; ``Store._check`` says how)."""


class Store:
    """An open results database."""

    def __init__(self, conn: sqlite3.Connection, path: Path, identity: Identity | None = None):
        self.conn = conn
        self.path = path
        self.identity = identity  # of a database opened for writing: checked before each write
        self.closed = False

    @classmethod
    def open(cls, path: str | os.PathLike = DEFAULT_DB, *, write: bool = True) -> "Store":
        p = Path(path)
        if write and p == DEFAULT_DB and not p.parent.exists():
            from cnnprof.files import ensure_folder

            ensure_folder(p.parent)
        conn = connect(p, write=write)
        try:
            identity = Identity.of(p) if write else None
        except OSError:
            conn.close()
            raise DatabaseError(f"results database {str(p)!r} went away as it was opened") from None
        return cls(conn, p, identity)

    def close(self) -> None:
        """Close; a database whose file changed meanwhile is abandoned (``_check``), exit 2."""
        if self.closed:
            return
        self._check()
        self.closed = True
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # an error is on its way already: closed (or abandoned) without a second one
            with contextlib.suppress(DatabaseError):
                self.close()

    def _check(self) -> None:
        """Stop (exit 2) when the path no longer names the file this store opened, never touching
        the file now there (``store.identity``)."""
        what = self.identity.changed() if self.identity is not None and not self.closed else None
        if what:
            self._abandon(what)

    def _abandon(self, what: str) -> None:
        self.closed = True
        abandon(self.conn)
        raise DatabaseError(f"results database {str(self.path)!r} {what} while this command ran: stopped, and "
                            "nothing was written to what is there now (rows stored before went to the file "
                            "that was there)")

    @contextlib.contextmanager
    def _transaction(self):
        """A write transaction (``db.transaction``) on the file this store opened, checked under the
        write lock before anything is written."""
        if self.closed:
            raise DatabaseError(f"results database {str(self.path)!r} is closed")
        try:
            with transaction(self.conn):
                what = self.identity.changed() if self.identity is not None else None
                if what:
                    raise _Replaced(what)
                yield self.conn
        except _Replaced as exc:
            self._abandon(str(exc))

    def _guarded(self, fn, *args, **kwargs):
        from cnnprof.store.db import _sqlite_error

        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _sqlite_error(self.path, exc) from None

    # -- writing ----------------------------------------------------------------------------------
    def _insert_run(self, command: str, argv: Sequence[str], where: Where, *, status: str, started_at: str,
                    ended_at: str | None, context: Mapping[str, Any] | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (uid, command, argv, tool, revision, host, machine, env_key, environment, started_at, "
            "ended_at, status, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, command, _json(list(argv)), str(where.environment.get("tool", "")), where.revision,
             where.host, where.machine, where.env_key, _json(where.environment), started_at, ended_at, status,
             None if context is None else _json(context)))
        return int(cur.lastrowid)

    def _insert_rows(self, run_id: int, kind: str, records: Iterable[Mapping[str, Any]], where: Where, *,
                     extra: Mapping[str, Any] | None = None, cell: str | None = None,
                     passes: int | None = None, own_environment: bool = True) -> list[int]:
        """``own_environment``: a row that carries its environment fingerprint is filed under the
        revision and machine it names (else, and for a sweep's rows, under ``where``)."""
        ids = []
        for record in records:
            record = dict(record)
            at = where
            env = record.get("environment")
            if own_environment and isinstance(env, Mapping) and env:
                at = Where(env, record.get("host") or where.host)
            cols = row_columns(kind, record, extra)
            names = ["run_id", "kind", "recorded_at", "revision", "machine", "env_key", "cell", "passes", *cols,
                     "record"]
            values = [run_id, kind, now_iso(), at.revision, at.machine, at.env_key, cell, passes, *cols.values(),
                      _json(record)]
            cur = self.conn.execute(f"INSERT INTO rows ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                                    values)
            ids.append(int(cur.lastrowid))
        return ids

    def record(self, command: str, argv: Sequence[str], kind: str, records: Iterable[Mapping[str, Any]], *,
               environment: Mapping[str, Any], started_at: str, status: str = "done",
               context: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> int:
        """One command's run and its rows, in one transaction: all of it is stored, or nothing."""
        where = Where(environment)
        records = list(records)

        def write() -> int:
            with self._transaction():
                run_id = self._insert_run(command, argv, where, status=status, started_at=started_at,
                                          ended_at=now_iso(), context=context)
                self._insert_rows(run_id, kind, records, where, extra=extra)
            return run_id

        return self._guarded(write)

    def start_run(self, command: str, argv: Sequence[str], *, environment: Mapping[str, Any],
                  context: Mapping[str, Any] | None = None) -> int:
        """A run that stores its rows as they come (a sweep): status ``running`` until finished."""
        where = Where(environment)

        def write() -> int:
            with self._transaction():
                return self._insert_run(command, argv, where, status="running", started_at=now_iso(), ended_at=None,
                                        context=context)

        return self._guarded(write)

    def finish_run(self, run_id: int, status: str) -> None:
        def write() -> None:
            with self._transaction():
                self.conn.execute("UPDATE runs SET ended_at = ?, status = ? WHERE id = ?", (now_iso(), status, run_id))

        self._guarded(write)

    def reopen_run(self, run_id: int) -> None:
        """A sweep resumed in its earlier run: running again, owned by this process. Refused (exit 2)
        while the process that runs it is alive (``store.owner``): checked and taken under the
        write lock, so two resumes cannot both take it."""
        from cnnprof.errors import UsageError
        from cnnprof.store.owner import alive, this_process

        def write() -> None:
            with self._transaction():
                found = self.conn.execute("SELECT status, context FROM runs WHERE id = ?", (run_id,)).fetchone()
                try:
                    context = json.loads(found["context"] or "{}") if found else {}
                except ValueError:
                    context = {}
                context = context if isinstance(context, dict) else {}
                owner = context.get("owner")
                if found and found["status"] == "running" and alive(owner):
                    raise UsageError(f"sweep run {run_id} is still running (process {owner['pid']} on this host): "
                                     "wait for it to end, or stop it, before --resume")
                context["owner"] = this_process()
                self.conn.execute("UPDATE runs SET ended_at = NULL, status = 'running', context = ? WHERE id = ?",
                                  (_json(context), run_id))

        self._guarded(write)

    def add_pass(self, run_id: int, cell: str, pass_index: int, *, kind: str, environment: Mapping[str, Any],
                 host: str | None, ok: bool, seconds: float | None, overhead: Mapping[str, Any] | None,
                 samples: Sequence[float] | None, result: Mapping[str, Any], error: str | None,
                 pooled: Mapping[str, Any] | None, passes: int, extra: Mapping[str, Any] | None = None,
                 own_environment: bool = False) -> bool:
        """Store one pass of a sweep cell and replace the cell's row in this run with ``pooled`` (the
        row of all its passes so far), in one transaction. A pass already measured (the same run,
        cell and pass) is left as it was: returns False; one stored as failed is replaced.
        ``own_environment``: the row is filed under the environment and host it carries (a cluster
        node's), not the sweep's."""
        where = Where(environment, host)

        def write() -> bool:
            with self._transaction():
                # a pass stored as failed may be measured again (resume); one that was measured stays
                cur = self.conn.execute(
                    "INSERT INTO passes (run_id, cell, pass, revision, env_key, ok, seconds, overhead, "
                    "samples, result, error, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (run_id, cell, pass) DO UPDATE SET ok = excluded.ok, seconds = excluded.seconds, "
                    "overhead = excluded.overhead, samples = excluded.samples, result = excluded.result, "
                    "error = excluded.error, recorded_at = excluded.recorded_at WHERE passes.ok = 0",
                    (run_id, cell, pass_index, where.revision, where.env_key, int(ok), seconds,
                     None if overhead is None else _json(overhead), None if samples is None else _json(list(samples)),
                     _json(result), error, now_iso()))
                if cur.rowcount == 0:
                    return False
                if pooled is not None:
                    self.conn.execute("DELETE FROM rows WHERE run_id = ? AND cell = ?", (run_id, cell))
                    # filed under the sweep's revision and environment (its workers run its code), or a
                    # cluster node's (checked to run the same code)
                    self._insert_rows(run_id, kind, [pooled], where, extra=extra, cell=cell, passes=passes,
                                      own_environment=own_environment)
                return True

        return self._guarded(write)

    # -- reading ----------------------------------------------------------------------------------
    def passes_of(self, run_id: int) -> list[dict[str, Any]]:
        return self._guarded(lambda: [dict(r) for r in self.conn.execute(
            "SELECT * FROM passes WHERE run_id = ? ORDER BY id", (run_id,))])

    def columns(self) -> list[str]:
        return [r[1] for r in self.conn.execute("PRAGMA table_info(rows)")]


ROW_COLUMN_NAMES = tuple(ROW_COLUMNS)
