"""The errors cnnprof raises on purpose.

Every error a user can cause is a :class:`CnnprofError`; the command line turns it into one
line on stderr and its ``exit_code`` (2 for bad usage or bad input, 1 for a check that failed).
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


class CnnprofError(Exception):
    """Base class: a problem cnnprof can explain in one line."""

    exit_code = 2


class UsageError(CnnprofError):
    """Bad input from the user: an unknown model, a bad number, an unwritable path."""

    exit_code = 2


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis: a user's input echoed in a message
    (a name pasted by mistake can be thousands of characters long)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(exc: BaseException, *, typed: bool = True, last: bool = False, limit: int | None = 300) -> str:
    """An exception as one line: ``Type: its first line`` (the line alone when not ``typed``), the
    line cut to ``limit`` characters; the type's name when the exception says nothing. ``last``:
    its last line instead (a remote task's error ends with the exception that was raised there)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    line = (lines[-1] if last else lines[0])[:limit]
    return f"{type(exc).__name__}: {line}" if typed else line


class UnknownModelError(UsageError):
    """A model name or pattern that the registry does not know."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown model {shorten(name)!r}{hint} (see `cnnprof list`)")


class CheckFailed(CnnprofError):
    """A check ran and failed: a claim deviates under --strict, a latency regression."""

    exit_code = 1


class RowsFailed(CnnprofError):
    """A run of several models finished, but some rows carry an error (exit 1, so CI can tell)."""

    exit_code = 1


class OutOfMemory(UsageError):
    """The input (or the network at that input) does not fit in this machine's memory."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed. PyTorch's CPU allocator raises a plain
    ``RuntimeError`` ("DefaultCPUAllocator: can't allocate memory"); CUDA has its own type."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text
                                               or "out of memory" in text)


@contextlib.contextmanager
def memory_guard(what: str) -> Iterator[None]:
    """Inside this block, running out of memory is one line naming ``what`` (exit 2, or the row's
    error in a run of several models), not a traceback."""
    try:
        yield
    except OutOfMemory:
        raise
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise OutOfMemory(f"{what} ran out of memory ({one_line(exc, typed=False, limit=160)})") from None
