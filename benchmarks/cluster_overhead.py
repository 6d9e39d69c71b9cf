"""What a Ray cluster adds to a sweep (reported, not asserted): the same cells, on the same machine,
run by a local sweep and by `sweep --cluster` on a one-node Ray cluster (tests/ray_cluster.py:
a head of kind cpu-a with one cnnprof slot, in a private network namespace), alternating,
``--repeats`` times each.

* fixed cost: `sweep --list` with and without --cluster (joining the cluster and probing its
  node, against none);
* per cell: the sweep's wall time divided by its cells, local and cluster, and the cluster sweep's
  own median of what Ray adds to each cell pass (``Ray`` in its `per cell pass` line: from
  submitting the task to its answer, less the worker's own time);
* two sets of cells: counting only (12 tiny models: the worker's start and imports are nearly
  all of it) and timing (6 tiny models on torch, 0.5 s measured each).

    flock /tmp/cnnprof-timing.lock python benchmarks/cluster_overhead.py [--repeats 2] [--json out.json]

Needs root, unshare and nsenter (as the cluster tests). Run from the repository root.
``--docs PAGE`` also writes the figures into PAGE's ``cluster-overhead`` block, with the command,
the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import ray_cluster  # noqa: E402
from docblock import add_option, captured  # noqa: E402

DOCS_PAGE = "docs/cluster.md"
DOCS_BLOCKS = ("cluster-overhead",)

USER = str(ROOT / "tests" / "user_model.py")
SETS = {
    "counting": ([f"{USER}:tiny_net(width={w})" for w in range(4, 16)], ["--no-timing", "--parallel", "1"]),
    "timing": ([f"{USER}:tiny_net(width={w})" for w in range(4, 10)],
               ["--backend", "torch", "--passes", "1", "--min-time", "0.5", "--min-runs", "5"]),
}


def summary_of(stderr: str) -> dict[str, float]:
    line = next((ln for ln in stderr.splitlines() if ln.startswith("per cell pass (medians): ")), "")
    return {name.strip(): float(v) for name, v in re.findall(r"([A-Za-z ]+?) ([0-9.]+) s", line.split(": ", 1)[-1])}


def timed(cluster, args: list[str], cwd: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    result = cluster.run(*args, cwd=cwd, timeout=900)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"cnnprof {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return wall, summary_of(result.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args()
    why = ray_cluster.unavailable()
    if why:
        raise SystemExit(f"no test cluster: {why}")
    out: dict = {"sets": {}}
    cluster = ray_cluster.LocalCluster()
    try:
        t0 = time.perf_counter()
        cluster.start("cpu-a")
        out["cluster_start_s"] = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="cnnprof-cluster-bench-") as name:
            tmp = Path(name)
            on = ["--cluster", cluster.address]
            fixed = {"local": [], "cluster": []}
            for _ in range(args.repeats):
                fixed["local"].append(timed(cluster, ["sweep", SETS["counting"][0][0], "--no-timing", "--list"],
                                            tmp)[0])
                fixed["cluster"].append(timed(cluster, ["sweep", SETS["counting"][0][0], "--no-timing", "--list",
                                                        *on], tmp)[0])
            out["list_s"] = {k: statistics.median(v) for k, v in fixed.items()}
            for set_name, (models, options) in SETS.items():
                walls = {"local": [], "cluster": []}
                ray_s, worker_s = [], {"local": [], "cluster": []}
                for i in range(args.repeats):
                    for where in ("local", "cluster"):
                        db = tmp / f"{set_name}-{where}-{i}.db"
                        wall, summary = timed(cluster, ["sweep", *models, *options, "--input", "3x16x16", "--db",
                                                        str(db), *(on if where == "cluster" else [])], tmp)
                        walls[where].append(wall)
                        worker_s[where].append(summary.get("whole worker"))
                        if where == "cluster":
                            ray_s.append(summary.get("Ray"))
                n = len(models)
                local, remote = statistics.median(walls["local"]), statistics.median(walls["cluster"])
                out["sets"][set_name] = {
                    "cells": n, "wall_s": walls, "per_cell_local_s": local / n, "per_cell_cluster_s": remote / n,
                    "per_cell_difference_s": (remote - local) / n,
                    "per_cell_difference_less_fixed_s": (remote - local - (out["list_s"]["cluster"]
                                                                           - out["list_s"]["local"])) / n,
                    "ray_median_s": ray_s, "worker_median_s": worker_s}
    finally:
        cluster.stop()
    with captured(args.docs, "cluster-overhead", fence=True):
        print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
