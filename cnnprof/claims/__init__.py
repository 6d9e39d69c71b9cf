"""The seed chapter's quantitative claims, each checked by a measurement on cnnprof's own modules.

A :class:`Claim` is a statement of the seed (``shared/seed/000_bb3f2cd0ea179623.txt`` beside the checkout: its
``source`` names the seed's own heading and ``quote`` is a short phrase copied verbatim from the
section, so that a text search finds it) or of the paper behind it (``source`` = ``paper:`` title
and section), with the figure it expects, a :class:`Tolerance`, and a ``measure`` function that
builds the modules concerned and measures them with cnnprof's counters and timers. Figures the
papers publish (held in the model catalog) are only ever the *expected* side.

Verdicts say what kind of evidence a row is:

* ``holds`` / ``deviates``: a measurement that could have gone either way, inside or outside the
  tolerance; where it has an interval (timings), the whole interval must be inside (holds) or
  outside (deviates);
* ``inconclusive``: the interval straddles the tolerance's bound (for the additivity rows, also
  an interval wider than the tolerance);
* ``identity``: the measured value follows from how the module is built (a weight count that is
  the construction formula): a consistency check that the built module is the one described, not
  evidence for the paper's claim; an identity that fails is a ``deviates``;
* ``cited``: not measurable here (ImageNet accuracy, trained feature maps, a figure nobody has
  verified), with the reason; the row may still show what was measured beside it.

A latency or training-speed row names the device it was measured on (``device``) and, where the
paper measured on other hardware, says so (``paper_device``). A timing that other processes
competed with says so (``busy``), and every row with an interval says which interval its verdict
was judged on (``judged``): the raw 95% interval on a quiet machine, or, on a busy one, that
interval widened on each side by what a busy machine is known to do to it (``widened x1.05`` on
the thread CPU clock, which other processes taking the core do not stretch but their use of the
shared cache moves a little; ``widened x1.25`` on the wall clock; the additivity ratio its own).

The claims live one module per family (``espnet``, ``espnetv2``, ``fbnet``, ``fbnetv2``,
``fbnetv3``, ``efficientnet``, ``efficientnetv2``, ``ghostnet`` for both GhostNets,
``mobilenetv3``), with ``espnet_network`` (ESPNet's network-level rows) and ``ghostnet_attention``
(GhostNetV2's attention timed) beside them; each
exports ``CLAIMS``. ``run_claims`` measures a selection and returns :class:`ClaimResult` rows
and the pictures the measurements can draw; ``errata`` holds the seed's misprinted formulas (not
claims); ``tolerance`` the verdicts and tolerances (re-exported here).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnprof.errors import CnnprofError, UsageError
from cnnprof.rows import Row

from cnnprof.claims.common import on_device, one_run
# re-exported: how a timing was read, where a claim comes from
from cnnprof.claims.names import CUDA_CLOCK as CUDA_CLOCK
from cnnprof.claims.names import PAPER_PREFIX as PAPER_PREFIX
from cnnprof.claims.names import RELEASED_PREFIX as RELEASED_PREFIX
from cnnprof.claims.names import SEED_PREFIX as SEED_PREFIX
from cnnprof.claims.names import SOURCE_PREFIXES as SOURCE_PREFIXES
from cnnprof.claims.names import THREAD_CLOCK as THREAD_CLOCK
from cnnprof.claims.names import WALL_CLOCK as WALL_CLOCK

# re-exported: the family modules write their claims with these
from cnnprof.claims.tolerance import ABOVE as ABOVE
from cnnprof.claims.tolerance import BELOW as BELOW
from cnnprof.claims.tolerance import Tolerance as Tolerance
from cnnprof.claims.tolerance import ToleranceKind as ToleranceKind
from cnnprof.claims.tolerance import Verdict as Verdict
from cnnprof.claims.tolerance import absolute as absolute
from cnnprof.claims.tolerance import rel as rel

VERDICTS = tuple(Verdict)
MODULES = (
    "espnet", "espnet_network", "espnetv2", "fbnet", "fbnetv2", "fbnetv3", "efficientnet", "efficientnetv2",
    "ghostnet", "ghostnet_attention", "mobilenetv3",
)
# The claim families, in the seed's order (the model zoo's family names).
FAMILIES = (
    "espnet", "espnetv2", "fbnet", "fbnetv2", "fbnetv3", "efficientnet", "efficientnetv2", "ghostnet", "ghostnetv2",
    "mobilenetv3",
)
# A ratio of two wall-clock timings moves by this factor between processes on a busy 2-core machine
# (about the 1.32 max/min of process medians in shared/reference/measurements.md, section B, less
# what interleaving cancels): a busy wall-clock run's interval is widened by it on each side before it
# is judged, and the row says so.
BUSY_MARGIN = 1.25
# The thread CPU clock is not stretched by other processes taking the core, but a busy machine still
# moves a ratio of two timings a little through the shared cache and memory: between two runs at
# load 3-5 the thread-clock ratios moved by up to 5.5% (EESP's separate / grouped 1x1 convs 1.082
# then 1.025, their intervals 1.065-1.101 and 1.014-1.036, 3% apart). A busy run's interval is
# widened by this factor on each side, so that one run holding and another deviating would need
# their intervals 10% apart (the factor squared); a quiet run's is judged as measured.
THREAD_BUSY_MARGIN = 1.05
RAW_CI = "raw 95% CI"
RESULT_FIELDS = [
    "id", "family", "source", "statement", "expected", "measured", "tolerance", "verdict", "detail",
    "unit", "formula", "seconds", "quote", "ci_low", "ci_high", "judged", "busy", "device", "paper_device",
]


class NotAvailable(Exception):
    """Raised by a measurement whose code (another part of cnnprof) is not there yet: the claim is
    then ``cited`` with this reason instead of measured."""




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
    measurement. ``ci`` is the measurement's 95% interval (timings, seeds): the verdict then
    looks at the whole interval. ``device`` names where it was timed. ``cited`` makes the row
    ``cited`` although something was measured (the expected figure is unverified, or the claim
    needs what cannot be measured here), with that reason. ``clock`` says how a timing was read
    (``THREAD_CLOCK``, ``WALL_CLOCK``, ``CUDA_CLOCK``; "" for what is not a timing). ``busy`` says
    that other processes competed for the cores while it was timed: a wall-clock interval taken in
    one process does not cover what a busy machine does to a ratio of timings, so it is widened by
    ``BUSY_MARGIN`` on each side before it is judged, a thread-CPU-clock interval by the smaller
    ``THREAD_BUSY_MARGIN`` (see ``judged_interval``), unless ``busy_margin`` gives the factor by
    which a busy machine is known to move this ratio (through the shared cache and memory).
    Without an interval a busy timing is ``inconclusive``. ``process_margin``, busy or not, is the
    factor by which this ratio is known to move between processes on a quiet machine, where the
    samples of one process (what ``ci`` covers) do not cover it: the interval is widened by it.
    """

    measured: float
    detail: str
    formula: float | None = None
    expected: float | None = None
    ci: tuple[float, float] | None = None
    device: str = ""
    cited: str = ""
    busy: str = ""
    clock: str = ""
    busy_margin: float | None = None
    process_margin: float | None = None
    plots: tuple[Plot, ...] = ()


@dataclass(frozen=True)
class Claim:
    """One claim: ``measure`` is None for a claim that is cited only (``cited`` says why); a
    measured claim without an expected figure must come back ``cited`` (its measurement is shown
    beside a claim that cannot be judged here).

    ``source`` starts with ``seed §<heading>`` (the seed's own heading, with ``quote`` a short
    verbatim phrase of that section), ``paper: <title>, <section or table>`` or ``released:
    <implementation>`` (a released model's own figure). ``identity``
    marks a measured value that follows from how the module is built. ``paper_device`` says
    where the paper measured a latency or training speed.
    """

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
    quote: str = ""
    identity: bool = False
    paper_device: str = ""
    narrow_interval: bool = False  # an interval wider than the tolerance's band is inconclusive

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"claim {self.id}: unknown family {self.family!r}")
        if self.measure is not None and self.tolerance is None and self.expected is not None:
            raise ValueError(f"claim {self.id}: a measured claim with an expected figure needs a tolerance")
        if self.measure is None and not self.cited:
            raise ValueError(f"claim {self.id}: a cited claim needs its reason")
        if not self.source.startswith(SOURCE_PREFIXES):
            raise ValueError(f"claim {self.id}: the source must start with one of {', '.join(SOURCE_PREFIXES)}")
        if self.source.startswith(SEED_PREFIX) and not self.quote:
            raise ValueError(f"claim {self.id}: a claim from the seed quotes it (a verbatim phrase)")

    @property
    def heading(self) -> str:
        """The seed heading a seed-sourced claim comes from ("" for a paper's claim)."""
        if not self.source.startswith(SEED_PREFIX):
            return ""
        return self.source[len(SEED_PREFIX):].split(";", 1)[0].strip()


@dataclass(frozen=True)
class ClaimResult(Row):
    """One report row. ``expected`` / ``measured`` are plain numbers in ``unit`` (None where there
    is none); ``ci_low`` / ``ci_high`` the measurement's interval where it has one; ``tolerance``
    is its description; ``detail`` says how it was measured, or why not; ``judged`` which interval
    the verdict looked at (``RAW_CI`` or ``widened xN``; "" without an interval); ``busy`` what
    competed with a timing ("" when the machine was quiet); ``device`` where a latency was
    measured, ``paper_device`` where the paper measured it."""

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
    quote: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    judged: str = ""
    busy: str = ""
    device: str = ""
    paper_device: str = ""

    @property
    def judged_text(self) -> str:
        """``raw 95% CI``, ``raw 95% CI, busy``, ``widened x1.25, busy``: the interval judged, and
        whether the machine was busy (shown in the terminal table)."""
        if not self.judged:
            return "busy" if self.busy else ""
        return f"{self.judged}, busy" if self.busy else self.judged

    @property
    def verdict_text(self) -> str:
        """``deviates on cpu (Intel Xeon Processor, 1 thread)``: the verdict with its device."""
        return f"{self.verdict} on {self.device}" if self.device and self.verdict is not Verdict.CITED else str(
            self.verdict)


@dataclass
class ClaimRun:
    results: list[ClaimResult] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)

    @property
    def deviating(self) -> list[ClaimResult]:
        return [r for r in self.results if r.verdict is Verdict.DEVIATES]

    def counts(self) -> dict[Verdict, int]:
        return {v: sum(r.verdict is v for r in self.results) for v in Verdict}

    def summary(self) -> str:
        """``64 claims: 14 hold, 9 deviate, 3 inconclusive, 11 cited; 27 identities ...``."""
        return summary_line(self.results)

    def coverage(self) -> str:
        return coverage_line(self.results)


def coverage_line(results: Sequence[ClaimResult]) -> str:
    """``the checkable claims of the seed chapter: 50 measured, 14 cited``, counted from the rows
    (a row is cited when its verdict is, whether or not something was measured beside it)."""
    cited = sum(r.verdict is Verdict.CITED for r in results)
    return f"the checkable claims of the seed chapter: {len(results) - cited} measured, {cited} cited"


def family_seconds(results: Sequence[ClaimResult]) -> list[tuple[str, int, float]]:
    """(family, rows, seconds) for each family with rows, in the seed's order: where a run's time
    went (a measurement shared by several rows is counted in the row that took it)."""
    out = []
    for family in FAMILIES:
        mine = [r for r in results if r.family == family]
        if mine:
            out.append((family, len(mine), sum(r.seconds for r in mine)))
    return out


def summary_line(results: Sequence[ClaimResult]) -> str:
    """Each kind of verdict counted apart: evidence first, then the consistency checks."""
    n = {v: sum(r.verdict is v for r in results) for v in Verdict}
    identities = n[Verdict.IDENTITY]
    return (f"{len(results)} claims: {n[Verdict.HOLDS]} hold, {n[Verdict.DEVIATES]} deviate, "
            f"{n[Verdict.INCONCLUSIVE]} inconclusive, {n[Verdict.CITED]} cited; "
            f"{identities} {'identity' if identities == 1 else 'identities'} (consistency checks of the built "
            "modules, not evidence)")


def judged_interval(m: Measurement) -> tuple[float, float, str] | None:
    """The interval a measurement's verdict looks at, and what it is: its raw 95% interval
    (``RAW_CI``), or, for a timing taken on a busy machine, that interval widened on each side by
    the measurement's own ``busy_margin``, else by ``THREAD_BUSY_MARGIN`` on the thread CPU clock
    and ``BUSY_MARGIN`` on the wall clock (``widened x1.05``, ``widened x1.25``). None without an
    interval. A ``process_margin`` widens the interval busy or not (``widened x1.1 between
    processes``), and a busy machine's margin on top of it."""
    if m.ci is None:
        return None
    low, high = m.ci
    said = []
    if m.process_margin and m.process_margin > 1.0:
        low, high = low / m.process_margin, high * m.process_margin
        said.append(f"x{m.process_margin:g} between processes")
    margin = m.busy_margin
    if margin is None:
        margin = {THREAD_CLOCK: THREAD_BUSY_MARGIN, CUDA_CLOCK: 1.0}.get(m.clock, BUSY_MARGIN)
    if m.busy and margin > 1.0:
        low, high = low / margin, high * margin
        said.append(f"x{margin:g}")
    return (low, high, "widened " + ", ".join(said)) if said else (low, high, RAW_CI)


def verdict_for(claim: Claim, expected: float | None, m: Measurement) -> Verdict:
    """The verdict of a measured claim (see the module docstring)."""
    if m.cited:
        return Verdict.CITED
    if claim.tolerance is None or expected is None:
        raise ValueError(f"claim {claim.id}: measured without an expected figure or a tolerance, and not cited")
    if claim.identity:
        return Verdict.IDENTITY if claim.tolerance.accepts(expected, m.measured) else Verdict.DEVIATES
    judged = judged_interval(m)
    if judged is None:
        if m.busy:
            return Verdict.INCONCLUSIVE
        return Verdict.HOLDS if claim.tolerance.accepts(expected, m.measured) else Verdict.DEVIATES
    low, high, _ = judged
    return claim.tolerance.judge_interval(expected, low, high, narrow=claim.narrow_interval)


def evaluate(claim: Claim) -> tuple[ClaimResult, tuple[Plot, ...]]:
    """Measure one claim (or cite it) and give its row and its pictures."""
    base = {"id": claim.id, "family": claim.family, "source": claim.source, "statement": claim.statement,
            "unit": claim.unit, "quote": claim.quote, "paper_device": claim.paper_device}
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
    detail = m.detail if not m.cited else f"{m.cited}. Measured: {m.detail}"
    judged = judged_interval(m)
    if m.busy and not m.cited:
        if judged is None:
            detail = f"machine busy ({m.busy}): no verdict from this timing. {detail}"
        elif judged[2] == RAW_CI:
            detail = f"machine busy ({m.busy}): judged on the raw interval ({m.clock} clock). {detail}"
        else:
            detail = (f"machine busy ({m.busy}): a {m.clock or 'wall'}-clock timing, judged on its interval "
                      f"{judged[2]} to {judged[0]:.3g}-{judged[1]:.3g}. {detail}")
    return ClaimResult(
        **base, expected=expected, measured=m.measured, tolerance=tolerance,
        verdict=verdict_for(claim, expected, m), detail=detail, formula=m.formula,
        seconds=time.perf_counter() - start, ci_low=m.ci[0] if m.ci else None, ci_high=m.ci[1] if m.ci else None,
        judged=judged[2] if judged and not (m.cited or claim.identity) else "", busy=m.busy, device=m.device,
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
    claims: Sequence[Claim], *, on_progress: Callable[[str], None] | None = None, device: str = "cpu",
    on_count: Callable[[int], None] | None = None,
) -> ClaimRun:
    """Measure (or cite) each claim in order; training-step timings run on ``device``.

    Once torch is loaded, the objects alive are collected and frozen out of the garbage
    collector's reach (``gc.freeze``) for the run, and again before each claim (what the claims
    before it imported and cached: the zoo's modules, counted models): the timing protocol
    collects before every measurement, and with torch's and the zoo's objects in the heap a full
    collection costs ~0.15 s, which FBNet's additivity, timing every block of three networks in
    each round, would otherwise pay some five hundred times (over a minute). Everything runs at one
    torch thread. ``on_count(n)``: ``n`` claims are done (before each claim, and at the end)."""
    import gc

    from cnnprof.timing import torch_threads

    if any(c.measure is not None for c in claims):
        import torch  # noqa: F401 - loaded before the freeze, so that its objects are frozen too
    run = ClaimRun()
    gc.collect()
    gc.freeze()
    try:
        # one thread throughout: the timings are one-thread figures, and several OpenMP threads on
        # a shared machine can make the counting passes many times slower (spin-waiting)
        with on_device(device), torch_threads(1), one_run():
            for i, claim in enumerate(claims, 1):
                if on_progress is not None:
                    on_progress(f"claim {i}/{len(claims)}: {claim.id}")
                if on_count is not None:
                    on_count(i - 1)
                gc.freeze()
                result, plots = evaluate(claim)
                run.results.append(result)
                run.plots.extend(plots)
            if on_count is not None:
                on_count(len(claims))
    finally:
        gc.unfreeze()
    return run
