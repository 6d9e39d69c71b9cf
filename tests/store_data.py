"""A results database filled with made-up rows of every kind, for the tests of the database, the
report and history (and for benchmarks/sweep_report.py's 10,000-row report). Nothing here is a
measurement: latencies are drawn from a seeded generator, counts are placeholders."""

from __future__ import annotations

import random
from pathlib import Path

FAMILY = {"ghostnet_100": "ghostnet", "mobilenetv3_small": "mobilenetv3", "efficientnet_b0": "efficientnet",
          "efficientnet_b1": "efficientnet", "efficientnet_b2": "efficientnet", "espnetv2_100": "espnetv2"}


def environment(revision: str, cpu: str = "Test CPU [avx2]", cores: int = 2) -> dict:
    return {"python": "3.11.7", "platform": "Linux-test", "cpu": cpu, "cores": cores, "torch": "2.13.0+cpu",
            "onnxruntime": "1.32.0", "gpu": "", "threads": 1, "env": {}, "loadavg": [0.5, 0.5, 0.5],
            "tool": f"cnnprof 0.1.0 ({revision})"}


def fill(path: str | Path, *, revisions: int = 3, machines: int = 1, models: list[str] | None = None,
         batches: tuple[int, ...] = (1, 4), backends: tuple[str, ...] = ("torch", "onnxruntime"),
         extra_models: int = 0, seed: int = 0, slow_revision: int | None = None, kinds: bool = True,
         cpus: list[str] | None = None) -> int:
    """Rows of ``models`` x ``backends`` x ``batches`` at each revision on each machine (one run per
    revision and machine), plus (``kinds``) claims, gate records and checks (the gate flags a
    regression at ``slow_revision``, where ghostnet_100 is made 30% slower), a scale run and a
    per-layer run with its roofs. ``cpus``: the CPU name of each machine (else "Test CPU N [avx2]").
    Returns the number of rows stored."""
    from cnnprof.store import Store, now_iso
    from cnnprof.store.columns import Kind

    rng = random.Random(seed)
    names = list(models or FAMILY) + [f"synthetic_{i:04d}" for i in range(extra_models)]
    base = {m: rng.uniform(2.0, 40.0) for m in names}
    counts = {m: (rng.randint(1_000_000, 20_000_000), rng.randint(30_000_000, 2_000_000_000)) for m in names}
    slow_revision = revisions - 1 if slow_revision is None else slow_revision
    total = 0
    with Store.open(path) as store:
        for rev in range(revisions):
            revision = f"{0xabc000 + rev:07x}"
            for mach in range(machines):
                env = environment(revision, cpu=cpus[mach] if cpus else f"Test CPU {mach} [avx2]")
                rows = []
                for m in names:
                    params, macs = counts[m]
                    for backend in backends:
                        speed = 0.45 if backend == "onnxruntime" else 1.0
                        for b in batches:
                            slow = 1.3 if (m == "ghostnet_100" and rev >= slow_revision) else 1.0
                            med = base[m] * speed * (0.6 + 0.4 * b) * slow * (1 + mach * 0.5) * rng.uniform(0.97, 1.03)
                            rows.append({"model": m, "family": FAMILY.get(m, "synthetic"), "input": "3x224x224",
                                         "batch": b, "params": params, "macs": macs * b, "backend": backend,
                                         "device": "cpu", "threads": 1, "latency_ms_median": med,
                                         "latency_ms_p90": med * 1.08, "latency_ms_iqr": med * 0.05,
                                         "latency_ms_ci_low": med * 0.98, "latency_ms_ci_high": med * 1.02,
                                         "runs": 40, "warnings": "", "error": "", "environment": env})
                store.record("sweep", ["cnnprof", "sweep", "(test data)"], Kind.PROFILE, rows, environment=env,
                             started_at=now_iso())
                total += len(rows)
                if kinds and mach == 0 and rev > 0 and "ghostnet_100" in names:
                    verdict = "regression" if rev == slow_revision else "pass"
                    ratio = 1.3 if rev == slow_revision else 1.0
                    gate = [{"model": m, "input": "3x224x224", "verdict": verdict if m == "ghostnet_100" else "pass",
                             "ratio": ratio if m == "ghostnet_100" else 1.01, "ci_low": 0.98, "ci_high": 1.04,
                             "p_value": 0.001 if m == "ghostnet_100" and verdict != "pass" else 0.5,
                             "baseline_ms": base[m], "now_ms": base[m], "note": ""} for m in names[:3]]
                    store.record("gate-check", ["cnnprof", "gate", "check"], Kind.GATE_CHECK, gate, environment=env,
                                 started_at=now_iso(), extra={"backend": "torch", "threads": 1})
                    total += len(gate)
        if kinds:
            env = environment(f"{0xabc000 + revisions - 1:07x}")
            claims = [{"id": f"test.claim{i}", "family": "ghostnet", "source": "test", "statement": f"claim {i} holds",
                       "expected": 2.0, "measured": 2.0 + 0.1 * i, "tolerance": "10%",
                       "verdict": ("holds", "deviates", "cited", "identity")[i % 4], "detail": "", "unit": "x"}
                      for i in range(6)]
            store.record("claims", ["cnnprof", "claims"], Kind.CLAIM, claims, environment=env, started_at=now_iso())
            scale = [{"base": "efficientnet_b0", "phi": float(p), "depth_mult": 1.2 ** p, "width_mult": 1.1 ** p,
                      "res_mult": 1.15 ** p, "resolution": round(224 * 1.15 ** p), "channels": [32], "repeats": [1],
                      "params": 5_000_000 * 1.4 ** p, "macs": int(385e6 * 2.1 ** p), "macs_ratio": 2.1 ** p,
                      "two_pow_phi": 2.0 ** p, "compound_pow_phi": 1.92 ** p, "closest": "", "closest_width": None,
                      "closest_depth": None, "closest_resolution": 224, "closest_macs": None,
                      "latency_ms_median": 30 * 2 ** p} for p in range(4)]
            store.record("scale", ["cnnprof", "scale"], Kind.SCALE, scale, environment=env, started_at=now_iso())
            layers = []
            for i, kind in enumerate(["dense conv", "depthwise", "pointwise", "squeeze-excite", "linear"] * 4):
                intensity = 0.5 + 3 * i
                gmacs = min(40.0, 5.0 * intensity) * rng.uniform(0.2, 0.8)
                layers.append({"model": "ghostnet_100", "backend": "torch", "threads": 1, "batch": 1, "index": i,
                               "name": f"blocks.{i}", "op_kind": kind, "macs": 1_000_000 * (i + 1),
                               "latency_ms": 0.1 + 0.05 * i, "intensity": intensity, "gmacs_per_s": gmacs,
                               "roof_gmacs": min(40.0, 5.0 * intensity), "error": ""})
            store.record("profile", ["cnnprof", "profile", "ghostnet_100", "--timing"], Kind.LAYER, layers,
                         environment=env, started_at=now_iso(),
                         context={"roofs": {"peak_gmacs": 40.0, "bandwidth_gbs": 5.0}})
            total += len(claims) + len(scale) + len(layers)
    return total


# -- a database written by an older cnnprof ----------------------------------------------------------
def added_columns(after: int) -> dict[str, tuple[str, str]]:
    """The columns the migrations after schema version ``after`` add: name -> (table, SQLite type),
    read from their ``ALTER TABLE ... ADD COLUMN`` statements."""
    import re

    from cnnprof.store.schema import MIGRATIONS

    found = {}
    for m in MIGRATIONS:
        if m.version > after:
            for statement in m.statements:
                hit = re.match(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+) (\w+)", statement, re.I)
                if hit:
                    found[hit.group(2)] = (hit.group(1), hit.group(3).upper())
    return found


def distinct_values(columns: dict[str, tuple[str, str]]) -> dict[str, object]:
    """A value of the column's type for each column, no two alike (so that a backfill that is
    dropped, or reads another field, cannot give the expected value by chance)."""
    values: dict[str, object] = {}
    for i, (name, (_, kind)) in enumerate(sorted(columns.items())):
        if kind == "INTEGER":
            values[name] = 1_000_003 + 7_919 * i
        elif kind == "REAL":
            values[name] = 0.125 + 3.5 * i
        else:
            values[name] = f"{name}-old-{i}"
    return values


def old_database(path: str | Path, version: int, record_values: dict[str, object]) -> None:
    """A results database at schema ``version`` as that cnnprof wrote it: its migrations only, one
    run, and three rows: a profile row whose record holds ``record_values`` (a field for every
    column a later version adds), a profile row and a claim row whose records hold none of them.
    The columns the database already has are filled as that version filled them."""
    import json
    import sqlite3

    from cnnprof.store.schema import APPLICATION_ID, MIGRATIONS

    conn = sqlite3.connect(path)
    for m in MIGRATIONS:
        if m.version <= version:
            for statement in m.statements:
                conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO runs (uid, command, argv, tool, revision, host, machine, env_key, environment, "
                 "started_at, status) VALUES ('u', 'bench', '[]', 't', 'r', 'h', 'm', 'e', '{}', 's', 'done')")
    present = {r[1] for r in conn.execute("PRAGMA table_info(rows)")} - {"id", "run_id", "kind", "record"}
    for kind, record in (("profile", {"model": "full", "batch": 2, **record_values}),
                         ("profile", {"model": "bare", "batch": 1}), ("claim", {"id": "c", "verdict": "holds"})):
        typed = {k: v for k, v in record.items() if k in present}
        names = ["run_id", "kind", "recorded_at", "revision", "machine", "env_key", *typed, "record"]
        conn.execute(f"INSERT INTO rows ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                     [1, kind, "t", "r", "m", "e", *typed.values(), json.dumps(record)])
    conn.commit()
    conn.close()
