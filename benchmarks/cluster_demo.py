"""The README's two-node sweep, for real: a Ray cluster of two nodes on this machine (a head of kind
cpu-a and a second node of kind cpu-b, each a separate `ray start` process tree with one CPU and
one cnnprof slot, in a private network namespace: tests/ray_cluster.py), a sweep spread over both
kinds, the runs in its database, and the HTML report with a screenshot of it.

    flock /tmp/cnnprof-timing.lock python benchmarks/cluster_demo.py [--folder /tmp/cnnprof-cluster-demo]
        [--screenshot docs/cluster-report.png]

Prints each command with its output (``--docs PAGE``: also into PAGE's ``cluster-demo`` block,
with the command, the date and the machine). Needs root, unshare and nsenter (as the cluster
tests), and Debian's chromium for the screenshot. Run from the repository root.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import ray_cluster  # noqa: E402
from docblock import add_option, captured  # noqa: E402

DOCS_PAGE = "docs/cluster.md"
DOCS_BLOCKS = ("cluster-demo",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="/tmp/cnnprof-cluster-demo")
    parser.add_argument("--models", default="mobilenetv3_small,ghostnet_050")
    parser.add_argument("--screenshot", default=None, help="PNG of the report's first screen")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args(argv)
    why = ray_cluster.unavailable()
    if why:
        print(f"cannot start a test cluster here: {why}", file=sys.stderr)
        return 2
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "cnnprof.db"
    for old in folder.glob("cnnprof.db*"):
        old.unlink()
    cluster = ray_cluster.LocalCluster()

    def show(*command: str) -> None:
        started = time.time()
        done = cluster.run(*command, cwd=folder, timeout=1800)
        print("$ cnnprof " + " ".join(shlex.quote(a) for a in command))
        print(done.stderr.rstrip())
        print(done.stdout.rstrip())
        print(f"[{time.time() - started:.1f} s wall, exit {done.returncode}]\n", flush=True)

    try:
        cluster.start("cpu-a")
        cluster.add("two", "cpu-b")
        with captured(args.docs, "cluster-demo", fence=True):
            show("sweep", *args.models.split(","), "--backend", "torch,onnxruntime", "--cluster", cluster.address,
                 "--db", str(db))
            show("db", "runs", "--db", str(db))
            show("report", "--db", str(db), "--output", str(folder / "report.html"))
    finally:
        cluster.stop()
    if args.screenshot:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto((folder / "report.html").as_uri())
            page.wait_for_timeout(1500)
            page.screenshot(path=args.screenshot)
            browser.close()
        print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
