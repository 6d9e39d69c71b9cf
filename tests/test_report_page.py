"""What ``cnnprof report``'s page says, checked against the rows it draws: the compound-scaling
curves (the same from the database and from a report file, equal to ``scale``'s own figures), the
Pareto panels' model names (counted from the points drawn), a results table that fits its box, and
the runtime versions stored with the rows."""

import json
import re

import pytest
from browser import needs_chromium, opened
from store_data import environment

PHI0_MACS = 385_800_000
SCALE_ROWS = [  # as `cnnprof scale --phi 3 --latency --backend onnxruntime --precision fp32,int8` writes them
    {"base": "efficientnet_b0", "phi": float(phi), "depth_mult": 1.2 ** phi, "width_mult": 1.1 ** phi,
     "res_mult": 1.15 ** phi, "resolution": round(224 * 1.15 ** phi), "channels": [32], "repeats": [1],
     "params": int(5_288_548 * 1.5 ** phi), "macs": macs, "macs_ratio": macs / PHI0_MACS,
     "two_pow_phi": 2.0 ** phi, "compound_pow_phi": round(1.92027 ** phi, 5), "closest": "", "closest_width": None,
     "closest_depth": None, "closest_resolution": 224, "closest_macs": None,
     "latency_ms_median": 10.0 * 2.1 ** phi * (0.5 if precision == "int8" else 1.0), "latency_ms_iqr": 0.1,
     "latency_warnings": "", "backend": "onnxruntime", "precision": precision}
    for phi, macs in enumerate([PHI0_MACS, 808_972_300, 1_693_117_000, 3_250_000_000])
    for precision in ("fp32", "int8")
]


def _page_data(path):
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script id="cnnprof-data" type="application/json">(.*?)</script>', text,
                                re.S).group(1))


def _dataset(data, name):
    columnar = data["datasets"][name]
    return [dict(zip(columnar["cols"], row)) for row in columnar["rows"]]


def _report(cli, tmp_path, *args):
    out = tmp_path / f"page{len(list(tmp_path.glob('page*.html')))}.html"
    result = cli("report", *args, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def test_compound_scaling_is_the_same_from_the_database_and_from_a_file_and_equals_scales_figures(cli, tmp_path):
    from cnnprof.store import Store, now_iso
    from cnnprof.store.columns import Kind

    db = tmp_path / "scale.db"
    with Store.open(db) as store:
        store.record("scale", ["cnnprof", "scale", "--phi", "3"], Kind.SCALE, SCALE_ROWS,
                     environment=environment("0abc000"), started_at=now_iso())
    (tmp_path / "scale.json").write_text(json.dumps(SCALE_ROWS))
    expected = {}
    for r in SCALE_ROWS:
        expected[(r["phi"], "MACs built")] = r["macs"]
        expected[(r["phi"], "φ=0 MACs × 2^φ")] = PHI0_MACS * r["two_pow_phi"]
        expected[(r["phi"], "φ=0 MACs × (α·β²·γ²)^φ")] = PHI0_MACS * r["compound_pow_phi"]
    for source in (["--db", str(db)], [str(tmp_path / "scale.json")]):
        data = _page_data(_report(cli, tmp_path, *source))
        curves = _dataset(data, "scaling")
        drawn = {(d["phi"], d["curve"]): d["macs"] for d in curves}
        assert len(curves) == len(drawn) == 12, source  # 4 φ x 3 curves, one point each (not one per precision)
        assert drawn.keys() == expected.keys(), source
        for key, macs in expected.items():
            assert drawn[key] == pytest.approx(macs, rel=1e-9), (source, key)
        assert drawn[(3.0, "φ=0 MACs × 2^φ")] == pytest.approx(3.0864e9)  # 385.8 M x 8, not 3.25 G x 8
        latency = _dataset(data, "scaling_latency")
        assert sorted((d["series"], d["phi"]) for d in latency) == sorted(
            (f"efficientnet_b0 onnxruntime {r['precision']}", r["phi"]) for r in SCALE_ROWS)


def _profile_rows(models, backend, cpu):
    env = {**environment("0abc000", cpu=cpu), "openvino": "2026.4.1"}
    return [{"model": m, "family": "synthetic", "input": "3x224x224", "batch": 1, "params": 1_000_000 * (i + 1),
             "macs": 50_000_000 * (i + 1), "backend": backend, "device": "cpu", "threads": 1, "precision": "fp32",
             "latency_ms_median": 1.0 + i * (0.5 if backend == "torch" else 0.3), "latency_ms_p90": 2.0 + i,
             "latency_ms_iqr": 0.1, "runs": 40,
             "warnings": "noisy: IQR is 31% of the median; busy: load 3.1 on 2 cores", "error": "",
             "environment": env} for i, m in enumerate(models)], env


@pytest.fixture(scope="module")
def labelled_db(tmp_path_factory):
    """Two machines: on the first, 15 models on torch and 1 on onnxruntime (16 points drawn per
    panel); on the second, 15 and 11 (26 drawn)."""
    from cnnprof.store import Store, now_iso
    from cnnprof.store.columns import Kind

    db = tmp_path_factory.mktemp("labels") / "labels.db"
    models = [f"model_with_a_long_name_{i:02d}" for i in range(15)]
    with Store.open(db) as store:
        for cpu, onnx in (("Test CPU 0 [avx2]", 1), ("Test CPU 1 [avx2]", 11)):
            for backend, names in (("torch", models), ("onnxruntime", models[:onnx])):
                rows, env = _profile_rows(names, backend, cpu)
                store.record("bench", ["cnnprof", "bench"], Kind.PROFILE, rows, environment=env,
                             started_at=now_iso())
    return db


def test_the_page_names_the_runtime_versions_stored_with_the_rows(cli, labelled_db, tmp_path):
    rows, _ = _profile_rows(["a_model"], "torch", "Test CPU 7 [avx2]")
    (tmp_path / "bench.json").write_text(json.dumps(rows))
    for source, machines in ((["--db", str(labelled_db)], 2), ([str(tmp_path / "bench.json")], 1)):
        table = _page_data(_report(cli, tmp_path, *source))["tables"]["environment"]
        names = [c[0] for c in table["columns"]]
        found = [dict(zip(names, row)) for row in table["rows"]]
        assert len(found) == machines, source
        for env in found:
            assert (env["torch"], env["onnxruntime"], env["openvino"], env["python"]) == (
                "2.13.0+cpu", "1.32.0", "2026.4.1", "3.11.7"), source
            assert env["revisions"] == "0abc000" and re.match(r"Test CPU \d \[avx2\]", env["cpu"])


@pytest.fixture(scope="module")
def labelled_page(labelled_db, tmp_path_factory):
    from typer.testing import CliRunner

    from cnnprof.cli import app

    out = tmp_path_factory.mktemp("labelled") / "report.html"
    result = CliRunner().invoke(app, ["report", "--db", str(labelled_db), "--output", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


@needs_chromium
def test_pareto_panels_name_the_points_while_they_draw_few(labelled_page):
    with opened(labelled_page) as (page, seen):
        labels = [page.evaluate(f"""Array.from(document.querySelectorAll(
            '#chart-pareto-{i} svg g.mark-text.role-mark text'), t => t.textContent)""") for i in (0, 1)]
    assert seen.errors == [] and seen.console_errors() == []
    # 16 points drawn in each panel of the first machine: all named (2 panels); 26 on the second: none
    assert len(labels[0]) == 32 and len(set(labels[0])) == 15, labels[0]
    assert labels[1] == []


@needs_chromium
def test_the_results_table_fits_its_box_or_scrolls_in_it(labelled_page):
    with opened(labelled_page, width=1342) as (page, seen):
        fit = page.evaluate("""() => { const t = document.getElementById('table-results');
            return {table: t.scrollWidth, box: t.parentNode.clientWidth, page: document.documentElement.scrollWidth,
                    view: window.innerWidth}; }""")
        assert fit["table"] <= fit["box"] and fit["page"] <= fit["view"], fit  # the table fits in its box
        env_text = page.locator("section#environment").inner_text()
        page.set_viewport_size({"width": 700, "height": 900})
        narrow = page.evaluate("""() => { const t = document.getElementById('table-results'), w = t.parentNode;
            w.scrollLeft = 10000;
            const first = t.querySelector('tbody td').getBoundingClientRect(), box = w.getBoundingClientRect();
            return {table: t.scrollWidth, box: w.clientWidth, page: document.documentElement.scrollWidth,
                    view: window.innerWidth, scrolled: w.scrollLeft, first: first.left - box.left}; }""")
        # narrower than the table: the table scrolls inside its box, the page does not, the model stays in view
        assert narrow["table"] > narrow["box"] and narrow["scrolled"] > 0 and narrow["page"] <= narrow["view"], narrow
        assert abs(narrow["first"]) < 2, narrow
        assert "warnings" not in page.locator("#table-results th").all_inner_texts()  # the same on every row
        page.click("section#results details.columns summary")
        page.check('section#results input[data-column="warnings"]')  # the picker shows it again
        headers = page.locator("#table-results th").all_inner_texts()
    assert seen.errors == [] and seen.console_errors() == []
    assert "warnings" in headers and "2.13.0+cpu" in env_text and "2026.4.1" in env_text
