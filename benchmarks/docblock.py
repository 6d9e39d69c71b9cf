"""Write a benchmark's table into its page under docs/, between two markers, so it is regenerated
rather than retyped:

    <!-- begin: NAME -->
    ... replaced on every run: the command, the date, the machine, then the table ...
    <!-- end: NAME -->

Everything outside the markers is left as it was; a page without both markers (in that order,
once each) is an error, and the page is written in one rename once the new text is complete.
"""

from __future__ import annotations

import datetime
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def markers(name: str) -> tuple[str, str]:
    return f"<!-- begin: {name} -->", f"<!-- end: {name} -->"


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with what lies between NAME's markers replaced by ``body`` (markers kept)."""
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"the page needs exactly one {begin} and one {end}")
    head, rest = text.split(begin)
    old, tail = rest.split(end)
    if not old.startswith("\n") and old:
        raise ValueError(f"{begin} must end its line")
    return f"{head}{begin}\n{body.strip(chr(10))}\n{end}{tail}"


def provenance(command: str, environment: str, when: datetime.datetime | None = None) -> str:
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return f"Written by `{command}` on {when:%Y-%m-%d %H:%M} UTC.\nEnvironment: {environment}.\n"


def command_line() -> str:
    """How this script was called, as a person would type it (from the repository root)."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script.name
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def write_block(page: str | Path, name: str, table: str, *, threads: int = 1) -> Path:
    """Replace NAME's block of ``page`` with the command, date, environment and ``table``."""
    from cnnprof.files import write_atomic
    from cnnprof.timing.environment import fingerprint

    path = Path(page)
    text = path.read_text(encoding="utf-8")
    body = provenance(command_line(), fingerprint(threads).describe()) + "\n" + table.strip("\n")
    return write_atomic(path, replace_block(text, name, body))
