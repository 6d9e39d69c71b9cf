"""What sweeps and the HTML report cost (reported, not asserted).

1. Per-cell overhead of a sweep's worker process, apart from the measurement: a timing sweep of a
   few models (torch and onnxruntime, 2 passes), each cell pass in a fresh process; the medians of
   starting the process, importing torch and cnnprof, resolving, counting, building and
   calibrating, beside the measuring itself and the whole worker.
2. A counting-only sweep of the whole zoo (46 models), workers in parallel: wall time (the target
   is under 2 minutes on a 2-core machine).
3. ``cnnprof report`` on a database of about 10,000 rows: time (with the chart library made anew,
   and from its cache) and the page's size (targets: under 10 s, under 5 MB). The rows are made
   up (tests/store_data.py: seeded random latencies): this measures the report, not the models.

    flock /tmp/cnnprof-timing.lock python benchmarks/sweep_report.py [--skip-zoo] [--json out.json]
        [--docs docs/database.md]

Run from the repository root. ``--docs PAGE`` also writes the report into PAGE's ``sweep-report``
block, with the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from docblock import add_option, captured  # noqa: E402

DOCS_PAGE = "docs/database.md"
DOCS_BLOCKS = ("sweep-report",)


def cli(*args: str, cwd: Path, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from cnnprof.cli import main; main()", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"cnnprof {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, proc


def overhead(tmp: Path) -> dict:
    """A timing sweep of three models x two backends, two passes; the workers' step medians."""
    from cnnprof import sweep
    from cnnprof.store import Store
    from cnnprof.sweep.driver import Sweep
    from cnnprof.sweep.executor import LocalExecutor
    from cnnprof.sweep.matrix import Matrix
    from cnnprof.timing.environment import fingerprint

    matrix = Matrix(backends=("torch", "onnxruntime"), passes=2)
    cells = matrix.cells(["mobilenetv3_small", "ghostnet_100", "efficientnet_b0"])
    t0 = time.perf_counter()
    with Store.open(tmp / "overhead.db") as store:
        result = Sweep(matrix, cells, store, LocalExecutor(timeout_s=600), environment=fingerprint(1).to_dict(),
                       argv=["benchmark"]).run()
    wall = time.perf_counter() - t0
    summary = sweep.overhead_summary(result.passes)
    per_step = {}
    for step in ("start_s", "import_s", "resolve_s", "count_s", "build_s", "calibrate_s"):
        values = sorted(p["overhead"].get(step) for p in result.passes if p.get("overhead") and
                        p["overhead"].get(step) is not None)
        if values:
            per_step[step] = {"median": summary[step], "min": values[0], "max": values[-1], "n": len(values)}
    by_model: dict[str, list[float]] = {}
    for p in result.passes:
        o = p.get("overhead") or {}
        by_model.setdefault(p["cell"].split("|")[0], []).append(
            sum(o.get(k, 0.0) for k in ("start_s", "import_s", "resolve_s", "count_s", "build_s", "calibrate_s")))
    return {"cell_passes": len(result.passes), "wall_s": wall, "medians": summary, "steps": per_step,
            "overhead_s_by_model": {m: sorted(v) for m, v in by_model.items()},
            "failed": len(result.failed)}


def zoo(tmp: Path) -> dict:
    wall, proc = cli("sweep", "*", "--no-timing", "--db", str(tmp / "zoo.db"), "-f", "json", cwd=tmp)
    rows = json.loads(proc.stdout)
    return {"wall_s": wall, "cells": len(rows), "failed": sum(1 for r in rows if r.get("error")),
            "summary": [ln for ln in proc.stderr.splitlines() if ln.startswith("per cell pass")]}


def report(tmp: Path) -> dict:
    from store_data import fill

    from cnnprof.models import registry

    db = tmp / "big.db"
    t0 = time.perf_counter()
    rows = fill(db, revisions=27, machines=2, models=registry.list_models("*"), seed=1)
    fill_s = time.perf_counter() - t0
    cache = tmp / "cache"
    out = {"rows": rows, "fill_s": fill_s}
    for label in ("cold (chart library made anew)", "warm (chart library from its cache)"):
        wall, proc = cli("report", "--db", str(db), "--output", str(tmp / "big.html"), cwd=tmp,
                         env={"XDG_CACHE_HOME": str(cache)})
        out[label] = {"wall_s": wall, "said": proc.stderr.strip().splitlines()[-1]}
    out["html_bytes"] = (tmp / "big.html").stat().st_size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--json", type=Path)
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args()
    with captured(args.docs, "sweep-report", fence=True):
        results = measure(args.skip_zoo)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def measure(skip_zoo: bool) -> dict:
    results: dict = {"loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="cnnprof-bench-") as name:
        tmp = Path(name)
        results["overhead"] = overhead(tmp)
        o = results["overhead"]
        print(f"1. worker overhead over {o['cell_passes']} cell passes (3 models x torch, onnxruntime x 2 passes), "
              f"medians in s: " + ", ".join(f"{k} {v:.2f}" for k, v in o["medians"].items()))
        for model, values in o["overhead_s_by_model"].items():
            print(f"   {model}: overhead (start..calibrate) {', '.join(f'{v:.2f}' for v in values)} s")
        if not skip_zoo:
            results["zoo"] = zoo(tmp)
            z = results["zoo"]
            print(f"2. counting-only sweep of the zoo: {z['cells']} cells ({z['failed']} failed) in "
                  f"{z['wall_s']:.1f} s (target < 120 s); {' '.join(z['summary'])}")
        results["report"] = report(tmp)
        r = results["report"]
        print(f"3. report of {r['rows']} rows (made up; filled in {r['fill_s']:.1f} s): "
              + "; ".join(f"{k}: {v['wall_s']:.1f} s" for k, v in r.items() if isinstance(v, dict))
              + f"; page {r['html_bytes'] / 1e6:.2f} MB (targets < 10 s, < 5 MB)")
    results["loadavg_after"] = os.getloadavg()
    print(f"load average before {results['loadavg_before']}, after {results['loadavg_after']}")
    return results


if __name__ == "__main__":
    main()
