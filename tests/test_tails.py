"""The tail percentiles' upper confidence bounds (timing.stats.upper_rank, tail_upper): the order
statistic for sample counts worked by hand, the exact binomial sums they rest on, MLPerf's
minimum counts below which a row says why in ``latency_tails`` instead, and ``bench``'s JSON rows."""

from __future__ import annotations

import json
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pytest

from cnnprof.rows import Latency, ProfileRow, with_latency
from cnnprof.timing.stats import TAIL_MINIMUMS, summarize, tail_note, tail_upper, upper_rank

USER = str(Path(__file__).with_name("user_model.py"))


def below(n: int, q: Fraction, k: int) -> Fraction:
    """P(Binomial(n, q) < k), exactly."""
    return sum((comb(n, j) * q**j * (1 - q) ** (n - j) for j in range(k)), Fraction(0))


# n = 64, q = 0.9: P(B >= 62) = C(64,2) .01 .9^62 + 64 (.1) .9^63 + .9^64 = .0294 + .0084 + .0012
# = .039 <= .05, and adding P(B = 61) = C(64,3) .001 .9^61 = .067 passes .05: rank 62 (the 3rd
# largest). n = 662, q = 0.99: P(B >= 660) = .0288 + .0086 + .0013 = .039, P(B = 659) = .064: rank
# 660 (again the 3rd largest). n = 1000, q = 0.99: rank 996 (the 5th largest).
@pytest.mark.parametrize("n, q, rank", [(64, "0.9", 62), (662, "0.99", 660), (1000, "0.99", 996),
                                        (29, "0.9", 29), (299, "0.99", 299), (100, "0.9", 96)])
def test_the_upper_rank_is_the_smallest_order_statistic_with_95_percent_coverage(n, q, rank):
    assert upper_rank(n, float(q)) == rank
    exact = Fraction(q)
    assert below(n, exact, rank) >= Fraction(95, 100) > below(n, exact, rank - 1)


@pytest.mark.parametrize("n, q", [(28, 0.9), (298, 0.99), (1, 0.9)])
def test_no_order_statistic_bounds_a_tail_from_too_few_samples(n, q):
    assert upper_rank(n, q) is None  # 1 - q^n < .95: even the largest sample is not a 95% bound


def test_the_bound_is_that_order_statistic_of_the_samples_and_never_below_the_percentile():
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 0.5, size=1000)
    s = summarize(x)
    ordered = np.sort(x)
    assert s.p90_upper == ordered[upper_rank(1000, 0.9) - 1]
    assert s.p99_upper == ordered[995] == tail_upper(list(x), 99)
    assert s.p90 <= s.p90_upper and s.p99 <= s.p99_upper


def test_below_mlperfs_minimums_there_is_no_bound_but_a_note():
    assert TAIL_MINIMUMS == {90: 64, 99: 662}
    x = list(np.linspace(1, 2, 63))  # a p90 bound exists from 29 samples, but MLPerf asks for 64
    assert tail_upper(x, 90) is None and tail_upper(x + [3.0], 90) is not None
    assert tail_upper(list(np.linspace(1, 2, 661)), 99) is None
    assert tail_note(40) == ("p90 and p99 from 40 calls: too few for a bound "
                             "(p90 needs 64, p99 needs 662, --min-runs 662)")
    assert tail_note(64) == "p99 from 64 calls: too few for a bound (needs 662, --min-runs 662)"
    assert tail_note(661).startswith("p99 from 661 calls") and tail_note(662) is None
    assert all("; " not in tail_note(n) for n in (1, 63, 64, 661))  # a row joins its notes with "; "


def _latency(n: int) -> Latency:
    s = summarize(np.linspace(1.0, 2.0, n))
    return Latency(backend="torch", device="cpu", threads=1, batch=1, samples=tuple(np.linspace(1.0, 2.0, n)),
                   median=s.median, mean=s.mean, std=s.std, p10=s.p10, p90=s.p90, p99=s.p99, iqr=s.iqr,
                   min=s.min, ci_low=s.ci_low, ci_high=s.ci_high, p90_upper=s.p90_upper, p99_upper=s.p99_upper)


def test_a_row_carries_the_bounds_or_the_tails_note():
    few = with_latency(ProfileRow(model="m"), _latency(100), macs=None)
    assert few.latency_ms_p90_upper == pytest.approx(1 + 95 / 99) and few.latency_ms_p99_upper is None
    assert "p99 from 100 calls" in few.latency_tails and not few.warnings  # a field, not a warning
    many = with_latency(ProfileRow(model="m"), _latency(700), macs=None)
    assert many.latency_ms_p99_upper is not None and many.latency_tails == ""


def test_bench_json_rows_carry_the_tail_bounds_or_the_note(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("bench", f"{USER}:tiny_net", "--min-time", "0", "--in-process", "--format", "json", "--no-save", "--no-db")
    few = json.loads(cli(*args, "--min-runs", "40").stdout)[0]
    assert few["runs"] == 40 and few["latency_ms_p90_upper"] is None and few["latency_ms_p99_upper"] is None
    assert few["latency_tails"].startswith("p90 and p99 from 40 calls: too few for a bound")
    assert "calls: too few" not in few["warnings"]
    result = cli(*args, "--min-runs", "662")
    assert result.exit_code == 0, result.stderr
    many = json.loads(result.stdout)[0]
    assert many["runs"] == 662 and many["latency_tails"] == ""
    assert many["latency_ms_p90"] <= many["latency_ms_p90_upper"] <= many["latency_ms_p99_upper"]
    assert many["latency_ms_p99"] <= many["latency_ms_p99_upper"]


def test_min_runs_is_bounded(cli):
    result = cli("bench", f"{USER}:tiny_net", "--min-runs", "100001")
    assert result.exit_code == 2 and "--min-runs" in result.output
