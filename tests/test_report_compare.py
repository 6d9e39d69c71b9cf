"""The page's comparison of two runs or revisions (``cnnprof report --compare A B``): per configuration
timed in both, the ratio B/A of known medians with its interval, the gate's verdict on the
configuration it measured only, the gate's regressions first, then the largest ratios; names shown
as text. The figures are checked in the data, without a browser, and in the table Chromium draws."""

import pytest
from browser import needs_chromium, opened
from store_data import environment

from cnnprof.store import Store, now_iso
from cnnprof.store.columns import Kind

HOSTILE = "<img src=x onerror=__cnnprofRan(1)>"
# (model, backend): median at A, median at B (None: not timed there)
MEDIANS = {("net_a", "torch"): (10.0, 15.0), ("net_b", "torch"): (20.0, 22.0),
           ("net_b", "onnxruntime"): (8.0, 8.8), ("net_c", "torch"): (30.0, 24.0), (HOSTILE, "torch"): (5.0, 5.0),
           ("net_d", "torch"): (7.0, None)}
# the expected rows, in order: the gate flagged net_b on torch (ratio 1.1) at B, so it comes first
ORDER = [("net_b", "torch", 1.1, "regression"), ("net_a", "torch", 1.5, "pass"), ("net_b", "onnxruntime", 1.1, None),
         (HOSTILE, "torch", 1.0, None), ("net_c", "torch", 0.8, None)]


def _rows(side):
    rows = []
    for (model, backend), medians in MEDIANS.items():
        med = medians[side]
        if med is None:
            continue
        ci = {} if model == HOSTILE else {"latency_ms_ci_low": med * 0.98, "latency_ms_ci_high": med * 1.02}
        rows.append({"model": model, "family": "synthetic", "input": "3x224x224", "batch": 1, "params": 1_000_000,
                     "macs": 50_000_000, "backend": backend, "device": "cpu", "threads": 1, "precision": "fp32",
                     "latency_ms_median": med, "runs": 40, "warnings": "", "error": "", **ci})
    return rows


@pytest.fixture
def two_runs(tmp_path):
    """Run A at revision 0aaa000, run B at 0bbb000 (same machine), and the gate's check at B; run ids."""
    db = tmp_path / "two.db"
    with Store.open(db) as store:
        ids = [store.record("bench", ["cnnprof", "bench"], Kind.PROFILE, _rows(side), environment=environment(rev),
                            started_at=now_iso()) for side, rev in enumerate(("0aaa000", "0bbb000"))]
        gate = [{"model": m, "input": "3x224x224", "verdict": v, "ratio": r, "ci_low": 1.05, "ci_high": 1.15,
                 "p_value": 0.01, "baseline_ms": 20.0, "now_ms": 22.0, "note": ""}
                for m, v, r in (("net_b", "regression", 1.1), ("net_a", "pass", 1.0))]
        store.record("gate-check", ["cnnprof", "gate", "check"], Kind.GATE_CHECK, gate,
                     environment=environment("0bbb000"), started_at=now_iso(),
                     extra={"backend": "torch", "precision": "fp32", "threads": 1, "batch": 1, "device": "cpu"})
    return db, ids


def test_the_comparison_has_each_shared_configuration_its_ratio_interval_and_gate_regressions_first(two_runs):
    from cnnprof.errors import UsageError
    from cnnprof.htmlreport import compare, data

    db, (run_a, run_b) = two_runs
    with Store.open(db, write=False) as store:
        dataset = data.from_store(store)
    for pair in ((str(run_a), str(run_b)), ("0aaa", "0bbb000"), None):  # run ids, revisions, the default
        result = compare.of(dataset, pair)
        got = [(r["model"], r["backend"], round(r["ratio"], 9), r["gate"]) for r in result.rows]
        assert got == ORDER, pair
        assert (result.only_a, result.only_b) == (1, 0)  # net_d: timed at A only
        first = result.rows[0]
        assert (first["a_ms"], first["b_ms"]) == (20.0, 22.0)
        assert first["ratio_low"] == pytest.approx(22.0 * 0.98 / (20.0 * 1.02))
        assert first["ratio_high"] == pytest.approx(22.0 * 1.02 / (20.0 * 0.98))
        assert first["change"] == "slower" and first["gate_ratio"] == 1.1
        assert [r["change"] for r in result.rows] == ["slower", "slower", "slower", None, "faster"]
        hostile = next(r for r in result.rows if r["model"] == HOSTILE)
        assert hostile["ratio_low"] is None and hostile["ratio_high"] is None  # no intervals stored
    assert compare.of(dataset, ("0bbb", "0aaa")).rows[0]["model"] == "net_c"  # the other way: 30/24 first
    for bad, says in (("0ccc", "neither a run id nor a revision"), ("99", "neither"), ("", "neither"),
                      ("0", "starts 2 revisions"), (str(run_b + 1), "has no timed profile rows")):  # the gate's run
        with pytest.raises(UsageError, match=says):
            compare.of(dataset, (bad, "0bbb"))


def test_report_compare_refuses_an_unknown_run_in_one_line(cli, two_runs, tmp_path):
    db, _ = two_runs
    result = cli("report", "--db", str(db), "-o", str(tmp_path / "p.html"), "--compare", "0aaa", "nothing")
    assert result.exit_code == 2 and "'nothing' is neither a run id nor a revision" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.html").exists()


@needs_chromium
def test_the_page_draws_the_comparison_table_in_order_with_names_as_text(cli, two_runs, tmp_path):
    db, (run_a, run_b) = two_runs
    out = tmp_path / "compare.html"
    result = cli("report", "--db", str(db), "-o", str(out), "--compare", str(run_a), str(run_b))
    assert result.exit_code == 0, result.stderr
    with opened(out) as (page, seen):
        heads = page.evaluate("Array.from(document.querySelectorAll('#table-compare thead th'))"
                              ".map(th => th.textContent)")
        cells = page.evaluate("Array.from(document.querySelectorAll('#table-compare tbody tr'))"
                              ".map(tr => Array.from(tr.cells).map(td => td.textContent))")
        rows = [dict(zip(heads, r)) for r in cells]
        assert [(r["model"], r["backend"], r["ratio B/A"], r["gate at B"]) for r in rows] == [
            (m, b, f"{ratio:g}", gate or "-") for m, b, ratio, gate in ORDER]
        assert [r["A median (ms)"] for r in rows] == ["20.00", "10.00", "8.00", "5.00", "30.00"]
        assert rows[0]["ratio low"] == f"{22.0 * 0.98 / (20.0 * 1.02):.4g}"
        assert page.evaluate("document.querySelectorAll('#compare img, #table-compare img').length") == 0
        assert page.text_content("#compare-a").startswith(f"run {run_a} (bench, 0aaa000")
        assert page.evaluate("window.__ran") == [] and seen.dialogs == [] and seen.errors == []
        assert [u for u in seen.requests if not u.startswith("file:")] == []


@needs_chromium
def test_the_selector_draws_the_other_pair_it_offers(cli, two_runs, tmp_path):
    db, _ = two_runs
    out = tmp_path / "reversed.html"
    result = cli("report", "--db", str(db), "-o", str(out), "--compare", "0bbb", "0aaa")  # B/A the other way
    assert result.exit_code == 0, result.stderr
    models = ("Array.from(document.querySelectorAll('#table-compare tbody tr'))"
              ".map(tr => tr.cells[0].textContent + ' ' + tr.cells[1].textContent)")
    with opened(out) as (page, seen):
        offered = page.evaluate("Array.from(document.querySelectorAll('#compare-pick option')).map(o => o.textContent)")
        assert offered == ["revision 0aaa000 against revision 0bbb000", "revision 0bbb000 against revision 0aaa000"]
        assert page.evaluate(models)[0] == "net_c torch"  # 30 / 24 first
        page.select_option("#compare-pick", "1")
        assert page.evaluate(models) == [f"{m} {b}" for m, b, _, _ in ORDER]
        assert page.text_content("#compare-a") == "revision 0aaa000" and page.text_content("#compare-b") == (
            "revision 0bbb000")
        assert page.text_content("#compare-note") == "1 configuration(s) were timed in revision 0aaa000 only."
        assert page.locator("#compare .table-tools").count() == 1  # drawn again, not twice
        assert page.evaluate("window.__ran") == [] and seen.errors == [] and seen.dialogs == []
