"""cnnprof claims: which interval a timed verdict judges (raw, or widened on a busy machine, and the
row saying which), the coverage line counted from the rows, and the seconds each family took, in
the terminal table and in the Markdown report. Planted measurements only: nothing is timed."""

from __future__ import annotations

import dataclasses
import re

import pytest

from cnnprof import claims
from cnnprof.claims import (
    ABOVE,
    BUSY_MARGIN,
    RAW_CI,
    THREAD_BUSY_MARGIN,
    THREAD_CLOCK,
    WALL_CLOCK,
    Claim,
    ClaimResult,
    Measurement,
    Verdict,
    coverage_line,
    evaluate,
    family_seconds,
    rel,
)
from cnnprof.claims.document import markdown

BUSY = "other processes used 1.4 of the 2 cores while this was timed"
# GhostNetV2 / V1 at equal MACs as measured in busy runs: 1.34-1.44x against 1 ±10%
SLOWER = (1.34, 1.44)


def _timed(id: str = "timed", family: str = "ghostnetv2", *, ci=SLOWER, busy: str = "", clock: str = THREAD_CLOCK,
           busy_margin: float | None = None, tolerance=None, cited: str = "",
           process_margin: float | None = None) -> Claim:
    def measure() -> Measurement:
        return Measurement(measured=(ci[0] + ci[1]) / 2, ci=ci, detail="planted", busy=busy, clock=clock,
                           busy_margin=busy_margin, cited=cited, device="cpu (X, 1 thread)",
                           process_margin=process_margin)

    return Claim(id=id, family=family, source="paper: planted, Table 0", statement="planted", expected=1.0, unit="x",
                 tolerance=tolerance or rel(0.1), measure=measure, timed=True)


def test_a_thread_clock_timing_is_judged_raw_when_quiet_and_a_little_widened_when_busy():
    quiet = evaluate(_timed())[0]
    busy = evaluate(_timed(busy=BUSY))[0]
    for r in (quiet, busy):
        # 1.34-1.44 is outside 1 ±10% (1.28-1.51 widened x1.05): deviates, whatever the machine did
        assert r.verdict is Verdict.DEVIATES and (r.ci_low, r.ci_high) == SLOWER
    assert quiet.busy == "" and quiet.judged == quiet.judged_text == RAW_CI
    assert busy.busy == BUSY and busy.judged == f"widened x{THREAD_BUSY_MARGIN:g}" == "widened x1.05"
    assert busy.judged_text == "widened x1.05, busy"
    assert busy.detail.startswith("machine busy") and "widened x1.05 to 1.28-1.51" in busy.detail
    # a ±10% row can still hold on a busy machine: 0.97-1.03 widened x1.05 is 0.924-1.08
    close = evaluate(_timed(ci=(0.97, 1.03), busy=BUSY))[0]
    assert close.verdict is Verdict.HOLDS and close.judged == "widened x1.05"
    # where the widening decides: 1.06-1.08 holds as measured, straddles 1.1 widened (1.01-1.13)
    assert evaluate(_timed(ci=(1.06, 1.08)))[0].verdict is Verdict.HOLDS
    assert evaluate(_timed(ci=(1.06, 1.08), busy=BUSY))[0].verdict is Verdict.INCONCLUSIVE


def test_a_busy_wall_clock_timing_is_judged_widened_and_says_so():
    quiet = evaluate(_timed(clock=WALL_CLOCK))[0]
    busy = evaluate(_timed(clock=WALL_CLOCK, busy=BUSY))[0]
    assert quiet.verdict is Verdict.DEVIATES and quiet.judged == RAW_CI
    # widened x1.25: 1.07-1.8 straddles 1.1
    assert busy.verdict is Verdict.INCONCLUSIVE and busy.judged == f"widened x{BUSY_MARGIN:g}"
    assert busy.judged_text == f"widened x{BUSY_MARGIN:g}, busy"
    assert f"widened x{BUSY_MARGIN:g} to 1.07-1.8" in busy.detail
    # the row keeps the interval as measured; only the judging widens it
    assert (busy.ci_low, busy.ci_high) == SLOWER


def test_a_measurements_own_busy_margin_widens_a_thread_clock_timing():
    r = evaluate(_timed(ci=(0.82, 0.86), busy=BUSY, busy_margin=1.2))[0]
    assert r.verdict is Verdict.INCONCLUSIVE and r.judged == "widened x1.2"  # 0.68-1.03
    assert evaluate(_timed(ci=(0.82, 0.86), busy_margin=1.2))[0].verdict is Verdict.DEVIATES  # quiet: as measured
    one_sided = evaluate(_timed(ci=(1.12, 1.18), busy=BUSY, tolerance=ABOVE))[0]
    assert one_sided.verdict is Verdict.HOLDS and one_sided.judged == "widened x1.05"


def test_rows_without_an_interval_name_no_judged_interval():
    plain = Claim(id="count", family="espnet", source="paper: planted, Table 0", statement="s", expected=1.0,
                  unit="x", tolerance=rel(0.1), measure=lambda: Measurement(measured=1.02, detail="counted"))
    r = evaluate(plain)[0]
    assert r.verdict is Verdict.HOLDS and r.judged == "" and r.judged_text == ""
    assert evaluate(_timed(cited="unverified figure"))[0].judged == ""


def _results() -> list[ClaimResult]:
    """Four rows, with the seconds their measurements are given to have taken."""
    measured_but_cited = _timed("unverified", "espnet", cited="the expected figure is unverified")
    cited_only = Claim(id="top1", family="fbnet", source="paper: planted, Table 0", statement="s", expected=75.0,
                       unit="% top-1", cited="needs ImageNet")
    planted = [(_timed("fast", "espnet"), 2.25), (measured_but_cited, 1.5), (_timed("slow", "fbnet", busy=BUSY), 40.0),
               (cited_only, 0.0)]
    return [dataclasses.replace(evaluate(c)[0], seconds=s) for c, s in planted]


def test_coverage_counts_measured_and_cited_from_the_rows():
    rows = _results()
    # a row measured beside a cited claim counts as cited, as its verdict does
    assert coverage_line(rows) == "the checkable claims of the seed chapter: 2 measured, 2 cited"
    assert coverage_line(rows[:1]) == "the checkable claims of the seed chapter: 1 measured, 0 cited"
    assert [(f, n, round(s, 2)) for f, n, s in family_seconds(rows)] == [("espnet", 2, 3.75), ("fbnet", 2, 40.0)]


def test_the_markdown_report_gives_each_familys_seconds_and_what_was_judged():
    text = markdown(_results(), [])
    assert "The checkable claims of the seed chapter: 2 measured, 2 cited." in text
    header = next(line for line in text.splitlines() if line.startswith("| family |"))
    assert header.endswith("| seconds |")
    assert "| ESPNet V1 | 0 | 1 | 0 | 0 | 1 | 3.8 |" in text  # 2.25 + 1.5 s
    assert "| FBNet V1 | 0 | 1 | 0 | 0 | 1 | 40.0 |" in text
    assert "| all | 0 | 2 | 0 | 0 | 2 | 43.8 |" in text
    assert "**Judged on**: widened x1.05, busy" in text and f"**Judged on**: {RAW_CI}" in text


def test_the_table_shows_the_judged_interval_coverage_and_family_seconds(cli, monkeypatch):
    planted = [_timed("thread-busy", "espnet", busy=BUSY),
               _timed("wall-busy", "ghostnet", clock=WALL_CLOCK, busy=BUSY),
               Claim(id="top1", family="ghostnet", source="paper: planted, Table 0", statement="s", expected=75.0,
                     unit="% top-1", cited="needs ImageNet")]
    monkeypatch.setattr(claims, "all_claims", lambda: planted)
    result = cli("claims")
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())  # cells may wrap
    assert "the checkable claims of the seed chapter: 2 measured, 1 cited" in out
    assert "judged" in out and "widened x1.05, busy" in out and f"widened x{BUSY_MARGIN:g}, busy" in out
    assert "seconds per family" in out
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "seconds per family" in line)
    family_rows = [line.split() for line in lines[start:] if line.strip().startswith(("espnet", "ghostnet"))]
    assert [row[:4] for row in family_rows] == [["espnet", "1", "1", "0"], ["ghostnet", "2", "1", "1"]]
    assert all(re.fullmatch(r"\d+(\.\d)?", row[4]) for row in family_rows)  # seconds, to a tenth
    assert "2 measured, 1 cited" in result.stderr
    assert ("2 of the 2 rows with an interval were judged on their interval widened, 2 of them timed on a busy "
            "machine") in " ".join(result.stderr.split())


class _Sleeper:
    """A runner whose call waits 50 ms without using the CPU (what a thread that another process
    keeps off the core looks like to the clocks); its own ``step`` reads the wall clock."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def call(self) -> None:
        import time

        time.sleep(0.05)

    def step(self) -> float:
        import time

        start = time.perf_counter()
        self.call()
        return (time.perf_counter() - start) * 1e3


@pytest.mark.timing
def test_a_cpu_step_is_read_on_the_thread_cpu_clock():
    from cnnprof.claims.common import ClockedRunner, clock_of
    from cnnprof.timing import torch_threads

    with torch_threads(1):
        cpu, cuda = ClockedRunner(_Sleeper()), ClockedRunner(_Sleeper("cuda"))
    assert cpu.clock == THREAD_CLOCK and cuda.clock == claims.CUDA_CLOCK
    assert cpu.step() < 25.0  # the 50 ms wait is not on the thread's CPU clock
    assert cuda.step() >= 50.0  # elsewhere the runner's own step
    assert clock_of([cpu, cpu]) == THREAD_CLOCK and clock_of([cpu, cuda]) == WALL_CLOCK
    with torch_threads(2):
        assert ClockedRunner(_Sleeper()).clock == WALL_CLOCK  # other threads' work would be missed


def test_a_ratio_known_to_move_between_processes_is_judged_on_that_spread_quiet_or_busy():
    """The depthwise early / late ratio moved from 1.02 [1.01-1.06] to 0.94 between two quiet runs:
    judged on its own interval it would hold in one and deviate in the other. Widened by the spread
    between processes, both runs straddle 1 (inconclusive), and a ratio well above 1 still holds."""
    first = dict(tolerance=ABOVE, clock=WALL_CLOCK, process_margin=1.10)
    one = evaluate(_timed(ci=(1.007, 1.058), **first))[0]
    two = evaluate(_timed(ci=(0.925, 0.955), **first))[0]
    assert one.verdict == two.verdict == Verdict.INCONCLUSIVE
    assert one.judged == "widened x1.1 between processes" and one.busy == ""
    assert evaluate(_timed(ci=(1.25, 1.35), **first))[0].verdict == Verdict.HOLDS
    busy = evaluate(_timed(ci=(1.25, 1.35), busy=BUSY, **first))[0]
    assert busy.judged == f"widened x1.1 between processes, x{BUSY_MARGIN:g}"


def test_every_claim_family_has_a_title_in_the_report():
    """The Markdown report heads each family with its name: a family added to the claims without one
    ends the report in a KeyError."""
    from cnnprof.claims.document import FAMILY_NAMES

    assert set(claims.FAMILIES) <= set(FAMILY_NAMES)
    assert {c.family for c in claims.all_claims()} <= set(FAMILY_NAMES)
