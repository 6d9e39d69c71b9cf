"""Which process runs a sweep, and whether it still does: a run that is ``running`` in the
database may be a sweep killed long ago (``--resume`` continues it) or one still going on (a
second timing worker beside it would disturb both; ``--resume`` is refused).

A run records its owner as host, process id and the process's start time (from
``/proc/PID/stat``, in clock ticks since boot), so that a process id reused by another program is
not taken for the sweep. An owner on another host cannot be checked from here: it counts as gone.

Knows nothing of the rest of the project.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Mapping


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and start time of process ``pid``, or None when there is none."""
    try:
        text = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime 22
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    found = _stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": found[1] if found else None}


def alive(owner: Any) -> bool:
    """Whether ``owner`` (as ``this_process`` gave it) is a process still running on this host."""
    if not isinstance(owner, Mapping) or owner.get("host") != socket.gethostname():
        return False
    pid, started = owner.get("pid"), owner.get("started")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    found = _stat(pid)
    if found is None or found[0] in ("Z", "X"):  # gone, or dead and not yet reaped
        return False
    return started is None or found[1] == started
