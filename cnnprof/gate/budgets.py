"""Named measurement budgets for ``gate check --budget``: how many processes, how long each, and
how much time a check may spend measuring ambiguous models again.

``default`` is what ``gate check`` does without options; ``thorough`` buys tighter intervals
(more processes on the check's side) for gating smaller slowdowns with a lower ``--factor``.
A number instead of a name keeps the default processes and sets only the time budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnprof.errors import UsageError


@dataclass(frozen=True)
class Budget:
    name: str
    processes: int  # first pass: fresh processes, each timing every model
    extra_processes: int  # at most this many more, only for models whose interval holds the factor
    seconds: float  # no process beyond the first three starts that would end later than this
    min_time_s: float = 3.0  # timed rounds per process

    def describe(self) -> str:
        return (f"{self.name}: {self.processes} processes, up to {self.extra_processes} more, "
                f"{self.seconds:g} s, {self.min_time_s:g} s each")


BUDGETS = {
    "default": Budget("default", processes=4, extra_processes=2, seconds=50.0),
    "thorough": Budget("thorough", processes=8, extra_processes=4, seconds=150.0),
}


def parse_budget(text: str) -> Budget:
    """``default``, ``thorough`` or seconds (the default's processes with that time budget)."""
    key = str(text).strip().lower()
    if key in BUDGETS:
        return BUDGETS[key]
    try:
        seconds = float(key)
    except ValueError:
        raise UsageError(f"--budget must be {' or '.join(BUDGETS)} or seconds, got {text!r}") from None
    if not seconds >= 0.0:
        raise UsageError(f"--budget seconds must be at least 0, got {text!r}")
    return Budget(f"{seconds:g} s", BUDGETS["default"].processes, BUDGETS["default"].extra_processes, seconds)


def with_overrides(budget: Budget, processes: int | None = None, extra_processes: int | None = None,
                   min_time_s: float | None = None) -> Budget:
    """The budget with the options given explicitly (``--processes`` ...) replacing its own."""
    from dataclasses import replace

    changes = {k: v for k, v in (("processes", processes), ("extra_processes", extra_processes),
                                 ("min_time_s", min_time_s)) if v is not None}
    return replace(budget, **changes) if changes else budget
