"""``cnnprof report``: the page, checked in a real browser (headless Chromium): every section shown,
charts drawn, no console error, no request leaving the file, a screenshot that is not blank; and
``cnnprof history``.

The browser is Debian's ``chromium`` (``.ci/run`` installs it when missing), driven with
Playwright's Python package."""

import json
import re
from pathlib import Path

import pytest
from browser import CHROMIUM, FLAGS
from store_data import fill

USER = str(Path(__file__).with_name("user_model.py"))
SECTIONS = ["results", "pareto", "scaling", "roofline", "claims", "history", "runs"]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    db = tmp_path_factory.mktemp("report") / "cnnprof.db"
    fill(db, revisions=4, machines=2)
    return db


@pytest.fixture(scope="module")
def page_file(filled, tmp_path_factory):
    from typer.testing import CliRunner

    from cnnprof.cli import app

    out = tmp_path_factory.mktemp("page") / "report.html"
    result = CliRunner().invoke(app, ["report", "--db", str(filled), "--output", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def test_the_page_is_self_contained(page_file):
    text = page_file.read_text()
    assert len(text.encode()) < 5e6
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    # nothing is loaded from elsewhere: no src/href to another place, no stylesheet link, no import
    assert not re.search(r"<script[^>]*\bsrc=", text)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)  # the page outside its scripts
    assert not re.search(r"""<(img|link|iframe|object|embed)\b""", markup)
    assert not re.search(r"""url\(\s*['"]?(https?:|//)""", text) and "@import" not in markup
    data = json.loads(re.search(r'<script id="cnnprof-data" type="application/json">(.*?)</script>', text,
                                re.S).group(1))
    assert {c["target"] for c in data["charts"]} >= {"chart-pareto-0", "chart-pareto-1", "chart-scaling",
                                                      "chart-roofline-0", "chart-history"}
    assert len(data["tables"]["results"]["rows"]) == 6 * 2 * 2 * 2  # models x backends x batches x machines


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`.ci/run` installs it)")
def test_the_page_in_a_real_browser(page_file, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    import numpy as np
    from matplotlib import image

    console, failed, requests = [], [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: failed.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_selector("body[data-charts-rendered]", timeout=60_000)
            for sid in SECTIONS:
                assert page.locator(f"section#{sid}").is_visible(), sid
                assert page.locator(f"section#{sid} h2").inner_text()
            charts = page.locator("div.chart")
            assert charts.count() >= 5
            for i in range(charts.count()):
                chart = charts.nth(i)
                assert chart.get_attribute("data-rendered") == "true", chart.get_attribute("id")
                assert chart.locator("svg .mark-symbol path, svg .mark-line path, svg .mark-text text").count() > 0
            # the gate's regression is marked on the history chart (ghostnet_100 is shown first)
            assert page.locator("#chart-history svg").inner_html().count("regression") >= 1
            rows = page.locator("#table-results tbody tr")
            assert rows.count() == 48
            # sort by median latency, descending: the first row is the slowest
            header = page.locator("#table-results th", has_text="median (ms)")
            header.click()
            header.click()
            assert header.get_attribute("aria-sort") == "descending"
            headers = page.locator("#table-results th").all_inner_texts()
            # several machines: the machine column comes second, beside the model
            assert headers[:2] == ["model", "machine"]
            col = next(i for i, h in enumerate(headers, 1) if "median (ms)" in h)
            medians = [float(t) for t in page.locator(f"#table-results tbody tr td:nth-child({col})").all_inner_texts()]
            assert medians == sorted(medians, reverse=True)
            page.fill("input.filter", "ghostnet onnxruntime")
            visible = [r for r in page.locator("#table-results tbody tr").all() if r.is_visible()]
            assert len(visible) == 4
            claims = page.locator("#table-claims tbody tr")
            assert claims.count() == 6 and "deviates" in page.locator("#table-claims").inner_text()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            page.emulate_media(media="print")
            page.pdf(path=str(tmp_path / "report.pdf")) if hasattr(page, "pdf") else None
        finally:
            browser.close()
    assert failed == [] and [m for m in console if m[0] == "error"] == []
    assert requests and all(u == page_file.as_uri() for u in requests), set(requests)
    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[0] > 2000  # the whole page, sections one under another
    ink = (pixels.mean(axis=2) < 0.9).mean()  # share of pixels that are not (near) white
    assert ink > 0.03 and len(np.unique((pixels * 255).astype(int).reshape(-1, 3), axis=0)) > 50
    assert (tmp_path / "report.pdf").stat().st_size > 50_000


def test_a_report_from_csv_and_json_files(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("bench", f"{USER}:tiny_net", "--min-time", "0", "--min-runs", "3", "-f", "csv", "-o", "b.csv",
                 "--no-db", "--no-save")
    assert result.exit_code == 0, result.stderr
    (tmp_path / "claims.json").write_text(json.dumps([{"id": "x.claim", "family": "x", "source": "s", "statement": "s",
                                                       "expected": 1, "measured": 1, "tolerance": "1%",
                                                       "verdict": "holds", "detail": "", "unit": "x"}]))
    result = cli("report", "b.csv", "claims.json", "-o", "r.html")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "r.html").read_text()
    assert "tiny_net" in text and "x.claim" in text
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    result = cli("report", "junk.csv", "-o", "r.html")
    assert result.exit_code == 2 and "not a cnnprof report row" in result.stderr


def test_history_lists_the_revisions_and_the_gates_flag(cli, filled, tmp_path):
    result = cli("history", "ghostnet_100", "--db", str(filled), "--backend", "torch", "--batch", "1", "-f", "json",
                 "--plot", str(tmp_path / "h.png"))
    assert result.exit_code == 0, result.stderr
    lines = json.loads(result.stdout)
    assert [ln["revision"] for ln in lines if "CPU 0" in ln["machine"]] == ["0abc000", "0abc001", "0abc002", "0abc003"]
    last = [ln for ln in lines if ln["revision"] == "0abc003" and "CPU 0" in ln["machine"]][0]
    assert last["gate"] == "regression" and last["change"] > 1.2  # made 30% slower there
    assert "the gate flagged: 0abc003 regression" in result.stderr and (tmp_path / "h.png").stat().st_size > 10_000
    result = cli("history", "no_such_model", "--db", str(filled))
    assert result.exit_code == 2 and "no timed rows of 'no_such_model'" in result.stderr
