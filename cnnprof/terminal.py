"""The terminal: one place that makes rich consoles and prints plain lines.

Data (the report) goes to stdout, through ``data_stream``; progress, warnings and where files went
go to stderr (``say``). While a command runs, anything else that prints to stdout (a user's model,
a library) is sent to stderr (``reports_only``), so CSV and JSON on stdout stay parseable.
Messages are printed as plain text: a model name or path with brackets in it is never read as
rich markup, and long lines are not wrapped (they are copied from logs).
"""

from __future__ import annotations

import contextlib
import sys
from typing import IO, Iterator

_data: list[IO[str]] = []  # the real stdout of the command running now (innermost last)


def data_stream() -> IO[str]:
    """Where the report goes: the command's real stdout, or ``sys.stdout`` outside a command."""
    return _data[-1] if _data else sys.stdout


@contextlib.contextmanager
def reports_only() -> Iterator[None]:
    """Run a command with stdout reserved for its report: ``sys.stdout`` points at stderr inside,
    and ``data_stream()`` at the real stdout."""
    _data.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _data.pop()


def stderr_console():
    """A console on stderr that prints text as given: no markup, no highlighting, no wrapping."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def say(message: str) -> None:
    """One plain line on stderr."""
    stderr_console().print(message)


# Wide enough that a table written to a pipe, a file or a CI log is never cut: it takes the width
# its contents need.
PIPE_WIDTH = 10_000


def stdout_console():
    """A console for the report: the terminal's width on a terminal (tables fit it by leaving out
    columns, ``report.rich_table``), and unlimited elsewhere (pipes, files, CI logs), where tables
    keep every column at full width."""
    from rich.console import Console

    out = data_stream()
    console = Console(file=out, highlight=False, markup=False)
    return console if console.is_terminal else Console(file=out, width=PIPE_WIDTH, highlight=False, markup=False)
