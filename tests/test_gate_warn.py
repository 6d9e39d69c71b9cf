"""``gate check --warn R1 --fail R2``: a planted +5% slowdown (stubbed measurements, the same
params and MACs) is a `warning` at --warn 1.03 --fail 1.10: exit 0, the finding in the table and
the markdown the CI workflow publishes; +15% fails (exit 1); without --warn, +5% passes as before;
bad values are one line, exit 2."""

from __future__ import annotations

import pytest
from test_gate import make_baseline, proc, procs, read_markdown_table, record_of, write

from cnnprof.gate import core, stats

NAME = "mobilenetv3_small"


def stub(monkeypatch, level: float, others_cores: float = 0.0) -> None:
    """Every process now times the model at ``level`` times the baseline's (no noise), counts unchanged."""
    from cnnprof.gate import measure as gm

    def fake(models, settings, *, processes=None, **_):
        names = tuple(m.name for m in models)
        k = processes or settings.processes
        run = gm.Run(names, rounds=12, measure_s=0.2, wall_s=1.0, others_cores=others_cores)
        return {n: [proc(3.0 * level, noise=0.0, seed=i) for i in range(k)] for n in names}, [run] * k

    monkeypatch.setattr(core, "measure", fake)
    monkeypatch.setattr(core, "count_models", lambda models: {m.name: (10, 100) for m in models})


@pytest.fixture
def baseline(tmp_path):
    return write(tmp_path / "b.json", make_baseline([record_of(NAME, procs(3.0, 6, seed=1, spread=0.005))]))


def gate(cli, baseline, tmp_path, *options):
    md = tmp_path / "gate.md"
    result = cli("gate", "check", "--baseline", str(baseline), "--no-db", "--processes", "4", "--format", "md",
                 "--output", str(md), *options)
    return result, (read_markdown_table(md.read_text()) if md.exists() else None)


def test_a_planted_5_percent_is_a_warning_and_exits_0(cli, monkeypatch, baseline, tmp_path):
    stub(monkeypatch, 1.05)
    result, table = gate(cli, baseline, tmp_path, "--warn", "1.03", "--fail", "1.10")
    assert result.exit_code == 0, result.output
    (row,) = table
    assert row["verdict"] == "warning" and "slower than --warn 1.03 (fails above 1.1)" in row["note"]
    assert 1.03 < float(row["ratio (normalised) [interval]"].split()[0]) < 1.10
    assert f"warning: 1 of 1 model(s) slower than --warn 1.03: {NAME} (1.0" in result.stderr
    # the defaults (no --warn): +5% passes, as it always did
    result, table = gate(cli, baseline, tmp_path)
    assert result.exit_code == 0 and table[0]["verdict"] == "pass" and "warning" not in result.stderr


def test_above_fail_is_a_regression_and_exits_1(cli, monkeypatch, baseline, tmp_path):
    stub(monkeypatch, 1.15)
    result, table = gate(cli, baseline, tmp_path, "--warn", "1.03", "--fail", "1.10")
    assert result.exit_code == 1 and table[0]["verdict"] == "regression"
    assert "failed the gate" in result.stderr.strip().splitlines()[-1]


def test_decide_warns_only_between_the_two_levels():
    c = stats.Comparison(1.05, 1.04, 1.06, 0.001, "welch-t on process medians", 4, 4)
    assert stats.decide(c, factor=1.10, alpha=0.01, warn=1.03) == stats.WARNING
    assert stats.decide(c, factor=1.10, alpha=0.01, warn=1.06) == stats.PASS
    assert stats.decide(c, factor=1.10, alpha=0.01) == stats.PASS
    assert stats.decide(c, factor=1.04, alpha=0.01, warn=1.03) == stats.REGRESSION
    insignificant = stats.Comparison(1.05, 0.95, 1.15, 0.2, "welch-t on process medians", 4, 4)
    assert stats.decide(insignificant, factor=1.10, alpha=0.01, warn=1.03) == stats.PASS


@pytest.mark.parametrize("options, message", [
    (("--warn", "1.2", "--fail", "1.1"), "--warn must be at least 1.0 and at most --fail (1.1), got 1.2"),
    (("--warn", "0.9"), "--warn must be at least 1.0 and at most --fail (1.1), got 0.9"),
    (("--warn", "nan"), "--warn must be at least 1.0"),
    (("--fail", "0.5"), "--factor/--fail must be at least 1.0"),
    (("--warn", "abc"), "Invalid value for '--warn'"),
])
def test_bad_warn_and_fail_are_one_line_exit_2(cli, baseline, tmp_path, options, message):
    result, _ = gate(cli, baseline, tmp_path, *options)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


@pytest.mark.parametrize("others, busy", [(0.0, False), (1.2, False), (1.5, True), (1.9, True)])
def test_a_check_on_a_busy_machine_says_so(cli, monkeypatch, baseline, tmp_path, others, busy):
    # one timing thread on 2 CPUs: busy when the others leave it less than half a core to spare
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    stub(monkeypatch, 1.0, others_cores=others)
    result, _ = gate(cli, baseline, tmp_path)
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if line.startswith("machine busy")]
    assert bool(said) == busy
    if busy:
        assert f"other processes used {others:.1f} cores" in said[0] and "1 thread(s) of 2 CPUs" in said[0]
