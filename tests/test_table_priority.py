"""Tables that keep the answer on a narrow terminal: prose goes first, then secondary statistics;
never the columns that tell rows apart, the verdict's qualifier, or warnings a row has (shortened to
their kinds instead); names and numbers never cut, wide (CJK) characters included. Rendered at a
fixed width from stored rows: nothing is timed."""

from __future__ import annotations

import io

import pytest

from cnnprof.report import rich_table
from cnnprof.rows import Note, Notes, ProfileRow

NOISY = "noisy: IQR is 197% of the median; machine busy: other processes used 1.6 of 2 cores while timing"


def render(records, columns, width: int) -> str:
    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(rich_table(records, columns, title="t", width=width))
    return console.export_text()


def headers(text: str) -> str:
    return " ".join(text.split())  # headers may wrap at their spaces: compare words


def bench_records():
    base = dict(device="cpu", threads=1, batch=1, latency_ms_p90=2.5, latency_ms_iqr=0.2, runs=200,
                latency_ms_ci_low=1.9, latency_ms_ci_high=2.1, throughput_per_s=495.0, gmacs_per_s=120.0,
                setup_s=0.8, parity_max_abs=1e-6, parity_sqnr_db=120.0, parity_top1_agreement=1.0,
                peak_memory_bytes=40_000_000)
    return [
        {**base, "model": "efficientnet_b0", "backend": "torch", "precision": "fp32", "latency_ms_median": 2.02,
         "latency_ms_iqr": 3.98, "warnings": NOISY},
        {**base, "model": "efficientnet_b0", "backend": "onnxruntime", "precision": "int8",
         "latency_ms_median": 1.10, "warnings": ""},
    ]


@pytest.mark.parametrize("width", [80, 120, 200])
def test_a_row_with_a_warning_keeps_its_warnings_column(width):
    from cnnprof.cli.bench import COLUMNS

    text = render(bench_records(), COLUMNS, width)
    assert "warnings" in text and "noisy" in text and "machine busy" in text
    for name in ("efficientnet_b0", "onnxruntime", "int8", "fp32", "2.02 ms"):
        assert name in text
    assert max(len(line) for line in text.splitlines()) <= width


def test_warnings_shrink_to_their_kinds_when_the_prose_does_not_fit():
    from cnnprof.cli.bench import COLUMNS

    text = render(bench_records(), COLUMNS, 80)
    assert "noisy, machine busy" in text and "197%" not in text  # kinds, the detail in --format csv
    assert "left out" in text  # and the caption says what went


@pytest.mark.parametrize("width", [80, 120])
def test_history_keeps_precision(width):
    from cnnprof.cli.history import COLUMNS

    rows = [{"revision": "abc1234", "first_seen": "2026-12-01 10:00", "machine": "ci-runner", "backend": "onnxruntime",
             "precision": p, "batch": 1, "threads": 1, "latency_ms_median": ms, "change": 1.01, "runs": 3, "rows": 3,
             "source": "bench", "gate": "pass", "gate_ratio": 1.01, "note": "a long note about where this came from"}
            for p, ms in (("fp32", 3.2), ("int8", 1.4))]
    text = render(rows, COLUMNS, width)
    assert "precision" in text and "fp32" in text and "int8" in text


def test_history_shows_the_gate_ratio_as_a_ratio():
    """The gate's ratio reads as gate check prints it (a ratio), not as the bare number 1."""
    from cnnprof.cli.history import COLUMNS

    row = {"revision": "abc1234", "machine": "ci", "backend": "torch", "precision": "fp32", "batch": 1,
           "threads": 1, "latency_ms_median": 3.2, "gate": "pass", "gate_ratio": 1.0}
    assert "1.00x" in render([row], COLUMNS, 200)


def test_scale_keeps_params_and_macs_at_80():
    from cnnprof.cli.scale import COLUMNS

    rows = [{"phi": phi, "depth_mult": 1.2 ** phi, "width_mult": 1.1 ** phi, "res_mult": 1.15 ** phi,
             "resolution": 224 + 32 * phi, "channels_text": "32,16,24,40,80,112,192,320,1280",
             "repeats_text": "1,2,2,3,3,4,1", "params": 5_288_548 * (1 + phi), "macs": 385_800_000 * 2 ** phi,
             "macs_ratio": 2.0 ** phi, "two_pow_phi": 2.0 ** phi, "compound_pow_phi": 1.92 ** phi,
             "closest_text": f"efficientnet_b{phi} (within 3%)"} for phi in range(3)]
    text = headers(render(rows, COLUMNS, 80))
    assert " params " in f" {text} " and " MACs " in f" {text} "
    assert "5.29M" in text and "385.80M" in text and "1.54G" in text


def test_errata_wide_characters_are_not_cut():
    from cnnprof.claims.errata import errata
    from cnnprof.cli.claims import ERRATA_COLUMNS

    records = [e.to_dict() if hasattr(e, "to_dict") else e for e in errata()]
    assert any("和" in str(r.get("seed_text")) for r in records)
    for width in (80, 120, 200):
        assert "v=-005" in render(records, ERRATA_COLUMNS, width)


@pytest.mark.parametrize("width", [80, 120])
def test_gate_check_keeps_the_verdicts_qualifier(width):
    from cnnprof.cli.gate import CHECK_COLUMNS

    rows = [{"model": m, "input": "1x3x224x224", "baseline_ms": 2.0, "now_ms": 2.1, "ratio_ci": "1.05x [0.91x, 1.22x]",
             "p_value": 0.31, "verdict": "pass", "note": "inconclusive: the interval is wider than the threshold"}
            for m in ("efficientnet_b0", "mobilenetv3_small")]
    text = render(rows, CHECK_COLUMNS, width)
    assert "inconclusive" in text and "note" in text


def test_compare_names_its_ratio_columns():
    from cnnprof.cli.compare import wide, with_ratios

    rows = [ProfileRow(model=m, input="1x3x224x224", backend=b, precision="fp32", device="cpu", params=p, macs=p * 80,
                       latency_ms_median=ms)
            for m, p in (("efficientnet_b0", 5e6), ("ghostnet", 5.2e6)) for b, ms in (("torch", 3.0), ("openvino", 2.0))]
    records, columns = wide(rows, with_ratios(rows), ["torch", "openvino"])
    ratios = [c.header for c in columns if c.field.endswith("_ratio")]
    assert len(ratios) == 4 and len(set(ratios)) == 4 and not any(h.startswith("/") for h in ratios)
    text = render(records, columns, 200)  # wide enough for every header on one line
    assert all(h in text for h in ratios)  # every ratio shown says what it divides


@pytest.mark.parametrize("width", [100, 120])
def test_compare_keeps_every_latency_ratio_with_warnings_at_narrow_widths(width):
    """compare's answer is the latency ratio to the first model: on a narrow terminal the count
    ratios and the medians go before it, even beside a warnings column that cannot shrink."""
    from cnnprof.cli.compare import wide, with_ratios

    noisy = Notes([Note("noisy", "noisy: IQR 40%"), Note("machine busy", "machine busy: load")])
    rows = [ProfileRow(model=m, input="1x3x224x224", backend=b, precision="fp32", device="cpu", params=p,
                       macs=p * 80, latency_ms_median=ms, warnings=noisy)
            for m, p in (("espnetv2_200", 3.5e6), ("ghostnet_100", 5.2e6))
            for b, ms in (("torch", p / 1e6), ("onnxruntime", p / 2e6))]
    records, columns = wide(rows, with_ratios(rows), ["torch", "onnxruntime"])
    text = headers(render(records, columns, width))
    left_out = text.split("left out", 1)[1] if "left out" in text else ""
    assert "torch / first" not in left_out and "onnxruntime / first" not in left_out, left_out
    assert text.count("1.49x") == 2 and "noisy" in text, text  # ghostnet / espnetv2 on each backend


@pytest.mark.parametrize("width", [80, 100])
def test_claims_keep_their_verdicts_at_narrow_widths(width):
    from cnnprof.cli.claims import COLUMNS

    rows = [{"id": f"ghostnet-claim-{i}", "verdict_text": "holds on cpu (Intel Xeon Processor, 1 thread)",
             "expected_text": "1.5x", "measured_text": "1.62x", "interval_text": "1.51x to 1.70x",
             "tolerance": "> expected", "statement": "a ghost module costs about 1/s of the convolution it replaces"}
            for i in range(3)]
    text = headers(render(rows, COLUMNS, width))
    assert "verdict" in text and text.count("holds") == 3, text


def test_an_empty_column_left_out_is_not_named():
    from cnnprof.report import Column

    rows = [{"model": "m", "median": 1.0, "note": ""}, {"model": "n", "median": 2.0, "note": ""}]
    columns = [Column("model", "model"), Column("median", "median", "ms"), Column("note", "annotations-of-this-row")]
    assert "left out" not in headers(render(rows, columns, 30))


def test_the_fastest_table_carries_every_warning_of_its_row():
    from cnnprof.bench import fastest
    from cnnprof.cli.timed import FASTEST_COLUMNS

    noisy = Notes([Note("noisy", "noisy: IQR is 153% of the median"), Note("machine busy", "machine busy: load")])
    rows = [ProfileRow(model="m", backend="torch", precision="fp32", device="cpu", latency_ms_median=10.0),
            ProfileRow(model="m", backend="onnxruntime", precision="int8", device="cpu", latency_ms_median=1.6,
                       warnings=noisy)]
    (best,) = fastest(rows)
    assert best.warnings.kinds() == ["noisy", "machine busy"]
    text = render([best.to_dict()], FASTEST_COLUMNS, 80)
    assert "noisy" in text and "machine busy" in text


def test_bench_says_noisy_rows_on_stderr(cli, tmp_path, monkeypatch):
    import cnnprof.bench

    monkeypatch.chdir(tmp_path)
    noisy = Notes([Note("noisy", "noisy: IQR is 153% of the median")])

    def fake_rows(targets, **kw):
        yield ProfileRow(model="tiny", backend="torch", precision="fp32", device="cpu", latency_ms_median=2.0,
                         warnings=noisy)
        yield ProfileRow(model="tiny", backend="onnxruntime", precision="fp32", device="cpu", latency_ms_median=1.0)

    monkeypatch.setattr(cnnprof.bench, "bench_rows", fake_rows)
    result = cli("bench", "mobilenetv3_small", "--backend", "torch,onnxruntime", "--no-save", "--no-db")
    assert result.exit_code == 0, result.stderr
    assert "warning: tiny (torch fp32, batch 1): noisy: IQR is 153% of the median" in result.stderr
    assert "onnxruntime fp32, batch 1)" not in result.stderr  # a row without warnings says nothing
