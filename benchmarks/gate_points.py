"""Operating points of ``cnnprof gate``: false alarms and detection of +5%, +10% and +20%
slowdowns with the same parameters and MACs, kept in a SQLite database so runs accumulate.

Each trial records a fresh baseline of three models (``benchmarks/gate_plant.py:make(...)``
around mobilenetv3_small, ghostnet_100 and efficientnet_b0, record defaults: 6 processes), then
runs four checks against it, in an order that rotates from trial to trial: nothing changed (A/A)
and the same references with extra element-wise passes planted (``gate_plant.ENV``) to make each
network about 5%, 10% and 20% slower. Every check is the library's ``core.check`` with a named
budget (``--budget``, default ``default``) at ``--factor`` (1.03): counts are compared too, and
stay equal. Each model comparison is stored with its ratio, interval, p-value and verdict, the
1-minute load average when the check started and the other processes' CPU use while it timed.

The table judges every stored comparison at several factors (regression = ratio > factor and
p < alpha), from the same measurements: at the factor the checks ran with, the verdicts are the
gate's own (its re-measurement of ambiguous models included); at the others, the re-measurement
was aimed at the run's factor, not theirs. Rates come with 95% Clopper-Pearson intervals; the
false-alarm rate with its one-sided 95% upper bound (3/n, the rule of three, at 0 alarms).
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
import time
from pathlib import Path

import numpy as np

from cnnprof.gate import core
from cnnprof.gate.budgets import BUDGETS, Budget
from cnnprof.gate.measure import GateModel, Settings
from cnnprof.gate.stats import betainc

MODELS = ("mobilenetv3_small", "ghostnet_100", "efficientnet_b0")
SLOWDOWNS = {"+5%": 0.05, "+10%": 0.10, "+20%": 0.20}
LABELS = ("A/A",) + tuple(SLOWDOWNS)
FACTORS = (1.02, 1.03, 1.04, 1.05, 1.10)
PLANT_FILE = Path(__file__).resolve().with_name("gate_plant.py")

SCHEMA = """
CREATE TABLE IF NOT EXISTS plants (model TEXT, label TEXT, passes INTEGER, pass_ms REAL, model_ms REAL,
                                   created TEXT, PRIMARY KEY (model, label));
CREATE TABLE IF NOT EXISTS trials (id INTEGER PRIMARY KEY, started TEXT, budget TEXT, factor REAL, alpha REAL,
                                   record_s REAL, cpus INTEGER, host TEXT);
CREATE TABLE IF NOT EXISTS checks (id INTEGER PRIMARY KEY, trial INTEGER REFERENCES trials(id), label TEXT,
                                   wall_s REAL, loadavg REAL, others_cores REAL, processes INTEGER, exit_code INTEGER);
CREATE TABLE IF NOT EXISTS comparisons (check_id INTEGER REFERENCES checks(id), model TEXT, ratio REAL,
                                        ci_low REAL, ci_high REAL, p_value REAL, verdict TEXT,
                                        processes_now INTEGER, raw_ratio REAL, note TEXT);
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    con.executescript(SCHEMA)
    return con


def reference(model: str) -> str:
    return f"{PLANT_FILE}:make(name={model!r})"


def plants(con: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """{label: {model: passes}}, chosen once (``gate_plant.passes_for``) and kept in the database,
    so every trial, in every run, plants the same code."""
    import gate_plant

    for m in MODELS:
        if con.execute("SELECT COUNT(*) FROM plants WHERE model = ?", (m,)).fetchone()[0] < len(SLOWDOWNS):
            for label, (passes, pass_ms, model_ms) in gate_plant.passes_for(m, SLOWDOWNS).items():
                con.execute("INSERT OR REPLACE INTO plants VALUES (?, ?, ?, ?, ?, ?)",
                            (m, label, passes, pass_ms, model_ms, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
            con.commit()
    out: dict[str, dict[str, int]] = {label: {} for label in SLOWDOWNS}
    for m, label, passes in con.execute("SELECT model, label, passes FROM plants"):
        out.setdefault(label, {})[m] = passes
    return out


def trial(con: sqlite3.Connection, index: int, budget: Budget, factor: float, alpha: float,
          planted: dict[str, dict[str, int]], labels: tuple[str, ...] = LABELS) -> None:
    import gate_plant

    os.environ.pop(gate_plant.ENV, None)
    targets = [GateModel(reference(m), (3, 224, 224)) for m in MODELS]
    t0 = time.perf_counter()
    baseline = core.record(targets, Settings(processes=6))
    record_s = time.perf_counter() - t0
    cur = con.execute("INSERT INTO trials (started, budget, factor, alpha, record_s, cpus, host) VALUES "
                      "(?, ?, ?, ?, ?, ?, ?)", (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), budget.name,
                                                factor, alpha, record_s, os.cpu_count(), os.uname().nodename))
    trial_id = cur.lastrowid
    con.commit()
    order = labels[index % len(labels):] + labels[:index % len(labels)]
    for label in order:
        passes = planted.get(label, {})
        if passes:
            os.environ[gate_plant.ENV] = ",".join(f"{m}={n}" for m, n in passes.items())
        else:
            os.environ.pop(gate_plant.ENV, None)
        load = os.getloadavg()[0]
        t1 = time.perf_counter()
        try:
            result = core.check(baseline, Settings(processes=budget.processes, min_time_s=budget.min_time_s),
                                factor=factor, alpha=alpha, extra_processes=budget.extra_processes,
                                budget_s=budget.seconds)
        finally:
            os.environ.pop(gate_plant.ENV, None)
        wall = time.perf_counter() - t1
        others = [r.others_cores for r in result.runs if r.others_cores is not None]
        cur = con.execute("INSERT INTO checks (trial, label, wall_s, loadavg, others_cores, processes, exit_code) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", (trial_id, label, wall, load,
                                                           float(np.mean(others)) if others else None,
                                                           len(result.runs), 1 if result.failed else 0))
        for r in result.rows:
            con.execute("INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (cur.lastrowid, r.model.split("name=")[-1].strip("')"), r.ratio, r.ci_low, r.ci_high,
                         r.p_value, r.verdict, r.processes_now, r.raw_ratio, r.note))
        con.commit()
        log(f"trial {trial_id} {label}: {wall:.0f} s, load {load:.1f}; " + ", ".join(
            f"{r.model.split('name=')[-1].strip(chr(39) + ')')} {r.ratio:.3f} {r.verdict}" for r in result.rows))


def beta_quantile(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval of a rate of k in n."""
    a = 1 - confidence
    low = 0.0 if k == 0 else beta_quantile(a / 2, k, n - k + 1)
    high = 1.0 if k == n else beta_quantile(1 - a / 2, k + 1, n - k)
    return low, high


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper bound of a rate of k in n (exact; 1 - 0.05^(1/n), about 3/n, at k = 0)."""
    return 1.0 if k == n else beta_quantile(confidence, k + 1, n - k)


def load_comparisons(con: sqlite3.Connection, budget: str, factor: float) -> list[tuple]:
    return con.execute(
        "SELECT c.label, m.model, m.ratio, m.p_value, m.verdict, c.loadavg, c.wall_s, t.alpha, c.others_cores, "
        "t.id "
        "FROM comparisons m JOIN checks c ON m.check_id = c.id JOIN trials t ON c.trial = t.id "
        "WHERE t.budget = ? AND t.factor = ?", (budget, factor)).fetchall()


def table(con: sqlite3.Connection, budget: str = "default", factor: float = 1.03) -> str:
    """The operating-point table (markdown) of one budget and run factor, with its notes."""
    rows = load_comparisons(con, budget, factor)
    if not rows:
        return f"no trials with budget {budget} at factor {factor:g} yet"
    trials = con.execute("SELECT COUNT(*), MIN(started), MAX(started) FROM trials t WHERE budget = ? AND factor = ? "
                         "AND EXISTS (SELECT 1 FROM checks c WHERE c.trial = t.id)", (budget, factor)).fetchone()
    head = "| planted | model comparisons | " + " | ".join(f"flagged at {f:g}" for f in FACTORS) + \
        " | normalised ratio, median [5%, 95%] |"
    out = [head, "|---" * (3 + len(FACTORS)) + "|"]
    for label in LABELS:
        sel = [r for r in rows if r[0] == label]
        if not sel:
            continue
        cells = []
        for f in FACTORS:
            k = sum(r[2] > f and r[3] < r[7] for r in sel)  # at the run's factor: the gate's own verdicts
            n = len(sel)
            if label == "A/A":
                bound = upper_bound(k, n)
                cells.append(f"{k}/{n}, 95% upper bound {100 * bound:.1f}%"
                             + (f" (rule of three: {300 / n:.1f}%)" if k == 0 else ""))
            else:
                lo, hi = clopper_pearson(k, n)
                cells.append(f"{k}/{n} = {100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]")
        ratios = np.array([r[2] for r in sel])
        q5, q50, q95 = np.percentile(ratios, [5, 50, 95])
        out.append(f"| {label} | {len(sel)} | " + " | ".join(cells) + f" | {q50:.3f} [{q5:.3f}, {q95:.3f}] |")
    out += ["", by_conditions(rows, factor)]
    checks = con.execute("SELECT c.wall_s, c.loadavg, c.others_cores FROM checks c JOIN trials t ON c.trial = t.id "
                         "WHERE t.budget = ? AND t.factor = ?", (budget, factor)).fetchall()
    walls = np.array([c[0] for c in checks])
    loads = np.array([c[1] for c in checks])
    others = np.array([c[2] for c in checks if c[2] is not None])
    b = BUDGETS.get(budget)
    notes = [
        f"{trials[0]} trial(s), {len(checks)} checks of 3 models, {trials[1]} .. {trials[2]}; budget "
        f"{b.describe() if b else budget}; the checks ran at factor {factor:g}, alpha 0.01 (the other columns "
        "judge the same measurements at theirs).",
        f"Check wall time: median {np.median(walls):.1f} s, max {walls.max():.1f} s for 3 models "
        f"({np.median(walls) / 3:.1f} s per model)" + (
            f"; {np.median(walls[loads < 4]):.1f} s (median of {int((loads < 4).sum())}) when the load average was "
            f"under 4, {np.median(walls[loads >= 4]):.1f} s ({int((loads >= 4).sum())}) when it was higher."
            if (loads < 4).any() and (loads >= 4).any() else "."),
        f"Shared 2-core machine, loaded by other work: 1-minute load average at each check's start "
        f"{loads.min():.1f}..{loads.max():.1f} (median {np.median(loads):.1f})"
        + (f"; other processes' CPU use while timing: median {np.median(others):.2f} cores" if others.size else "")
        + ".",
    ]
    return "\n".join(out) + "\n\n" + "\n".join(f"- {n}" for n in notes)


# How busy the machine was while a check timed: the other processes' mean CPU use (cores) that the
# gate's workers sample (``others_cores``); a 2-core machine with one core timing has one to spare.
CONDITIONS = (("quiet (others < 0.5 cores)", 0.0, 0.5), ("shared (0.5-1.5 cores)", 0.5, 1.5),
              ("loaded (>= 1.5 cores)", 1.5, float("inf")))


def by_conditions(rows: list[tuple], factor: float) -> str:
    """A/A and +5% at the run's factor (the gate's own verdicts), split by how busy the machine was,
    with how many baselines (trials) the A/A comparisons came from and the most alarms any one gave."""
    out = [f"At {factor:g}, by how busy the machine was while the check timed:", "",
           "| machine | A/A: false alarms | A/A: baselines, most alarms from one | +5%: caught |",
           "|---|---|---|---|"]
    for name, low, high in CONDITIONS + (("all", 0.0, float("inf")),):
        sel = [r for r in rows if r[8] is not None and low <= r[8] < high] if name != "all" else rows
        aa = [r for r in sel if r[0] == "A/A"]
        five = [r for r in sel if r[0] == "+5%"]
        if not aa and not five:
            continue
        flagged = [r for r in aa if r[2] > factor and r[3] < r[7]]
        k = len(flagged)
        alarms = f"{k}/{len(aa)}, 95% upper bound {100 * upper_bound(k, len(aa)):.1f}%" if aa else "-"
        per_trial = Counter(r[9] for r in flagged)
        baselines = f"{len({r[9] for r in aa})}, {max(per_trial.values(), default=0)}" if aa else "-"
        kf = sum(r[2] > factor and r[3] < r[7] for r in five)
        if five:
            lo, hi = clopper_pearson(kf, len(five))
            caught = f"{kf}/{len(five)} = {100 * kf / len(five):.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"
        else:
            caught = "-"
        out.append(f"| {name} | {alarms} | {baselines} | {caught} |")
    return "\n".join(out)


def run(db: Path, trials: int, budget: Budget, factor: float, alpha: float = 0.01,
        labels: tuple[str, ...] = LABELS) -> None:
    """``trials`` trials into ``db``; each records a baseline and runs one check per entry of ``labels``
    (repeats allowed: ``("A/A", "A/A", "A/A", "+5%")`` spends most of the time on false alarms)."""
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise SystemExit(f"unknown check label(s) {', '.join(unknown)}; choose from {', '.join(LABELS)}")
    con = connect(db)
    planted = plants(con)
    for label, passes in planted.items():
        log(f"planted {label}: " + ", ".join(f"{m} {n} passes" for m, n in passes.items()))
    done = con.execute("SELECT COUNT(*) FROM trials WHERE budget = ? AND factor = ?",
                       (budget.name, factor)).fetchone()[0]
    for i in range(trials):
        log(f"trial {done + i + 1} ({budget.name}, factor {factor:g}); load {os.getloadavg()[0]:.1f}")
        trial(con, done + i, budget, factor, alpha, planted, labels)
    con.close()

