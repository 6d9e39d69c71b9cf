"""The terminal: one place that makes rich consoles and prints plain lines.

Data (the report) goes to stdout, through ``data_stream``; progress, warnings and where files went
go to stderr (``say``). While a command runs, anything else that prints to stdout (a user's model,
a library) is sent to stderr (``reports_only``), so CSV and JSON on stdout stay parseable.
Messages are printed as plain text: a model name or path with brackets in it is never read as
rich markup, and long lines are not wrapped (they are copied from logs). Text that came from a user
or a file (model names, machine labels, stored errors) goes through ``printable`` before it reaches
a terminal, so an escape sequence in it is shown, never obeyed.

A report cut short must not pass for a whole one: ``data_stream`` writes every byte through to
the file descriptor (a short write, as under a file-size limit, is written on until it fails),
and a write that fails (a full disk, ``ulimit -f``, a closed pipe or a closed stdout) is an
``OutputError``: one line, exit 2. ``flush_stdout`` does the same for whatever else was printed,
when the command ends.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from typing import IO, Any, Iterator

from cnnprof.errors import UsageError

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


_data: list[IO[str] | None] = []  # the real stdout of the command running now (innermost last)


class OutputError(UsageError):
    """The report could not be written to stdout: one line, exit 2."""


def _failed(exc: OSError, stream) -> OutputError:
    """The error for a failed write on ``stream``, whose descriptor is pointed at /dev/null so that
    Python's own flush at exit does not fail a second time with a traceback."""
    import errno

    from cnnprof.files import describe

    with contextlib.suppress(Exception):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    why = "the reader closed the pipe" if exc.errno == errno.EPIPE else describe(exc)
    return OutputError(f"cannot write the output to stdout: {why}; the output is incomplete")


class DataStream:
    """The report's stdout, reporting every failed write (see the module docstring)."""

    def __init__(self, stream: IO[str] | None):
        self._stream = stream

    def _fd(self) -> int | None:
        try:
            return self._stream.fileno()
        except (AttributeError, ValueError, io.UnsupportedOperation):
            return None

    def write(self, text: str) -> int:
        stream = self._stream
        if stream is None:
            raise OutputError("cannot write the output: stdout is closed")
        fd = self._fd()
        try:
            if fd is None:  # not a file (a test's capture): its own write, and a flush
                stream.write(text)
                stream.flush()
                return len(text)
            stream.flush()
            data = text.encode(stream.encoding or "utf-8", stream.errors or "strict")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            raise _failed(exc, stream) from None
        return len(text)

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            raise _failed(exc, self._stream) from None

    def isatty(self) -> bool:
        try:
            return self._stream is not None and self._stream.isatty()
        except (ValueError, OSError):
            return False

    def __getattr__(self, name: str):  # encoding, errors, fileno, ...
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


def data_stream() -> DataStream:
    """Where the report goes: the command's real stdout, or ``sys.stdout`` outside a command."""
    stream = _data[-1] if _data else sys.stdout
    return stream if isinstance(stream, DataStream) else DataStream(stream)


def flush_stdout() -> None:
    """Flush what was printed to stdout when a command ends: a failure is an ``OutputError``."""
    data_stream().flush()


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
