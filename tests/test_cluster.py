"""Sweeps and lookup tables on a real Ray cluster on this machine (tests/ray_cluster.py: each node
a separate `ray start` process tree with one CPU, its own cnnprof-kind label and cnnprof_slot, in a
private network namespace with only 127.0.0.1).

The default run has one end-to-end test (a head of kind cpu-a and a node of kind cpu-b, a counting
sweep spread over both). The slow ones share a cluster of three nodes: the head and `two` of kind
cpu-a, and `odd` of kind cpu-old whose cnnprof is another one (a copy of this package whose
version.py says 0.0.0+other, and which is no git checkout, so its version, revision and source
digest all differ): it must be refused. In order: the refused node, a driver killed mid-sweep and
resumed, a lookup table built on both cpu-a nodes, and last a node killed mid-cell.

Every cluster is killed whatever happens (its namespace's processes, by pid), and the fixtures
check that no raylet of theirs is left."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import ray_cluster  # noqa: E402

USER = str(Path(__file__).with_name("user_model.py"))
WHY_NOT = ray_cluster.unavailable()
needs_cluster = pytest.mark.skipif(WHY_NOT is not None, reason=f"no test cluster: {WHY_NOT}")


def _raylets() -> set[int]:
    out = subprocess.run(["pgrep", "-x", "raylet"], capture_output=True, text=True).stdout.split()
    alive = set()
    for pid in map(int, out):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":  # a killed raylet waits a moment as a zombie for init to reap it
            alive.add(pid)
    return alive


def _cluster(*more):
    before = _raylets()
    cluster = ray_cluster.LocalCluster()
    try:
        cluster.start("cpu-a")
        for name, kind, kwargs in more:
            cluster.add(name, kind, **kwargs)
        yield cluster
    finally:
        cluster.stop()
        deadline = time.time() + 20
        while _raylets() - before and time.time() < deadline:
            time.sleep(0.2)
        assert not _raylets() - before, "raylets of the test cluster are still running"


def _rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute("SELECT * FROM rows ORDER BY id")]


def _node_ids(db: Path) -> dict[str, str]:
    return {r["cell"]: json.loads(r["record"]).get("node") for r in _rows(db)}


# -- without a cluster ---------------------------------------------------------------------------
def test_without_ray_cluster_options_are_one_line(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    result = cli("sweep", "mobilenetv3_small", "--no-timing", "--cluster", "auto")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "needs Ray, which is not installed: pip install 'cnnprof[cluster]'" in result.stderr
    result = cli("lut", "build", "--cluster", "auto", "--on", "cpu-a")
    assert result.exit_code == 2 and "pip install 'cnnprof[cluster]'" in result.stderr
    result = cli("sweep", "mobilenetv3_small", "--on", "cpu-a")
    assert result.exit_code == 2 and "--on and --retries go with --cluster" in result.stderr


def test_a_cluster_cell_has_its_kind_in_its_key_and_its_row_names_its_node():
    from cnnprof.sweep.driver import pool
    from cnnprof.sweep.matrix import Cell

    local = Cell(model="m", backend="torch")
    cell = Cell(model="m", backend="torch", kind="cpu-a")
    assert local.key == "m|torch|fp32|b1|t1|native|cpu" and cell.key == local.key + "|cpu-a"
    assert cell.describe().endswith(" on cpu-a") and Cell.from_dict(cell.to_dict()) == cell
    env = {"cpu": "Some CPU", "cores": 2, "tool": "cnnprof 0.1.0 (abc1234)"}
    row = {"model": "m", "batch": 1, "macs": 1000, "params": 10, "backend": "torch", "threads": 1,
           "environment": env, "warnings": ""}

    def result(node_id, label, samples):
        node = {"id": node_id, "kind": "cpu-a", "host": "h", "label": label, "environment": env}
        return {"ok": True, "row": row, "samples": samples, "environment": env, "node": node}

    pooled = pool(cell, [result("n1", "h1 (cpu-a)", [1.0] * 10), result("n2", "h2 (cpu-a)", [1.0] * 10)], 2)
    assert pooled["node"] == "n1" and pooled["host"] == "h1 (cpu-a)" and pooled["kind"] == "cpu-a"
    assert pooled["nodes"] == ["n1", "n2"] and "nodes: passes measured on h1 (cpu-a), h2 (cpu-a)" in pooled["warnings"]
    failed = pool(cell, [{"ok": False, "error": "x", "row": {"model": "m"}}], 2)
    assert failed["kind"] == "cpu-a" and failed["error"] == "x" and "node" not in failed


def test_a_cluster_row_is_filed_under_the_node_that_measured_it(tmp_path):
    from cnnprof.store import Store, Where

    driver = {"cpu": "Driver CPU", "cores": 8, "tool": "cnnprof 0.1.0 (abc1234)"}
    node = {"cpu": "Node CPU", "cores": 2, "tool": "cnnprof 0.1.0 (abc1234)"}
    with Store.open(tmp_path / "x.db") as store:
        run = store.start_run("sweep", ["cnnprof", "sweep"], environment=driver)
        pooled = {"model": "m", "params": 1, "environment": node, "host": "n (cpu-a)", "node": "abc"}
        store.add_pass(run, "m|count|fp32|b1|t1|native|cpu|cpu-a", 1, kind="profile", environment=driver, host=None,
                       ok=True, seconds=1.0, overhead=None, samples=None, result={}, error=None, pooled=pooled,
                       passes=1, own_environment=True)
        machine, env_key = store.conn.execute("SELECT machine, env_key FROM rows").fetchone()
    assert machine == "n (cpu-a): Node CPU, 2 cores" and env_key == Where(node, "n (cpu-a)").env_key


# -- the default run's end-to-end test --------------------------------------------------------------
@pytest.fixture
def two_kinds():
    yield from _cluster(("two", "cpu-b", {}))


@needs_cluster
@pytest.mark.cluster
def test_a_sweep_spread_over_two_kinds_of_node_gives_one_row_per_kind_naming_its_node(two_kinds, tmp_path):
    cluster = two_kinds
    db = tmp_path / "x.db"
    models = [f"{USER}:tiny_net(width={w})" for w in (4, 6)]
    result = cluster.run("sweep", *models, "--no-timing", "--input", "3x16x16", "--cluster", cluster.address,
                         "--db", str(db), "-f", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cluster 127.0.0.1:6379: cpu-a (1 node), cpu-b (1 node)" in result.stderr
    assert "refused" not in result.stderr and "token authentication is off" not in result.stderr
    printed = json.loads(result.stdout)
    assert sorted((r["kind"], r["params"]) for r in printed) == sorted(
        (k, 3 * 3 * 3 * w + 2 * w + w * 10 + 10) for k in ("cpu-a", "cpu-b") for w in (4, 6))  # TinyNet's
    rows = _rows(db)
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    by_kind: dict[str, set] = {}
    for r in rows:
        record = json.loads(r["record"])
        kind = r["cell"].rsplit("|", 1)[1]
        assert record["kind"] == kind and r["machine"].split(":")[0].endswith(f"({kind})")
        assert record["environment"]["tool"].startswith("cnnprof") and record["environment"]["cores"] >= 1
        by_kind.setdefault(kind, set()).add(record["node"])
    # each kind's cells ran on its one node, and the two nodes differ
    assert all(len(ids) == 1 for ids in by_kind.values()) and len(by_kind["cpu-a"] | by_kind["cpu-b"]) == 2
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*), SUM(ok), COUNT(DISTINCT cell) FROM passes").fetchone() == (4, 4, 4)
    assert conn.execute("SELECT status FROM runs").fetchall() == [("done",)]
    machines = {m for (m,) in conn.execute("SELECT DISTINCT machine FROM rows")}
    assert len(machines) == 2  # one panel each in `cnnprof report`
    report = subprocess.run([sys.executable, "-c", "from cnnprof.cli import main; main()", "report", "--db", str(db),
                             "--output", str(tmp_path / "r.html")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ray_cluster.ROOT)})
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert all(m in page for m in machines)


# -- slow: refused node, killed driver, lookup table, killed node ---------------------------------------
@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory):
    if WHY_NOT is not None:
        pytest.skip(f"no test cluster: {WHY_NOT}")
    other = ray_cluster.mismatched_copy(tmp_path_factory.mktemp("other"))
    yield from _cluster(("two", "cpu-a", {}), ("odd", "cpu-old", {"pythonpath": str(other)}))


@pytest.mark.slow
@pytest.mark.cluster
def test_a_node_running_another_cnnprof_is_refused_and_gets_no_cell(three_nodes, tmp_path):
    cluster = three_nodes
    db = tmp_path / "x.db"
    models = [f"{USER}:tiny_net(width={w})" for w in (4, 5, 6)]
    result = cluster.run("sweep", *models, "--no-timing", "--input", "3x16x16", "--cluster", cluster.address,
                         "--db", str(db), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    refused = [ln for ln in result.stderr.splitlines() if ln.startswith("refused node")]
    assert len(refused) == 1 and "(kind cpu-old)" in refused[0] and "it gets no cell" in refused[0]
    assert "cnnprof 0.1.0 here, 0.0.0+other there" in refused[0] and "cnnprof source digest" in refused[0]
    assert "cluster 127.0.0.1:6379: cpu-a (2 nodes)" in result.stderr  # the refused kind is no kind to run on
    rows = _rows(db)
    assert len(rows) == 3 and all(r["cell"].endswith("|cpu-a") and r["error"] is None for r in rows)
    assert set(_node_ids(db).values()) <= {cluster.node_id("head"), cluster.node_id("two")}
    # pinned to the refused kind: one line, nothing run
    result = cluster.run("sweep", models[0], "--no-timing", "--input", "3x16x16", "--cluster", cluster.address,
                         "--on", "cpu-old", "--db", str(db), cwd=tmp_path)
    assert result.returncode == 2 and "--on cpu-old: every node of that kind was refused" in result.stderr
    result = cluster.run("sweep", models[0], "--no-timing", "--cluster", cluster.address, "--on", "gpu-h100",
                         "--db", str(db), cwd=tmp_path)
    assert result.returncode == 2 and "no node of that kind" in result.stderr and "cpu-a, cpu-old" in result.stderr
    assert len(_rows(db)) == 3


def _wait_for(predicate, what: str, timeout: float = 120.0, proc=None):
    deadline = time.time() + timeout
    while not predicate():
        if proc is not None:
            assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"no {what} in {timeout:.0f} s"
        time.sleep(0.1)


def _passes(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM passes").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
@pytest.mark.cluster
def test_a_driver_killed_mid_sweep_leaves_the_database_consistent_and_resume_finishes_it(three_nodes, tmp_path):
    cluster = three_nodes
    db = tmp_path / "x.db"
    models = [f"{USER}:tiny_net(width={w})" for w in (4, 5, 6, 7, 8, 9)]
    args = [*models, "--no-timing", "--input", "3x16x16", "--cluster", cluster.address, "--on", "cpu-a", "--db",
            str(db)]
    first = cluster.cnnprof("sweep", *args, cwd=tmp_path, start_new_session=True)
    _wait_for(lambda: _passes(db) >= 1, "stored pass", proc=first)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and nsenter: no clean-up of any kind
    first.communicate()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT status FROM runs").fetchall() == [("running",)]
    stored = conn.execute("SELECT COUNT(*) FROM passes").fetchone()[0]
    assert 1 <= stored < 6
    conn.close()
    second = cluster.run("sweep", *args, "--resume", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming sweep run 1:" in second.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "done")
    per_pass = conn.execute("SELECT cell, pass, COUNT(*), SUM(ok) FROM passes GROUP BY cell, pass").fetchall()
    assert len(per_pass) == 6 and all(n == ok == 1 for *_, n, ok in per_pass)  # each cell once, measured
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT cell) FROM rows").fetchone() == (6, 6)


@pytest.mark.slow
@pytest.mark.cluster
def test_a_lookup_table_built_on_a_kind_of_node_is_spread_over_its_nodes_and_written_here(three_nodes, tmp_path):
    cluster = three_nodes
    result = cluster.run("lut", "build", "--entries", "isolated", "--cluster", cluster.address, "--on", "cpu-a",
                         "--layers", "0", "--rounds", "1", "--min-time", "0.02", "--min-runs", "3", cwd=tmp_path,
                         timeout=600, env={"CNNPROF_HOME": str(tmp_path)})  # models/ of CNNPROF_HOME
    assert result.returncode == 0, result.stderr
    path = tmp_path / "models" / "lut-torch-t1-cpu-a.json"
    table = json.loads(path.read_text())
    # layer 0's nine candidates, the stem and the two heads: distinct blocks, each measured once
    assert len(table["entries"]) >= 10 and all(e["runs"] >= 3 for e in table["entries"].values())
    assert "fbnet@224" in table["spaces"]
    assert "refused node" in result.stderr and "it gets no entry" in result.stderr
    built = next(ln for ln in result.stderr.splitlines() if ln.startswith("built on cpu-a nodes: "))
    assert built.count(" entries") == 2, built  # both nodes of the kind took a share
    counts = [int(part.rsplit(" ", 2)[1]) for part in built.split(": ", 1)[1].split(", ")]
    assert sum(counts) == len(table["entries"])
    again = cluster.run("lut", "build", "--entries", "isolated", "--cluster", cluster.address, "--on", "cpu-a",
                        "--layers", "0", "--rounds", "1", "--min-time", "0.02", "--min-runs", "3", cwd=tmp_path,
                        timeout=600, env={"CNNPROF_HOME": str(tmp_path)})
    assert again.returncode == 0 and "(0 measured now)" in again.stderr, again.stderr  # every entry kept


@pytest.mark.slow
@pytest.mark.cluster
def test_an_in_context_table_pools_the_readings_of_networks_read_on_several_nodes(three_nodes, tmp_path):
    cluster = three_nodes
    result = cluster.run("lut", "build", "--cluster", cluster.address, "--on", "cpu-a", "--contexts", "1",
                         "--rounds", "1", "--max-entries", "4", "--min-time", "0.02", "--min-runs", "3",
                         "-o", "models/ctx.json", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    table = json.loads((tmp_path / "models" / "ctx.json").read_text())
    assert table["mode"] == "in-context" and table["probe"]["reference_ms"] > 0
    assert len(table["contexts"]) == 4  # four networks, one round each
    built = next(ln for ln in result.stderr.splitlines() if ln.startswith("built on cpu-a nodes: "))
    assert built.count(" networks") == 2, built  # both nodes of the kind read networks
    # the stem is in every network: its entry pools the four readings, whichever node took them
    stems = [e for e in table["entries"].values() if e["label"].endswith("stem")]
    assert stems and all(e["contexts"] == 4 and len(e["context_ms"]) == 4 for e in stems), stems


def _cell_running_on(cluster, node: str) -> str | None:
    """The key of the cell a sweep worker under node ``node``'s Ray worker is measuring, or None."""
    from cnnprof.sweep.matrix import Cell

    for pid in cluster.descendants(cluster.processes(cluster.nodes[node].temp)):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "cnnprof.sweep.worker" in args:
            try:
                job = json.loads(Path(args[args.index("cnnprof.sweep.worker") + 1]).read_text())
            except (OSError, ValueError, IndexError):
                continue
            return Cell.from_dict(job["cell"]).key
    return None


@pytest.mark.slow
@pytest.mark.cluster
def test_a_node_killed_mid_cell_has_its_cell_finished_on_another_node_of_its_kind(three_nodes, tmp_path):
    cluster = three_nodes
    db = tmp_path / "x.db"
    head, two = cluster.node_id("head"), cluster.node_id("two")
    models = [f"{USER}:tiny_net(width={w})" for w in (4, 5, 6, 7)]
    proc = cluster.cnnprof("sweep", *models, "--backend", "torch", "--input", "3x16x16", "--passes", "1",
                           "--min-time", "3", "--min-runs", "5", "--cluster", cluster.address, "--on", "cpu-a",
                           "--db", str(db), "-f", "json", cwd=tmp_path)
    _wait_for(lambda: _cell_running_on(cluster, "two") is not None, "cell on node two", proc=proc)
    time.sleep(1.0)  # into its measuring (3 s)
    killed_cell = _cell_running_on(cluster, "two")
    assert killed_cell is not None and _passes(db) < 4
    assert cluster.kill_node("two")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    rows = json.loads(out)
    assert len(rows) == 4 and all(r["error"] == "" and r["latency_ms_median"] > 0 for r in rows), rows
    conn = sqlite3.connect(db)
    passes = conn.execute("SELECT cell, pass, ok, json_extract(result, '$.node.id') FROM passes").fetchall()
    # every cell measured exactly once: nothing lost, nothing recorded twice
    assert sorted(c for c, *_ in passes) == sorted(r["cell"] for r in rows) and len(passes) == 4
    assert all(p == 1 and ok == 1 and node in (head, two) for _, p, ok, node in passes), passes
    assert dict((c, node) for c, _, _, node in passes)[killed_cell] == head  # finished on the other cpu-a node
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT cell) FROM rows").fetchone() == (4, 4)
    assert {json.loads(r)["node"] for (r,) in conn.execute("SELECT record FROM rows")} <= {head, two}
