"""How often does ``cnnprof gate`` cry wolf, and how often does it catch a real slowdown?

Each trial records a fresh baseline of three models (mobilenetv3_small, ghostnet_100,
efficientnet_b0 at 224x224, default record protocol), then runs four checks against it, in an
order that rotates from trial to trial:

- ``A/A @1.10``: nothing changed, default factor, through the command line (``cnnprof gate check
  --format json`` in a subprocess, timed end to end: the "check of three models" time);
- ``A/A @1.05``: nothing changed, factor 1.05, through the library;
- ``+10% @1.05``: every model at a larger input that makes it about 10% slower (``PLANTS``; the
  MAC ratios are counted and printed), factor 1.05, latency only (``compare_counts=False``: the
  MAC check would trivially catch a different input);
- ``+20% @1.10``: the same, about 20% slower, default factor.

Every measurement runs in fresh worker processes, as the gate always does: the record in its
own, each check in its own, as in CI. Beside the gate, every trial is also judged by a naive rule:
the median wall time of a single process (the first one of the baseline, the first one of the
check) compared with a fixed 10% threshold. It also reports how often a Mann-Whitney U test on
all pooled normalised calls (treating calls as independent) finds an A/A difference "significant".

``--neighbour LOG`` adds a neighbour process that changes what it does every 10-60 s (idle,
matrix multiply, memory streaming, training a small CNN), so the trials see a shared machine even
when nobody else is using it.

Results are appended to a JSON-lines file as they come (``--out``), and the summary can be
printed again from it (``--summarize``). On a shared 2-core machine a trial takes about five
minutes; 20 trials take well over an hour. Run it in the background::

    nohup .venv/bin/python benchmarks/gate_trials.py --trials 20 --neighbour neighbour.log > gate_trials.log 2>&1 &

``--docs docs/gate.md`` writes the summary into that page's ``gate-trials`` block, with the command,
the date and the machine (``--summarize --docs docs/gate.md`` does it again from ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cnnprof.files import write_atomic
from cnnprof.gate import core, stats
from cnnprof.gate.measure import GateModel, Settings
from cnnprof.timing.stats import mann_whitney_u
from docblock import add_option

DOCS_PAGE = "docs/gate.md"
DOCS_BLOCKS = ("gate-trials", "gate-points")

MODELS = ("mobilenetv3_small", "ghostnet_100", "efficientnet_b0")
NATIVE = (3, 224, 224)
# Planted slowdowns: the same network at a larger input. Latency does not follow MACs at one
# thread (per-call costs that do not grow with the input: mobilenetv3_small needs +62% MACs to be
# 21% slower), so the inputs were chosen from interleaved measurements (4 fresh processes x 4
# instances, sizes side by side in each process) to slow each model by about 10% and 20%; the
# summary prints the MAC ratios, and the latency ratios as the trials measured them.
PLANTS = {
    "+10%": {"mobilenetv3_small": (3, 256, 256), "ghostnet_100": (3, 256, 256), "efficientnet_b0": (3, 240, 240)},
    "+20%": {"mobilenetv3_small": (3, 288, 288), "ghostnet_100": (3, 280, 280), "efficientnet_b0": (3, 256, 256)},
}
CHECKS = [("A/A @1.10", None, 1.10, "cli"), ("A/A @1.05", None, 1.05, "lib"),
          ("+10% @1.05", "+10%", 1.05, "lib"), ("+20% @1.10", "+20%", 1.10, "lib")]
NAIVE_THRESHOLD = 1.10

# A neighbour like the ones a shared CI machine has: one process that, for 10-60 s at a time
# (random), idles, multiplies matrices, streams memory, or trains a small CNN (one thread each),
# so that a baseline and a check rarely see the same machine.
NEIGHBOUR = """
import random, time
import numpy as np, torch
torch.set_num_threads(1)
rng = random.Random(7)
a = np.ones(20_000_000); m = np.ones((384, 384))
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3))
x = torch.randn(8, 3, 64, 64); opt = torch.optim.SGD(net.parameters(), lr=1e-3)
while True:
    mode, until = rng.choice(["idle", "matmul", "memory", "train"]), time.time() + rng.uniform(10, 60)
    print(time.strftime("%H:%M:%S"), mode, flush=True)
    while time.time() < until:
        if mode == "idle": time.sleep(0.5)
        elif mode == "matmul": m @ m
        elif mode == "memory": a *= 1.0000001
        else: opt.zero_grad(); net(x).sum().backward(); opt.step()
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def planted_mac_ratios() -> dict[str, dict[str, float]]:
    """MACs at the planted inputs over MACs at 224x224, counted from the built models."""
    base = core.count_models([GateModel(m, NATIVE) for m in MODELS])
    out = {}
    for label, shapes in PLANTS.items():
        counts = core.count_models([GateModel(m, shapes[m]) for m in MODELS])
        out[label] = {m: counts[m][1] / base[m][1] for m in MODELS}
    return out


def naive_ratio(base_procs, now_procs) -> float:
    """Median wall time of one process now / of one process at the baseline."""
    return float(np.median(now_procs[0].ms) / np.median(base_procs[0].ms))


def pooled_mwu_p(base_procs, now_procs, clock: str) -> float:
    a = np.concatenate([stats.normalised(p, clock) for p in now_procs])
    b = np.concatenate([stats.normalised(p, clock) for p in base_procs])
    return mann_whitney_u(a, b)[1]


def cli_check(path: Path, factor: float) -> tuple[list[dict], int, float]:
    exe = Path(sys.executable).with_name("cnnprof")
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "gate", "check", "--baseline", str(path), "--factor", str(factor),
                           "--format", "json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"gate check failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout), proc.returncode, wall


def trial(index: int, out: Path) -> None:
    settings = Settings()
    targets = [GateModel(m, NATIVE) for m in MODELS]
    t0 = time.perf_counter()
    baseline = core.record(targets, Settings(processes=6))
    record_s = time.perf_counter() - t0
    clock = baseline.protocol["clock"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "baseline.json")
        write_atomic(path, baseline.to_json())
        order = CHECKS[index % len(CHECKS):] + CHECKS[:index % len(CHECKS)]
        for label, plant, factor, via in order:
            record = {"trial": index, "check": label, "factor": factor, "via": via, "record_s": record_s,
                      "loadavg": os.getloadavg()[0], "models": {}}
            if via == "cli":
                rows, code, wall = cli_check(path, factor)
                record.update(exit_code=code, wall_s=wall)
                for r in rows:
                    record["models"][r["model"]] = {k: r[k] for k in ("verdict", "ratio", "ci_low", "ci_high",
                                                                      "p_value", "raw_ratio", "processes_now")}
            else:
                inputs = PLANTS[plant] if plant else None
                t1 = time.perf_counter()
                result = core.check(baseline, settings, factor=factor, inputs=inputs, compare_counts=plant is None)
                record.update(exit_code=1 if result.failed else 0, wall_s=time.perf_counter() - t1)
                for r in result.rows:
                    base_procs, now_procs = baseline.model(r.model).processes, result.samples[r.model]
                    record["models"][r.model] = {
                        "verdict": r.verdict, "ratio": r.ratio, "ci_low": r.ci_low, "ci_high": r.ci_high,
                        "p_value": r.p_value, "raw_ratio": r.raw_ratio, "processes_now": r.processes_now,
                        "naive_ratio": naive_ratio(base_procs, now_procs),
                        "pooled_mwu_p": pooled_mwu_p(base_procs, now_procs, clock),
                    }
            with open(out, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            flagged = [m for m, v in record["models"].items() if v["verdict"] == "regression"]
            log(f"trial {index + 1} {label}: exit {record['exit_code']} in {record['wall_s']:.0f} s; ratios "
                + ", ".join(f"{m} {v['ratio']:.3f}" for m, v in record["models"].items())
                + (f"; flagged {', '.join(flagged)}" if flagged else ""))


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "-"


def summarize(path: Path, macs: dict | None) -> None:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    trials = len({r["trial"] for r in recs})
    print(f"\n{trials} trial(s) from {path}")
    if macs:
        for label, ratios in macs.items():
            print(f"planted {label}: " + ", ".join(f"{m} at {'x'.join(map(str, PLANTS[label][m][1:]))}: MACs x {v:.3f}"
                                                   for m, v in ratios.items()))
    print("\n| trials | factor | gate: models flagged | gate: checks failed | naive 10% on single medians: "
          "models flagged | naive: checks failed |")
    print("|---|---|---|---|---|---|")
    for label, plant, factor, via in CHECKS:
        rs = [r for r in recs if r["check"] == label]
        if not rs:
            continue
        models = [v for r in rs for v in r["models"].values()]
        gate_m = sum(v["verdict"] == "regression" for v in models)
        gate_c = sum(any(v["verdict"] == "regression" for v in r["models"].values()) for r in rs)
        if all("naive_ratio" in v for v in models):
            naive_m = pct(sum(v["naive_ratio"] > NAIVE_THRESHOLD for v in models), len(models))
            naive_c = pct(sum(any(v["naive_ratio"] > NAIVE_THRESHOLD for v in r["models"].values()) for r in rs), len(rs))
        else:
            naive_m = naive_c = "(see A/A @1.05)"
        print(f"| {label} ({via}) | {factor:.2f} | {pct(gate_m, len(models))} | {pct(gate_c, len(rs))} | {naive_m} | "
              f"{naive_c} |")
    # +10% judged at the default factor from the same measurements (no re-measurement at 1.10)
    rs = [r for r in recs if r["check"] == "+10% @1.05"]
    if rs:
        models = [v for r in rs for v in r["models"].values()]
        k = sum(v["ratio"] > 1.10 and v["p_value"] < 0.01 for v in models)
        print(f"\n+10% judged at factor 1.10 from the same measurements: {pct(k, len(models))} models flagged")
    for label in ("+10% @1.05", "+20% @1.10", "A/A @1.05"):
        rs = [r for r in recs if r["check"] == label]
        if rs:
            for m in MODELS:
                ratios = [r["models"][m]["ratio"] for r in rs if m in r["models"]]
                raws = [r["models"][m]["raw_ratio"] for r in rs if m in r["models"]]
                print(f"{label} {m}: normalised ratio median {np.median(ratios):.3f} (min {min(ratios):.3f}, max "
                      f"{max(ratios):.3f}); raw ratio of pooled medians {min(raws):.3f}..{max(raws):.3f}")
    aa = [v for r in recs if r["check"] == "A/A @1.05" for v in r["models"].values()]
    if aa:
        print(f"\nA/A, Mann-Whitney U on pooled calls (calls treated as independent): p < 0.01 in "
              f"{pct(sum(v['pooled_mwu_p'] < 0.01 for v in aa), len(aa))} model comparisons; the gate's "
              f"process-level Welch t: p < 0.01 in {pct(sum(v['p_value'] < 0.01 for v in aa), len(aa))}")
    walls = [r["wall_s"] for r in recs if r["via"] == "cli"]
    if walls:
        print(f"`cnnprof gate check` of three models (end to end, CLI): median {np.median(walls):.1f} s, "
              f"max {max(walls):.1f} s over {len(walls)} runs")
    records = [r["record_s"] for r in recs if r["check"] == CHECKS[0][0]]
    if records:
        print(f"record of three models (6 processes): median {np.median(records):.0f} s")
    loads = [r["loadavg"] for r in recs]
    print(f"1-minute load average when each check started: {min(loads):.1f}..{max(loads):.1f} (2 cores)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("reports/gate_trials.jsonl"))
    ap.add_argument("--summarize", action="store_true", help="only print the summary of --out")
    ap.add_argument("--neighbour", type=Path, help="run a random busy/idle neighbour process, its log here")
    ap.add_argument("--points", action="store_true", help="operating points instead: A/A and planted +5%%, +10%%, "
                    "+20%% (same MACs) per trial, stored in --db (see benchmarks/gate_points.py)")
    ap.add_argument("--db", type=Path, default=Path("benchmarks/data/gate_trials.db"),
                    help="--points: the results database (default %(default)s, kept in the repository: trials "
                    "accumulate across runs and machines)")
    ap.add_argument("--budget", default="default", help="--points: the gate check budget (default %(default)s)")
    ap.add_argument("--factor", type=float, default=1.03, help="--points: the checks' factor (default %(default)s)")
    ap.add_argument("--checks", default="A/A,+5%,+10%,+20%",
                    help="--points: the checks of each trial, in order (rotated from trial to trial), repeats "
                    "allowed, e.g. 'A/A,A/A,A/A,+5%%' to spend most of the time on false alarms (default %(default)s)")
    add_option(ap, DOCS_PAGE, DOCS_BLOCKS)
    args = ap.parse_args()
    if args.points:
        points(args)
        return
    macs = planted_mac_ratios()
    if not args.summarize:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        log(f"{args.trials} trials -> {args.out}; machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        for label, ratios in macs.items():
            log(f"planted {label}: " + ", ".join(f"{m} at {'x'.join(map(str, PLANTS[label][m][1:]))}: MACs x {v:.4f}"
                                                 for m, v in ratios.items()))
        done = {json.loads(line)["trial"] for line in args.out.read_text().splitlines()} if args.out.exists() else set()
        neighbour = None
        if args.neighbour:
            neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR], stdout=open(args.neighbour, "a"),
                                         stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
            log(f"neighbour process {neighbour.pid} started (log {args.neighbour})")
        try:
            for i in range(args.trials):
                if i not in done:
                    trial(i, args.out)
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        summarize(args.out, macs)
    print(summary.getvalue(), end="")
    if args.docs:
        from docblock import write_block

        text = summary.getvalue().replace(f" from {args.out}", "")  # the results file stays on this machine
        write_block(args.docs, "gate-trials", f"```\n{text.strip()}\n```")
        log(f"wrote the summary into {args.docs}")


def points(args) -> None:
    """``--points``: run ``--trials`` operating-point trials into ``--db`` (none with --summarize), print the
    table, and with ``--docs`` write it into the page's gate-points block."""
    import gate_points
    from cnnprof.gate.budgets import parse_budget

    budget = parse_budget(args.budget)
    if not args.summarize:
        gate_points.run(args.db, args.trials, budget, args.factor,
                        labels=tuple(c.strip() for c in args.checks.split(",") if c.strip()))
    con = gate_points.connect(args.db)
    text = gate_points.table(con, budget.name, args.factor)
    con.close()
    print(text)
    if args.docs:
        from docblock import write_block

        write_block(args.docs, "gate-points", text)
        log(f"wrote the operating points into {args.docs}")


if __name__ == "__main__":
    main()
