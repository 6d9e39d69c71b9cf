"""The terminal: one place that makes rich consoles and prints plain lines.

Data (the report) goes to stdout, through ``data_stream``; progress, warnings and where files went
go to stderr (``say``). While a command runs, anything else that prints to stdout (a user's model,
a library) is sent to stderr (``reports_only``), so CSV and JSON on stdout stay parseable.
Messages are printed as plain text: a model name or path with brackets in it is never read as
rich markup, and long lines are not wrapped (they are copied from logs). Text that came from a user
or a file (model names, machine labels, stored errors) goes through ``printable`` before it reaches
a terminal, so an escape sequence in it is shown, never obeyed.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import IO, Any, Iterator

# What a terminal obeys instead of showing: the C0 controls (ESC among them), DEL, the C1 controls
# (U+009B is a one-character CSI), and the Unicode marks that reorder or break the text around them
# (bidirectional overrides and isolates, the line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any, *, newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: every control character shown as its escape (``\\x1b``,
    ``\\x9b``, ``\\u202e``), the rest unchanged. ``newlines``: keep line ends (a message of several
    lines), else they are shown as ``\\x0a`` too (a table cell, a name)."""
    text = str(text)
    if newlines:
        return "\n".join(_UNSAFE.sub(_escaped, part) for part in text.split("\n"))
    return _UNSAFE.sub(_escaped, text)


def markup_safe(text: Any) -> str:
    """``printable(text)`` for a place that reads rich markup (a progress bar's text columns): its
    square brackets are escaped too, so ``[red]`` or ``[/bold]`` in a name is shown as written."""
    from rich.markup import escape

    return escape(printable(text))

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
    """One plain line on stderr (control characters in it shown escaped)."""
    stderr_console().print(printable(message, newlines=True))


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
