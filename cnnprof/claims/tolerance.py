"""The verdicts a claim's row can have and the tolerances that decide between them (see the
package docstring for what each verdict means as evidence)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnprof.rows import Choice


class Verdict(Choice):
    """What a claim's measurement says of it (see the module docstring)."""

    HOLDS = "holds"
    DEVIATES = "deviates"
    INCONCLUSIVE = "inconclusive"
    IDENTITY = "identity"
    CITED = "cited"


class ToleranceKind(Choice):
    """``rel``: within a fraction of the expected figure; ``abs``: within a fixed amount;
    ``above`` / ``below``: one-sided, strictly above / below it."""

    REL = "rel"
    ABS = "abs"
    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True)
class Tolerance:
    """How far a measurement may be from the expected figure.

    ``rel``: within ``value`` times |expected|; ``abs``: within ``value``; ``above`` / ``below``:
    one-sided, the measurement must be strictly above / below the expected figure.
    """

    kind: ToleranceKind
    value: float = 0.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", ToleranceKind(self.kind))
        except ValueError:
            raise ValueError(f"unknown tolerance kind {self.kind!r}") from None

    def band(self, expected: float) -> tuple[float, float]:
        """The accepted values as (low, high); one-sided bounds are open at ``expected``."""
        if self.kind is ToleranceKind.REL:
            return expected - self.value * abs(expected), expected + self.value * abs(expected)
        if self.kind is ToleranceKind.ABS:
            return expected - self.value, expected + self.value
        if self.kind is ToleranceKind.ABOVE:
            return expected, math.inf
        return -math.inf, expected

    def accepts(self, expected: float, measured: float) -> bool:
        if math.isnan(measured):
            return False
        lo, hi = self.band(expected)
        if self.kind is ToleranceKind.ABOVE:
            return measured > lo
        if self.kind is ToleranceKind.BELOW:
            return measured < hi
        return lo <= measured <= hi

    def judge_interval(self, expected: float, low: float, high: float, *, narrow: bool = False) -> "Verdict":
        """``holds`` if the whole interval is accepted, ``deviates`` if none of it is, else
        ``inconclusive``. With ``narrow``, an interval wider than a two-sided tolerance's band is
        ``inconclusive`` too, wherever it lies (the measurement cannot resolve the claim at this
        tolerance)."""
        if math.isnan(low) or math.isnan(high) or low > high:
            return Verdict.INCONCLUSIVE
        lo, hi = self.band(expected)
        two_sided = self.kind in (ToleranceKind.REL, ToleranceKind.ABS)
        if narrow and two_sided and high - low > hi - lo:
            return Verdict.INCONCLUSIVE
        if self.accepts(expected, low) and self.accepts(expected, high):
            return Verdict.HOLDS
        if high < lo or low > hi or (self.kind is ToleranceKind.ABOVE and high <= lo) or (
                self.kind is ToleranceKind.BELOW and low >= hi):
            return Verdict.DEVIATES
        return Verdict.INCONCLUSIVE

    def describe(self) -> str:
        if self.kind is ToleranceKind.REL:
            return f"±{100 * self.value:g}%"
        if self.kind is ToleranceKind.ABS:
            return f"±{self.value:g}"
        return "> expected" if self.kind is ToleranceKind.ABOVE else "< expected"


def rel(value: float) -> Tolerance:
    return Tolerance(ToleranceKind.REL, value)


def absolute(value: float) -> Tolerance:
    return Tolerance(ToleranceKind.ABS, value)


ABOVE = Tolerance(ToleranceKind.ABOVE)
BELOW = Tolerance(ToleranceKind.BELOW)
