"""benchmarks/gate_points.py: the operating-point table's statistics (exact binomial intervals,
the false-alarm bound) and its judging of stored comparisons, on a database written here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def points():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("gate_points_under_test", BENCH / "gate_points.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_clopper_pearson_and_the_upper_bound_match_the_beta_quantiles(points):
    # scipy.stats.beta.ppf: (0.025, 8, 2), (0.975, 9, 1), (0.95, 1, 300), (0.95, 4, 297), (0.975, 1, 9)
    assert points.clopper_pearson(8, 9) == pytest.approx((0.517503485, 0.997190863), abs=1e-6)
    assert points.upper_bound(0, 300) == pytest.approx(0.009936082, abs=1e-7)  # <= 1% needs about 300
    assert points.upper_bound(3, 300) == pytest.approx(0.025641393, abs=1e-7)
    assert points.clopper_pearson(0, 9) == pytest.approx((0.0, 0.336267117), abs=1e-6)
    assert points.clopper_pearson(5, 5)[1] == 1.0


def test_the_table_counts_each_factor_from_the_stored_comparisons(points, tmp_path):
    con = points.connect(tmp_path / "t.db")
    con.execute("INSERT INTO trials VALUES (1, '2026-01-01T00:00:00Z', 'default', 1.03, 0.01, 60, 2, 'h')")
    rows = {"A/A": [(1.00, 0.5, "pass"), (1.04, 0.001, "regression"), (0.99, 0.3, "pass")],
            "+5%": [(1.06, 0.001, "regression"), (1.04, 0.02, "pass"), (1.07, 0.001, "regression")]}
    for i, (label, comparisons) in enumerate(rows.items(), 1):
        con.execute("INSERT INTO checks VALUES (?, 1, ?, 40.0, 2.5, 1.0, 4, 0)", (i, label))
        for j, (ratio, p, verdict) in enumerate(comparisons):
            con.execute("INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, 4, ?, '')",
                        (i, f"m{j}", ratio, ratio * 0.98, ratio * 1.02, p, verdict, ratio))
    con.commit()
    text = points.table(con, "default", 1.03)
    aa = next(line for line in text.splitlines() if line.startswith("| A/A |")).split(" | ")
    five = next(line for line in text.splitlines() if line.startswith("| +5% |")).split(" | ")
    # columns: label, n, at 1.02, 1.03 (the stored verdicts), 1.04, 1.05, 1.10, ratios
    assert aa[1] == "3" and aa[2].startswith("1/3,") and aa[3].startswith("1/3,") and aa[4].startswith("0/3,")
    assert "rule of three: 100.0%" in aa[4] and aa[5].startswith("0/3,")
    assert five[2].startswith("2/3 = 67%") and five[3].startswith("2/3 = 67%") and five[4].startswith("2/3 = 67%")
    assert five[5].startswith("2/3 = 67%") and five[6].startswith("0/3 = 0%")
    assert "1 trial(s), 2 checks of 3 models" in text and "load average at each check's start 2.5..2.5" in text


def test_the_conditions_table_splits_by_the_others_cpu_use_and_counts_alarms_per_baseline(points, tmp_path):
    con = points.connect(tmp_path / "t.db")
    for trial in (1, 2):
        con.execute("INSERT INTO trials VALUES (?, '2026-01-01T00:00:00Z', 'default', 1.03, 0.01, 60, 2, 'h')",
                    (trial,))
    # (check id, trial, label, others' cores, [(ratio, p)])
    checks = [(1, 1, "A/A", 0.1, [(1.04, 0.001), (1.05, 0.001), (1.00, 0.5)]),  # two alarms, one baseline
              (2, 2, "A/A", 0.2, [(1.00, 0.5), (1.04, 0.02), (0.99, 0.4)]),  # p too high: no alarm
              (3, 2, "A/A", 1.7, [(1.04, 0.001), (1.00, 0.5), (1.01, 0.3)]),
              (4, 2, "+5%", 0.3, [(1.06, 0.001), (1.05, 0.001), (1.02, 0.001)]),
              (5, 1, "+5%", 1.0, [(1.06, 0.001), (1.06, 0.5), (1.07, 0.001)])]
    for cid, trial, label, others, comparisons in checks:
        con.execute("INSERT INTO checks VALUES (?, ?, ?, 30.0, 1.0, ?, 4, 0)", (cid, trial, label, others))
        for j, (ratio, p) in enumerate(comparisons):
            con.execute("INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, 'x', 4, ?, '')",
                        (cid, f"m{j}", ratio, ratio * 0.98, ratio * 1.02, p, ratio))
    con.commit()
    lines = {line.split(" | ")[0].lstrip("| ").split(" (")[0]: line.split(" | ")
             for line in points.table(con, "default", 1.03).splitlines() if line.startswith("| ")}
    assert lines["quiet"][1].startswith("2/6,") and lines["quiet"][2] == "2, 2"
    assert lines["quiet"][3].startswith("2/3 = 67%")
    assert lines["shared"][1] == "-" and lines["shared"][3].startswith("2/3 = 67%")
    assert lines["loaded"][1].startswith("1/3,") and lines["loaded"][2] == "1, 1" and lines["loaded"][3] == "- |"
    assert lines["all"][1].startswith("3/9,") and lines["all"][2] == "2, 2" and lines["all"][3].startswith("4/6 = 67%")
