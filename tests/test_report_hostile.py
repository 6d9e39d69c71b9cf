"""Model names that are HTML or script in ``cnnprof report``'s page: stored in a results database,
drawn by the command, opened in Chromium. Nothing a name holds may run, and the page must still show
its tables and charts with every name as text."""

import json
import re

import pytest
from browser import drawn, needs_chromium, opened
from store_data import fill

# Each payload records itself if it ever runs (the hook in tests/browser.py, or a dialog).
NAMES = [
    "</script><script>__cnnprofRan('close')</script>",
    "<!--<script>",
    "<img src=x onerror=\"__cnnprofRan('img')\">",
    "<svg onload=alert('svg')>",
    "\"><b onmouseover=alert('attr')>x</b>",
    "line\u2028sep\u2029para",
    "ghostnet_100",
]
CPU = "<img src=x onerror=\"__cnnprofRan('cpu')\"> CPU <!--<script>"  # the machine's label holds it too


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory):
    from typer.testing import CliRunner

    from cnnprof.cli import app

    folder = tmp_path_factory.mktemp("hostile")
    fill(folder / "h.db", revisions=2, machines=1, models=NAMES, cpus=[CPU])
    out = folder / "report.html"
    result = CliRunner().invoke(app, ["report", "--db", str(folder / "h.db"), "--output", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def test_the_inlined_data_holds_no_markup_and_reads_back_as_stored(hostile_page):
    text = hostile_page.read_text(encoding="utf-8")
    found = re.search(r'<script id="cnnprof-data" type="application/json">(.*?)</script>', text, re.S)
    data = found.group(1)
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in data, repr(raw)
    assert text.count("</script>") == 3  # the data, the chart library, the page's script: nothing closes early
    models = [row[0] for row in json.loads(data)["tables"]["results"]["rows"]]
    assert set(models) == set(NAMES)


@needs_chromium
def test_hostile_model_names_run_nothing_and_show_as_text(hostile_page):
    with opened(hostile_page, wait_for_charts=False) as (page, seen):
        ok = drawn(page, seen, 60.0)
        ran = page.evaluate("window.__ran")
        state = page.evaluate("""() => ({
            cells: Array.from(document.querySelectorAll('#table-results tbody tr td:first-child'),
                              td => td.textContent),
            machines: Array.from(document.querySelectorAll('#table-environment tbody tr td:first-child'),
                                 td => td.textContent),
            headings: Array.from(document.querySelectorAll('section#pareto h3'), h => h.textContent),
            gate: Array.from(document.querySelectorAll('#table-gate tbody tr td:first-child'), td => td.textContent),
            elements: document.querySelectorAll('main img, main b, [onerror], [onload], [onmouseover]').length,
            charts: Array.from(document.querySelectorAll('div.chart'), el => el.getAttribute('data-rendered')),
            labels: Array.from(document.querySelectorAll('#chart-pareto-0 svg g.mark-text.role-mark text'),
                               t => t.textContent),
            options: Array.from(document.querySelectorAll('#chart-history select option'), o => o.textContent),
        })""")
        tips = []  # the tooltip of each Pareto point (vega-tooltip writes it as HTML: it must escape names)
        points = page.locator("#chart-pareto-0 svg g.mark-symbol.role-mark path")
        for i in range(points.count()):
            points.nth(i).scroll_into_view_if_needed()
            points.nth(i).hover(force=True)  # (a point under a label or another point shows no tooltip)
            page.wait_for_timeout(50)
            tips.append(page.evaluate("(document.querySelector('#vg-tooltip-element.visible') || {}).textContent"))
            page.mouse.move(0, 0)
        tip_elements = page.evaluate("document.querySelectorAll('#vg-tooltip-element img, #vg-tooltip-element svg, "
                                     "#vg-tooltip-element b').length")
        ran += page.evaluate("window.__ran")
    assert ran == [] and seen.dialogs == [], (ran, seen.dialogs)
    assert seen.errors == [] and seen.console_errors() == []
    assert ok, "the charts were never drawn"
    assert state["elements"] == 0  # no element made from a name
    assert len(state["cells"]) == len(NAMES) * 2 * 2  # models x backends x batches
    assert set(state["cells"]) == set(NAMES) and set(state["gate"]) == set(NAMES[:3])
    assert len(state["charts"]) >= 4 and all(r == "true" for r in state["charts"]), state["charts"]
    assert set(NAMES) <= set(state["labels"])  # the Pareto panels name each model, as text
    assert set(state["options"]) == set(NAMES)  # the history's model selector
    assert len(state["machines"]) == 1 and CPU in state["machines"][0] and CPU in state["headings"][0]
    assert tip_elements == 0 and all(any(name in (tip or "") for tip in tips) for name in NAMES), tips
