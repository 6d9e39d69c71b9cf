"""The seed chapter's quantitative claims, each checked by a measurement on cnnprof's own modules.

A :class:`Claim` is a statement of the seed (``shared/seed/000_bb3f2cd0ea179623.txt``) or of the
paper it cites, with the figure it expects, a :class:`Tolerance`, and a ``measure`` function that
builds the modules concerned and measures them with cnnprof's counters and timers. Figures the
papers publish (held in the model catalog) are only ever the *expected* side. A claim that cannot
be measured offline (ImageNet accuracy) or whose measuring code is not available yet is ``cited``,
with the reason; otherwise it ``holds`` when the measurement is within the tolerance of the
expected figure and ``deviates`` when it is not.

The claims live one module per family series (``espnet``, ``fbnet``, ``efficientnet``,
``ghostnet``, ``mobilenetv3``); each exports ``CLAIMS``. ``run_claims`` measures a selection and
returns :class:`ClaimResult` rows and the pictures the measurements can draw.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnprof.errors import CnnprofError, UsageError
from cnnprof.rows import Choice, Row


class Verdict(Choice):
    """What a claim's measurement says of it."""

    HOLDS = "holds"
    DEVIATES = "deviates"
    CITED = "cited"


class ToleranceKind(Choice):
    """``rel``: within a fraction of the expected figure; ``abs``: within a fixed amount;
    ``above`` / ``below``: one-sided, strictly above / below it."""

    REL = "rel"
    ABS = "abs"
    ABOVE = "above"
    BELOW = "below"


VERDICTS = tuple(Verdict)
MODULES = ("espnet", "fbnet", "efficientnet", "ghostnet", "mobilenetv3")
# The claim families, in the seed's order (the model zoo's family names).
FAMILIES = (
    "espnet", "espnetv2", "fbnet", "fbnetv2", "efficientnet", "efficientnetv2", "ghostnet", "ghostnetv2",
    "mobilenetv3",
)
RESULT_FIELDS = [
    "id", "family", "source", "statement", "expected", "measured", "tolerance", "verdict", "detail",
    "unit", "formula", "seconds",
]


class NotAvailable(Exception):
    """Raised by a measurement whose code (another part of cnnprof) is not there yet: the claim is
    then ``cited`` with this reason instead of measured."""


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

    def accepts(self, expected: float, measured: float) -> bool:
        if math.isnan(measured):
            return False
        if self.kind is ToleranceKind.REL:
            return abs(measured - expected) <= self.value * abs(expected)
        if self.kind is ToleranceKind.ABS:
            return abs(measured - expected) <= self.value
        if self.kind is ToleranceKind.ABOVE:
            return measured > expected
        return measured < expected

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


@dataclass(frozen=True)
class Plot:
    """A picture a measurement can draw: ``draw(path)`` writes ``filename`` (under ``--plot DIR``)."""

    filename: str
    draw: Callable[[Path], None]


@dataclass(frozen=True)
class Measurement:
    """What a claim's ``measure`` returns: the measured figure and how it was obtained.

    ``formula`` is the paper's formula evaluated at the same settings, shown beside the
    measurement; ``expected`` replaces the claim's expected figure when the bound is itself a
    measurement (e.g. "lower than without HFF").
    """

    measured: float
    detail: str
    formula: float | None = None
    expected: float | None = None
    plots: tuple[Plot, ...] = ()


@dataclass(frozen=True)
class Claim:
    """One claim: ``measure`` is None for a claim that is cited only (``cited`` says why)."""

    id: str
    family: str
    source: str
    statement: str
    expected: float | None
    unit: str
    tolerance: Tolerance | None = None
    measure: Callable[[], Measurement] | None = None
    cited: str = ""
    timed: bool = False  # measures latency (slower, and noisy on a shared machine)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"claim {self.id}: unknown family {self.family!r}")
        if self.measure is not None and self.tolerance is None:
            raise ValueError(f"claim {self.id}: a measured claim needs a tolerance")
        if self.measure is None and not self.cited:
            raise ValueError(f"claim {self.id}: a cited claim needs its reason")


@dataclass(frozen=True)
class ClaimResult(Row):
    """One report row. ``expected`` / ``measured`` are plain numbers in ``unit`` (None where there
    is none); ``tolerance`` is its description; ``detail`` says how it was measured, or why not."""

    id: str
    family: str
    source: str
    statement: str
    expected: float | None
    measured: float | None
    tolerance: str
    verdict: Verdict
    detail: str
    unit: str = ""
    formula: float | None = None
    seconds: float = 0.0


@dataclass
class ClaimRun:
    results: list[ClaimResult] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)

    @property
    def deviating(self) -> list[ClaimResult]:
        return [r for r in self.results if r.verdict is Verdict.DEVIATES]


def verdict_for(claim: Claim, expected: float | None, measured: float) -> Verdict:
    assert claim.tolerance is not None and expected is not None
    return Verdict.HOLDS if claim.tolerance.accepts(expected, measured) else Verdict.DEVIATES


def evaluate(claim: Claim) -> tuple[ClaimResult, tuple[Plot, ...]]:
    """Measure one claim (or cite it) and give its row and its pictures."""
    base = {"id": claim.id, "family": claim.family, "source": claim.source, "statement": claim.statement,
            "unit": claim.unit}
    tolerance = claim.tolerance.describe() if claim.tolerance else ""
    if claim.measure is None:
        return ClaimResult(**base, expected=claim.expected, measured=None, tolerance=tolerance, verdict=Verdict.CITED,
                           detail=claim.cited), ()
    start = time.perf_counter()
    try:
        m = claim.measure()
    except NotAvailable as exc:
        return ClaimResult(**base, expected=claim.expected, measured=None, tolerance=tolerance, verdict=Verdict.CITED,
                           detail=f"not measured: {exc}", seconds=time.perf_counter() - start), ()
    except CnnprofError as exc:  # a measurement that could not run here (a backend, a profiler)
        return ClaimResult(**base, expected=claim.expected, measured=None, tolerance=tolerance, verdict=Verdict.CITED,
                           detail=f"not measured on this machine: {exc}", seconds=time.perf_counter() - start), ()
    expected = claim.expected if m.expected is None else m.expected
    return ClaimResult(
        **base, expected=expected, measured=m.measured, tolerance=tolerance,
        verdict=verdict_for(claim, expected, m.measured), detail=m.detail, formula=m.formula,
        seconds=time.perf_counter() - start,
    ), m.plots


def all_claims() -> list[Claim]:
    """Every claim, family modules in the seed's order; ids are unique."""
    claims: list[Claim] = []
    for name in MODULES:
        claims.extend(importlib.import_module(f"cnnprof.claims.{name}").CLAIMS)
    ids = [c.id for c in claims]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate claim ids: {', '.join(duplicates)}")
    order = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(claims, key=lambda c: order[c.family])


def parse_families(text: str | None) -> list[str] | None:
    """``--family`` value (comma-separated) -> family names; unknown -> UsageError listing them."""
    if text is None or not text.strip():
        return None
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise UsageError(f"unknown claim family {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    return names


def select(claims: Sequence[Claim], families: Iterable[str] | None) -> list[Claim]:
    if families is None:
        return list(claims)
    wanted = set(families)
    return [c for c in claims if c.family in wanted]


def run_claims(
    claims: Sequence[Claim], *, on_progress: Callable[[str], None] | None = None, device: str = "cpu"
) -> ClaimRun:
    """Measure (or cite) each claim in order; training-step timings run on ``device``."""
    from cnnprof.claims.common import on_device

    run = ClaimRun()
    with on_device(device):
        for i, claim in enumerate(claims, 1):
            if on_progress is not None:
                on_progress(f"claim {i}/{len(claims)}: {claim.id}")
            result, plots = evaluate(claim)
            run.results.append(result)
            run.plots.extend(plots)
    return run
