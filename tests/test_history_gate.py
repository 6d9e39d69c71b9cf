"""The gate's verdict in the history (``cnnprof history`` and the page's history chart) sits on the
configuration the gate measured (its backend, precision, batch 1, threads, input), not on every
backend's or batch's line of the model at that revision."""

import json
import re

from store_data import fill
from test_gate_alpha import fixed_samples  # noqa: F401 (a fixture)

from cnnprof.store.query import history_lines


def _line(backend, precision="fp32", batch=1, threads=1, revision="r1"):
    return {"model": "net", "revision": revision, "machine": "m", "backend": backend, "precision": precision,
            "batch": batch, "threads": threads, "input": "3x224x224", "latency_ms_median": 1.0,
            "recorded_at": "t", "command": "sweep"}


def _gate(verdict, **config):
    return {"kind": "gate-check", "model": "net", "revision": "r1", "machine": "m", "verdict": verdict, "ratio": 1.3,
            "input": "3x224x224", **config}


def test_a_verdict_marks_only_the_lines_of_the_configuration_it_measured():
    timed = [_line(b, p, n) for b in ("torch", "onnxruntime") for p in ("fp32", "int8") for n in (1, 4)]
    gate = [_gate("regression", backend="onnxruntime", precision="int8", threads=1, batch=1)]
    lines = history_lines(timed, gate, {"r1": "t"})
    marked = [(ln["backend"], ln["precision"], ln["batch"]) for ln in lines if ln["gate"]]
    assert marked == [("onnxruntime", "int8", 1)]
    assert all(ln["note"] != "gate check only" for ln in lines)
    # a verdict on a configuration nothing timed is a line of its own, with that configuration
    lines = history_lines(timed, [_gate("improvement", backend="openvino", precision="fp32", threads=1)], {"r1": "t"})
    own = [ln for ln in lines if ln["gate"]]
    assert [(ln["backend"], ln["precision"], ln["batch"], ln["note"]) for ln in own] == [
        ("openvino", "fp32", 1, "gate check only")]


def test_history_and_the_page_show_the_verdict_on_the_gated_backend_only(cli, tmp_path):
    db = tmp_path / "h.db"
    fill(db, revisions=3, models=["ghostnet_100", "efficientnet_b0", "mobilenetv3_small"])  # the gate checks torch
    result = cli("history", "ghostnet_100", "--db", str(db), "-f", "json")
    assert result.exit_code == 0, result.stderr
    at_slow = [ln for ln in json.loads(result.stdout) if ln["revision"] == "0abc002"]
    assert sorted((ln["backend"], ln["batch"]) for ln in at_slow) == [
        ("onnxruntime", 1), ("onnxruntime", 4), ("torch", 1), ("torch", 4)]
    assert {(ln["backend"], ln["batch"]): ln["gate"] for ln in at_slow} == {
        ("torch", 1): "regression", ("onnxruntime", 1): None, ("onnxruntime", 4): None, ("torch", 4): None}
    # filtered to a backend the gate did not measure: no verdict, and no line of the gate's own
    result = cli("history", "ghostnet_100", "--db", str(db), "--backend", "onnxruntime", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert [ln["gate"] for ln in json.loads(result.stdout) if ln["gate"]] == []

    out = tmp_path / "page.html"
    result = cli("report", "--db", str(db), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    data = json.loads(re.search(r'<script id="cnnprof-data" type="application/json">(.*?)</script>',
                                out.read_text(encoding="utf-8"), re.S).group(1))
    history = data["datasets"]["history"]
    points = [dict(zip(history["cols"], row)) for row in history["rows"]]
    flagged = {(p["model"], p["revision"], p["line"]) for p in points if p["gate"] not in (None, "pass")}
    assert flagged == {("ghostnet_100", "0abc002", "torch fp32 b1 t1")}


def test_a_gate_check_records_the_configuration_it_measured(cli, tmp_path, fixed_samples):
    import os
    import sqlite3

    from test_gate_alpha import baseline

    path = tmp_path / "baseline.json"
    path.write_text(baseline().to_json())
    result = cli("gate", "check", "--baseline", str(path), "--processes", "2", "--extra-processes", "0",
                 "--alpha", "0.5", "-f", "json")
    assert result.exit_code == 1, result.output  # the fixed samples: a regression at alpha 0.5
    with sqlite3.connect(os.environ["CNNPROF_DB"]) as conn:
        stored = list(conn.execute("SELECT model, verdict, input, backend, precision, batch, threads FROM rows "
                                   "WHERE kind = 'gate-check'"))
    assert stored == [("mobilenetv3_small", "regression", "3x64x64", "torch", "fp32", 1, 1)]
