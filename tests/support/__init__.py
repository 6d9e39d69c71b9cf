"""Helpers the tests share (import as ``from support import one_line``; ``tests/`` is on the path)."""

from __future__ import annotations


def one_line(result) -> bool:
    """The command failed the way a user's mistake should: exactly one line on stderr, starting
    ``cnnprof: error:`` (no traceback, no usage block). Takes a result with ``.stderr`` or the
    stderr text itself."""
    stderr = result if isinstance(result, str) else result.stderr
    return stderr.count("\n") == 1 and stderr.startswith("cnnprof: error:")
