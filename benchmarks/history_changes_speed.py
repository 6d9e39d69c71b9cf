"""What ``cnnprof history MODEL --changes`` costs on a results database of 10,000 timed rows of one
model (reported, not asserted; the target is under 2 s).

The rows are made up (tests/store_data.py: seeded latencies within +-3%, a +30% step planted at
one revision): this measures the command, not a model. 1,250 revisions x 2 machines x 2 backends
x 2 batch sizes = 10,000 rows, plus the gate's checks at each revision; the command runs in a
fresh process (Python start and imports included), three times, and the change points it finds
are shown beside the planted step.

    python benchmarks/history_changes_speed.py [--docs docs/gate.md]

Run from the repository root. ``--docs PAGE`` also writes the report into PAGE's
``history-changes-speed`` block, with the command, the date and the machine.
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

DOCS_PAGE = "docs/gate.md"
DOCS_BLOCKS = ("history-changes-speed",)
REVISIONS, STEP_AT = 1250, 800


def run(db: Path, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from cnnprof.cli import main; main()", "history", "ghostnet_100",
                           "--db", str(db), "--changes", "-f", "json"], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"history --changes failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args()
    from store_data import fill

    from cnnprof.store import Store

    with tempfile.TemporaryDirectory(prefix="cnnprof-changes-") as name:
        tmp = Path(name)
        db = tmp / "history.db"
        fill(db, revisions=REVISIONS, machines=2, models=["ghostnet_100"], slow_revision=STEP_AT)
        with Store.open(db, write=False) as store:
            timed = store.conn.execute("SELECT COUNT(*) FROM rows WHERE kind = 'profile'").fetchone()[0]
            gate = store.conn.execute("SELECT COUNT(*) FROM rows WHERE kind = 'gate-check'").fetchone()[0]
        walls, found = [], []
        for _ in range(3):
            wall, proc = run(db, tmp)
            walls.append(wall)
            found = json.loads(proc.stdout)
        startup = min(run_startup(tmp) for _ in range(3))
        split = parts(db, tmp)
    step = f"{0xabc000 + STEP_AT:07x}"
    changes = [c for c in found if c["verdict"] != "inconclusive"]
    with captured(args.docs, "history-changes-speed", fence=True):
        print(f"`cnnprof history ghostnet_100 --changes` on {timed:,} timed rows ({REVISIONS:,} revisions x 2 "
              f"machines x 2 backends x 2 batch sizes) and {gate:,} gate checks, in a fresh process:")
        print(f"  wall time, 3 runs: {', '.join(f'{w:.2f}' for w in walls)} s (target < 2 s); "
              f"`cnnprof --help` alone: {startup:.2f} s")
        print("  of which (one more fresh process): " + ", ".join(f"{k} {v:.2f} s" for k, v in split.items()))
        print(f"  change points: {len(changes)} ({sum(c['revision'] == step for c in changes)} at the planted "
              f"+30% step, revision {step}, of the 8 configurations that have it), "
              f"{len(found) - len(changes)} inconclusive")
        print(f"  load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


PARTS = """
import json, sys, time
t0 = time.perf_counter()
from cnnprof.store import Store, query
from cnnprof import changes
t1 = time.perf_counter()
with Store.open(sys.argv[1], write=False) as store:
    lines = query.history(store, "ghostnet_100")
t2 = time.perf_counter()
import ruptures
t3 = time.perf_counter()
found = changes.change_points(lines)
t4 = time.perf_counter()
print(json.dumps({"import cnnprof": t1 - t0, "read the rows": t2 - t1, "import ruptures (scipy)": t3 - t2,
                  "detect and bootstrap": t4 - t3}))
"""


def parts(db: Path, cwd: Path) -> dict:
    """Where the time goes, in a fresh process: imports, reading the rows, ruptures, the detection."""
    proc = subprocess.run([sys.executable, "-c", PARTS, str(db)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(proc.stdout)


def run_startup(cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from cnnprof.cli import main; main()", "--help"], cwd=cwd,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
