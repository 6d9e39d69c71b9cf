"""The errors cnnprof raises on purpose.

Every error a user can cause is a :class:`CnnprofError`; the command line turns it into one
line on stderr and its ``exit_code`` (2 for bad usage or bad input, 1 for a check that failed).
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class CnnprofError(Exception):
    """Base class: a problem cnnprof can explain in one line."""

    exit_code = 2


class UsageError(CnnprofError):
    """Bad input from the user: an unknown model, a bad number, an unwritable path."""

    exit_code = 2


class UnknownModelError(UsageError):
    """A model name or pattern that the registry does not know."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown model {name!r}{hint} (see `cnnprof list`)")


class CheckFailed(CnnprofError):
    """A check ran and failed: a claim deviates under --strict, a latency regression."""

    exit_code = 1
