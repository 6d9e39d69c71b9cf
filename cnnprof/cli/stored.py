"""What every measuring command does with the results database (``--db PATH``, ``--no-db``):
open and check it before measuring, store the run and its rows when the rows are written.

    db = stored.recorder("bench", db_path, no_db)      # before any measuring: a bad database exits 2 now
    ...
    db.save(rows, kind=Kind.PROFILE, partial=interrupted)

Each row stored names its model's own revision (``model_revision``: ``--revision``, or the git
revision of the repository a user's model file is in; see ``cnnprof.gitrev``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from cnnprof.terminal import say


def _argv() -> list[str]:
    from cnnprof.cli.common import ARGV

    return list(ARGV) or ["cnnprof", *sys.argv[1:]]


def _current_context():
    """The running command's click context. Typer 0.29 and later carry their own copy of click, whose
    context the separately installed ``click`` cannot see, so typer's is asked first."""
    import importlib

    for module in ("typer.main", "click"):
        try:
            get = importlib.import_module(module).get_current_context
        except (ImportError, AttributeError):
            continue
        ctx = get(silent=True)
        if ctx is not None:
            return ctx
    return None


def _params() -> dict[str, Any]:
    """The command's parsed options, when a click context is running (what the run was asked)."""
    ctx = _current_context()
    if ctx is None:
        return {}
    return {"command": ctx.command_path, "params": {k: (str(v) if isinstance(v, Path) else v)
                                                    for k, v in ctx.params.items()}}


class Recorder:
    """The results database of one command run, or nothing (``--no-db``)."""

    def __init__(self, command: str, path: Path | None, revision: str | None = None):
        from cnnprof.store import Store, now_iso

        self.command = command
        self.revision = revision  # --revision: the model repository's revision, as the user gives it
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

        records = with_model_revisions(as_records(rows), self.revision)
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


def with_model_revisions(records: Sequence[dict[str, Any]], given: str | None) -> list[dict[str, Any]]:
    """Each record with ``model_revision``: ``given`` (``--revision``), else the revision of the git
    repository its model's file lives in (``gitrev.model_revision``); left out where neither is."""
    from cnnprof.gitrev import model_revision

    found: dict[str, str] = {}
    out = []
    for rec in records:
        model = rec.get("model")
        if isinstance(model, str) and model not in found:
            found[model] = model_revision(model, given)
        rev = found.get(model) if isinstance(model, str) else (given and model_revision("", given))
        out.append({**rec, "model_revision": rev} if rev else dict(rec))
    return out


def recorder(command: str, db: Path | None, no_db: bool, *, outputs: Sequence[Any] = (),
             revision: str | None = None) -> Recorder:
    """The command's database, opened and checked now (exit 2 in one line when it cannot be used);
    ``outputs``: the command's other output files, none of which may be the database."""
    if not no_db and db is not None:
        from cnnprof.errors import UsageError
        from cnnprof.files import same_file

        for out in outputs:
            if out is not None and same_file(out, db):
                raise UsageError(f"{str(out)!r} is the results database (--db): choose another output path")
    return Recorder(command, None if no_db else db, revision)
