"""Opening the results database: the one place that connects to it.

``connect(path, write=...)`` checks the file before SQLite changes anything in it: a folder, a
file that is not an SQLite database, a truncated one, one that fails SQLite's ``quick_check``,
one written by a newer cnnprof (a higher schema version), and, for writing, a read-only one are
each one line and exit 2 (``DatabaseError``), with the file left exactly as it was. Only then is
it switched to write-ahead logging (``journal_mode=WAL``: readers never block the writer, and a
process killed in the middle of a transaction leaves the database as it was before it) and
brought up to the current schema. Every connection waits up to ``BUSY_TIMEOUT_S`` for another
process's transaction, so two cnnprof processes writing at once take turns instead of failing.

Knows nothing of the rest of the project but the error type and the schema.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Iterator

from cnnprof.errors import UsageError
from cnnprof.store.schema import APPLICATION_ID, MIGRATIONS, REQUIRED_COLUMNS, SCHEMA_VERSION

HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 60.0


class DatabaseError(UsageError):
    """The results database cannot be used as it is: one line, exit 2, the file untouched."""


def _where(path: Path) -> str:
    return repr(str(path))


def _not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (a folder, a FIFO, a device, a socket), told
    from ``stat`` alone: opening a FIFO would wait for a writer for ever."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_file(path: Path) -> None:
    """What can be told from the file alone, before SQLite opens it."""
    what = _not_a_file(path)
    if what:
        raise DatabaseError(f"results database {_where(path)} is {what}, not a file; give another --db")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise DatabaseError(f"cannot read results database {_where(path)}: {exc.strerror or exc}") from None
    if size == 0:
        raise DatabaseError(f"results database {_where(path)} is an empty file, not a cnnprof database "
                            "(remove it, or give another --db)")
    if len(head) < 100 or not head.startswith(HEADER):
        raise DatabaseError(f"{_where(path)} is not an SQLite database (another kind of file, or corrupt); "
                            "give another --db, or --no-db")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    pages_valid = head[24:28] == head[92:96]  # the in-header size is valid only then (SQLite file format 1.3)
    if page_size < 512 or page_size & (page_size - 1):
        raise DatabaseError(f"results database {_where(path)} is corrupt (page size {page_size} in its header)")
    if size % page_size or (pages_valid and size < pages * page_size):
        raise DatabaseError(f"results database {_where(path)} is truncated ({size} bytes; its header says "
                            f"{pages * page_size if pages_valid else 'whole pages of'} {page_size}-byte pages)")


def _read_only_reason(path: Path) -> str | None:
    """Why ``path`` (an existing file) must not be written, or None. A file with no write
    permission bit is read-only even for root, who could write it: its owner made it so."""
    from cnnprof.files import read_only

    try:
        path.stat()
    except OSError as exc:
        return exc.strerror or str(exc)
    folder = path.parent if str(path.parent) else Path(".")
    if _read_only_fs(folder):
        return "the file system is read-only"
    if read_only(path):
        return "the file is read-only"
    if not os.access(folder, os.W_OK):  # SQLite writes its -wal and -shm files beside the database
        return f"folder {str(folder)!r} is read-only (SQLite keeps its log beside the database)"
    return None


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


FREE_BYTES_FULL = 1 << 20  # less free space than this on the database's file system: "full"


def storage_problem(folder: Path) -> str | None:
    """What stops files in ``folder`` from being written or growing, in words: a read-only file
    system, a full one, a file-size limit on this process (``ulimit -f``); or None."""
    import resource

    if _read_only_fs(folder):
        return "the file system is read-only"
    try:
        vfs = os.statvfs(folder)
    except OSError:
        vfs = None
    if vfs is not None and vfs.f_blocks and vfs.f_bavail * vfs.f_frsize < FREE_BYTES_FULL:
        return "the disk is full (no space left on the device)"
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft != resource.RLIM_INFINITY:
        return f"files may not grow past this process's file-size limit (ulimit -f: {soft} bytes)"
    return None


# SQLite's primary result codes that a file system, not the file's contents, can cause
_STORAGE_CODES = {8: "SQLITE_READONLY", 10: "SQLITE_IOERR", 13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN"}


def _sqlite_error(path: Path, exc: sqlite3.Error) -> DatabaseError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return DatabaseError(f"results database {_where(path)} stayed locked by another process for "
                             f"{BUSY_TIMEOUT_S:.0f} s: {text}")
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _STORAGE_CODES:
        problem = storage_problem(path.parent if str(path.parent) else Path("."))
        if problem:
            return DatabaseError(f"cannot use results database {_where(path)}: {problem} ({text}); "
                                 "give another --db, or --no-db")
        if code & 0xFF == 13:
            return DatabaseError(f"cannot write results database {_where(path)}: the disk is full ({text})")
    if "readonly" in text or "read-only" in text:
        return DatabaseError(f"cannot write results database {_where(path)}: {text}")
    return DatabaseError(f"results database {_where(path)} is unusable ({text}): corrupt, or not a cnnprof database; "
                         "give another --db, or --no-db")


def _open(path: Path, mode: str, *, immutable: bool = False) -> sqlite3.Connection:
    """``immutable``: read the file as it is, with no lock and no -wal / -shm file beside it (for
    the checks, which must leave a database they refuse exactly as it was)."""
    from urllib.parse import quote

    uri = f"file:{quote(path.resolve().as_posix())}?mode={mode}" + ("&immutable=1" if immutable else "")
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def _inspect(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of an existing database, after checking it is cnnprof's, not newer and
    not corrupt (reads only)."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app_id != APPLICATION_ID and (tables or version):
        raise DatabaseError(f"{_where(path)} is an SQLite database but not a cnnprof results database; "
                            "give another --db")
    if version > SCHEMA_VERSION:
        raise DatabaseError(f"results database {_where(path)} has schema version {version}, written by a newer "
                            f"cnnprof; this one reads versions up to {SCHEMA_VERSION}: upgrade cnnprof, or give "
                            "another --db")
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise DatabaseError(f"results database {_where(path)} is corrupt (SQLite's quick_check: {check[:200]}); "
                            "give another --db, or --no-db")
    if version == SCHEMA_VERSION:
        check_schema(conn, path)
    return version


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Every table and column the current schema has is there (a damaged or hand-edited database
    is refused when opened, before a command measures anything it could not store)."""
    for table, required in REQUIRED_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            raise DatabaseError(f"results database {_where(path)} has no {table!r} table (damaged, or changed by "
                                "hand); give another --db, or --no-db")
        missing = [c for c in required if c not in have]
        if missing:
            raise DatabaseError(f"results database {_where(path)}: its {table!r} table lacks the column(s) "
                                f"{', '.join(missing[:5])} (damaged, or changed by hand); give another --db, "
                                "or --no-db")


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database up to ``SCHEMA_VERSION``, one migration per transaction (another process
    may be doing the same: the version is read again under the write lock)."""
    for m in MIGRATIONS:
        with transaction(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] >= m.version:
                continue
            for statement in m.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {m.version}")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: everything in it is stored, or nothing (an exception, or the process
    being killed, rolls it back). ``BEGIN IMMEDIATE`` takes the write lock at once, waiting for
    another writer up to the busy timeout, so it never fails half-way on a lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def connect(path: str | os.PathLike, *, write: bool, create: bool = True) -> sqlite3.Connection:
    """An open connection to the results database at ``path``, checked (see the module docstring).

    ``write``: for a command that records rows (a missing file is created with ``create``, its
    folder too when missing but for the one it is in). Without it, the database must exist; it
    is only read (brought up to the current schema first if it is older and writable)."""
    p = Path(path)
    if not p.exists():
        if not write or not create:
            raise DatabaseError(f"no results database at {_where(p)} (commands such as bench, compare and sweep "
                                "create it; or give --db PATH)")
        folder = p.parent if str(p.parent) else Path(".")
        if not folder.is_dir():
            raise DatabaseError(f"cannot create results database {_where(p)}: folder {str(folder)!r} "
                                f"{'is not a folder' if folder.exists() else 'does not exist'}")
        if _read_only_fs(folder) or not os.access(folder, os.W_OK):
            what = "is on a read-only file system" if _read_only_fs(folder) else "is read-only"
            raise DatabaseError(f"cannot create results database {_where(p)}: folder {str(folder)!r} {what}")
        _create(p, folder)
    _check_file(p)
    if write:
        reason = _read_only_reason(p)
        if reason:
            raise DatabaseError(f"cannot write results database {_where(p)}: {reason} (give another --db, or --no-db)")
    try:
        conn = _open(p, "ro", immutable=True)
        try:
            version = _inspect(conn, p)
        except BaseException:
            conn.close()
            raise
        conn.close()
        if not write and version == SCHEMA_VERSION:
            if not _read_only_reason(p):  # read through a writable connection that writes nothing: the last
                conn = _open(p, "rw")  # connection to close removes the -wal and -shm files, a read-only one can't
                conn.execute("PRAGMA query_only = ON")
                return conn
            # on a read-only file system: read as it is (no -shm file)
            return _open(p, "ro", immutable=_read_only_fs(p.parent if str(p.parent) else Path(".")))
        if not write and _read_only_reason(p):
            raise DatabaseError(f"results database {_where(p)} has the older schema version {version} and is "
                                f"read-only, so it cannot be brought to version {SCHEMA_VERSION}")
        conn = _open(p, "rw")
        _setup(conn, p)
        if not write:
            conn.execute("PRAGMA query_only = ON")
        return conn
    except sqlite3.Error as exc:
        raise _sqlite_error(p, exc) from None


def _create(path: Path, folder: Path) -> None:
    """A new database with the current schema, made beside ``path`` and linked to its name in one
    step, so that another process never sees it half made (an empty file); if another process
    created it first, its file is kept."""
    import tempfile

    from cnnprof.files import umask

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".new", dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            migrate(conn)
        finally:
            conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    except sqlite3.Error as exc:
        raise _sqlite_error(path, exc) from None
    except OSError as exc:
        from cnnprof.files import describe

        raise DatabaseError(f"cannot create results database {_where(path)}: {describe(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _setup(conn: sqlite3.Connection, path: Path) -> None:
    """Write-ahead logging, foreign keys, the current schema (only once the checks passed)."""
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: a killed process loses no committed row
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
        check_schema(conn, path)
    except BaseException:
        conn.close()
        raise
