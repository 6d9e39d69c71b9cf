"""Which file a results database is: noticed when it changes under an open connection.

SQLite keeps writing through the file it opened, whatever happens to the name: a database deleted,
replaced by another one, by a folder or by a symbolic link while a sweep runs would go on taking
rows into a file nobody can read any more, and its write-ahead log, which SQLite names after the
path (``x.db-wal``), would be replayed into whatever database is put at that path later, over
that database's own rows.

``Identity`` is taken when the database is opened for writing (the file's device and inode, and
its real path, links resolved); ``changed()`` says, in words, how the path no longer names that
file. The store checks it under the write lock before every write and at close, and when it
changed, ``abandon`` empties its write-ahead log into the file it had open (``wal_checkpoint
(TRUNCATE)``, through SQLite's own handle on the old file) so that nothing is left to replay, and
closes it: the file now at the path is never written.

Knows nothing of the rest of the project.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    path: Path
    real: str
    dev: int
    ino: int

    @classmethod
    def of(cls, path: str | os.PathLike) -> "Identity":
        p = Path(path)
        st = os.stat(p)
        return cls(p, os.path.realpath(p), st.st_dev, st.st_ino)

    def changed(self) -> str | None:
        """None while ``path`` still names the file it named when this was taken; else what happened."""
        try:
            os.lstat(self.path)
        except FileNotFoundError:
            return "was deleted"
        except OSError as exc:
            return f"can no longer be reached ({exc.strerror or exc})"
        real = os.path.realpath(self.path)
        try:
            st = os.stat(self.path)
        except OSError:
            return "was replaced by a broken symbolic link" if os.path.islink(self.path) else "was deleted"
        if real != self.real and os.path.islink(self.path):
            return f"was replaced by a symbolic link (to {real!r})"
        if stat.S_ISDIR(st.st_mode):
            return "was replaced by a folder"
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return "was replaced by another file"
        if real != self.real:
            return f"now resolves to another path ({real!r})"
        return None


def abandon(conn: sqlite3.Connection) -> None:
    """Stop using a database whose file is no longer at its path: its write-ahead log emptied into
    the file the connection has open (so nothing is replayed into a file put at that path later),
    then closed. Never raises."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with contextlib.suppress(sqlite3.Error):
        conn.close()
