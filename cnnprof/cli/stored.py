"""What every measuring command does with the results database (``--db PATH``, ``--no-db``):
open and check it before measuring, store the run and its rows when the rows are written.

    db = stored.recorder("bench", db_path, no_db)      # before any measuring: a bad database exits 2 now
    ...
    db.save(rows, kind=Kind.PROFILE, partial=interrupted)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from cnnprof.terminal import say


def _argv() -> list[str]:
    from cnnprof.cli.common import ARGV

    return list(ARGV) or ["cnnprof", *sys.argv[1:]]


def _params() -> dict[str, Any]:
    """The command's parsed options, when a click context is running (what the run was asked)."""
    try:
        import click

        ctx = click.get_current_context(silent=True)
    except ImportError:  # pragma: no cover
        ctx = None
    if ctx is None:
        return {}
    return {"command": ctx.command_path, "params": {k: (str(v) if isinstance(v, Path) else v)
                                                    for k, v in ctx.params.items()}}


class Recorder:
    """The results database of one command run, or nothing (``--no-db``)."""

    def __init__(self, command: str, path: Path | None):
        from cnnprof.store import Store, now_iso

        self.command = command
        self.started_at = now_iso()
        self.store = None if path is None else Store.open(path, write=True)
        self.context = _params()

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def save(self, rows: Sequence[Any], *, kind: str, partial: bool = False, threads: int = 1,
             context: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> int | None:
        """Store the run and its rows (one transaction); says where on stderr. Returns the run id."""
        if self.store is None or not rows:
            return None
        from cnnprof.report import as_records
        from cnnprof.timing.environment import fingerprint

        records = as_records(rows)
        if self.store.closed:  # a second save
            from cnnprof.store import Store

            self.store = Store.open(self.store.path, write=True)
        run_id = self.store.record(
            self.command, _argv(), kind, records, environment=fingerprint(threads).to_dict(),
            started_at=self.started_at, status="interrupted" if partial else "done",
            context={**self.context, **(context or {})}, extra=extra)
        self.store.close()  # checked: the rows are in the file at that path, or this is exit 2
        say(f"recorded {len(records)} row(s) in {self.store.path} (run {run_id})")
        return run_id


def recorder(command: str, db: Path | None, no_db: bool, *, outputs: Sequence[Any] = ()) -> Recorder:
    """The command's database, opened and checked now (exit 2 in one line when it cannot be used);
    ``outputs``: the command's other output files, none of which may be the database."""
    if not no_db and db is not None:
        from cnnprof.errors import UsageError
        from cnnprof.files import same_file

        for out in outputs:
            if out is not None and same_file(out, db):
                raise UsageError(f"{str(out)!r} is the results database (--db): choose another output path")
    return Recorder(command, None if no_db else db)
