"""A model's own repository revision on the rows (``model_revision``, ``cnnprof.gitrev``) and
``cnnprof history --changes``: a user's model in a small git repository whose revisions 1-3 time
alike, 4 adds a +25% latency step with the same MACs and 5-6 keep it. The latencies are stored
through the store API per revision (a synthetic series: this tests the detection, not timing),
in an order that is not the commit order; the change point names revision 4, and the user's
branch, index and work tree are left as they were."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from browser import needs_chromium, opened
from store_data import environment

from cnnprof import changes, gitrev
from cnnprof.cli.stored import with_model_revisions
from cnnprof.store import Kind, Store, now_iso

MODEL = '''import torch
from torch import nn


class Net(nn.Module):
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
{extra}        return y


def make():
    return Net()
'''
SLOWER = "        for _ in range(3):  # element-wise work: slower, the same MACs\n            y = torch.tanh(y) + y\n"
# revision -> (model source, median ms): 1-3 alike, 4 a +25% step, 5-6 keep it
MEDIANS = [10.0, 10.08, 9.94, 12.5, 12.42, 12.58]


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_OPTIONAL_LOCKS": "0"}  # the test's own `git status` writes nothing
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def state(repo: Path) -> tuple:
    """What must not change: branch, HEAD, index, status, the model file's bytes."""
    return (git(repo, "rev-parse", "--abbrev-ref", "HEAD"), git(repo, "rev-parse", "HEAD"),
            (repo / ".git" / "index").read_bytes(), git(repo, "status", "--porcelain", "--untracked-files=all"),
            (repo / "model.py").read_bytes(), sorted(git(repo, "branch", "--list").split()))


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory):
    """The repository and the model_revision each revision's rows recorded (read by the code that
    stores rows, ``with_model_revisions``, at each commit as it was made)."""
    repo = tmp_path_factory.mktemp("nets")
    git(repo, "init", "-q", "-b", "main")
    ref = f"{repo}/model.py:make"
    labels = []
    for i in range(6):
        (repo / "model.py").write_text(MODEL.format(extra=SLOWER if i >= 3 else "") + f"# revision {i + 1}\n")
        git(repo, "add", "model.py")
        git(repo, "commit", "-q", "-m", f"revision {i + 1}")
        (rec,) = with_model_revisions([{"model": ref}], None)
        labels.append(rec["model_revision"])
    return repo, ref, labels


def store_series(db: Path, ref: str, labels: list[str], medians: list[float], order: list[int]) -> None:
    with Store.open(db) as store:
        for i in order:  # stored out of commit order: first seen is not the order to read them in
            env = environment(f"{0xabc000 + i:07x}")  # cnnprof's revision: another one each time
            row = {"model": ref, "backend": "torch", "precision": "fp32", "batch": 1, "threads": 1,
                   "device": "cpu", "input": "3x16x16", "latency_ms_median": medians[i],
                   "latency_ms_ci_low": medians[i] * 0.99, "latency_ms_ci_high": medians[i] * 1.01, "runs": 40,
                   "error": "", "environment": env, "model_revision": labels[i]}
            store.record("sweep" if i % 2 else "bench", ["cnnprof", "bench"], Kind.PROFILE, [row], environment=env,
                         started_at=now_iso())


def test_rows_record_the_model_repository_revision(user_repo, tmp_path):
    repo, ref, labels = user_repo
    shas = git(repo, "log", "--reverse", "--format=%H").split()
    assert labels == [s[:gitrev.SHORT] for s in shas]  # each revision's own commit, clean
    (repo / "model.py").write_text((repo / "model.py").read_text() + "# edited\n")
    try:
        (rec,) = with_model_revisions([{"model": ref}], None)
        assert rec["model_revision"] == shas[-1][:gitrev.SHORT] + "+dirty"
    finally:
        git(repo, "checkout", "--", "model.py")
    # --revision wins; a full sha is shortened as measured ones are; a registered model has none
    given = with_model_revisions([{"model": ref}, {"model": "ghostnet_100"}], "A" * 40)
    assert [r["model_revision"] for r in given] == ["a" * 12, "a" * 12]
    assert with_model_revisions([{"model": "ghostnet_100"}], None) == [{"model": "ghostnet_100"}]
    # the store keeps it in a column of its own
    db = tmp_path / "r.db"
    store_series(db, ref, labels, MEDIANS, [0, 1])
    with Store.open(db, write=False) as store:
        assert [r[0] for r in store.conn.execute("SELECT model_revision FROM rows ORDER BY id")] == labels[:2]


def test_commit_order_puts_a_dirty_label_after_its_commit_and_leaves_out_unknown_ones(user_repo):
    repo, _, labels = user_repo
    asked = [labels[4], "feedfacecafe", labels[0] + "+dirty", labels[2], labels[0]]
    assert gitrev.revision_order(repo, asked) == [labels[0], labels[0] + "+dirty", labels[2], labels[4]]
    assert gitrev.revision_order(repo.parent, asked) == []  # not a repository


def test_history_changes_names_revision_4_and_leaves_the_repository_as_it_was(cli, user_repo, tmp_path):
    repo, ref, labels = user_repo
    db = tmp_path / "h.db"
    store_series(db, ref, labels, MEDIANS, [3, 0, 5, 1, 4, 2])
    later = (repo / "model.py").stat().st_mtime + 100
    os.utime(repo / "model.py", (later, later))  # the index's stat data is stale: a `git status` could rewrite it
    before = state(repo)
    result = cli("history", ref, "--db", str(db), "--changes", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert state(repo) == before
    found = json.loads(result.stdout)
    assert [(c["revision"], c["previous"], c["verdict"]) for c in found] == [(labels[3], labels[2], "regression")]
    (c,) = found
    assert c["ratio"] == pytest.approx(12.5 / 10.0, rel=0.01)
    assert 1.0 < c["ci_low"] <= c["ratio"] <= c["ci_high"] < 1.4
    assert (c["revisions_before"], c["revisions_after"]) == (3, 3)
    assert f"1 change point(s): {labels[3]} regression" in result.stderr
    # csv carries it too; the lines themselves follow the commit order
    result = cli("history", ref, "--db", str(db), "--changes", "-f", "csv")
    assert result.exit_code == 0 and labels[3] in result.stdout.splitlines()[1]
    result = cli("history", ref, "--db", str(db), "-f", "json")
    assert [ln["revision"] for ln in json.loads(result.stdout)] == labels
    assert state(repo) == before


def test_one_noisy_revision_is_not_a_change():
    """A single slow revision in a flat series: at least two revisions a segment, and a step whose
    interval holds 1.0 is inconclusive, never a regression."""
    values = [10.0, 10.05, 9.97, 15.0, 10.02, 9.95, 10.01]
    lines = [{"model": "m", "machine": "x", "backend": "torch", "precision": "fp32", "batch": 1, "threads": 1,
              "revision": f"r{i}", "latency_ms_median": v} for i, v in enumerate(values)]
    assert [c.verdict for c in changes.change_points(lines) if c.verdict != changes.INCONCLUSIVE] == []
    # the same slow value kept from there on is a change
    lines[4:] = [{**ln, "latency_ms_median": 15.0 + 0.01 * i} for i, ln in enumerate(lines[4:])]
    assert [(c.revision, c.verdict) for c in changes.change_points(lines)] == [("r3", changes.REGRESSION)]


def test_a_database_with_one_point_or_no_rows_is_one_line(cli, user_repo, tmp_path):
    _, ref, labels = user_repo
    db = tmp_path / "one.db"
    store_series(db, ref, labels, MEDIANS, [0])
    result = cli("history", ref, "--db", str(db), "--changes")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"cnnprof: error: {ref}: 1 revision(s) at most in one configuration; a change point needs 4 (2 a side, "
        "--min-size)"]
    result = cli("history", "ghostnet_100", "--db", str(db), "--changes")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no timed rows of 'ghostnet_100'" in result.stderr
    result = cli("history", ref, "--db", str(db), "--changes", "--repo", str(tmp_path))
    assert result.exit_code == 2 and "is not in a git repository" in result.stderr


def test_the_page_marks_the_change_point_on_the_history_chart(cli, user_repo, tmp_path):
    import re

    _, ref, labels = user_repo
    db = tmp_path / "p.db"
    store_series(db, ref, labels, MEDIANS, range(6))  # the page orders revisions as first seen
    out = tmp_path / "page.html"
    result = cli("report", "--db", str(db), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script id="cnnprof-data" type="application/json">(.*?)</script>', text,
                                re.S).group(1))
    steps = data["datasets"]["history_changes"]
    steps = [dict(zip(steps["cols"], row)) for row in steps["rows"]] if isinstance(steps, dict) else steps
    assert [(s["model"], s["revision"], s["verdict"]) for s in steps] == [(ref, labels[3], "regression")]
    assert "1 in all: <code>cnnprof history MODEL --changes</code>" in text


@needs_chromium
def test_the_change_point_is_drawn_on_the_history_chart(cli, user_repo, tmp_path):
    _, ref, labels = user_repo
    db = tmp_path / "b.db"
    store_series(db, ref, labels, MEDIANS, range(6))
    out = tmp_path / "page.html"
    assert cli("report", "--db", str(db), "-o", str(out)).exit_code == 0
    with opened(out) as (page, seen):
        page.wait_for_selector("#chart-history svg")
        dashed = page.evaluate("""Array.from(document.querySelectorAll('#chart-history svg g.mark-rule line'))
            .filter(l => (l.getAttribute('stroke-dasharray') || '').startsWith('4')).length""")
    assert seen.errors == [] and seen.console_errors() == []
    assert dashed == 1


def test_a_sweep_stores_each_cell_under_its_model_revision(user_repo, tmp_path):
    from test_sweep_resume import SpyExecutor

    from cnnprof.sweep.driver import Sweep
    from cnnprof.sweep.matrix import Matrix

    _, ref, labels = user_repo
    db = tmp_path / "s.db"
    for given in (None, "v1.0"):
        matrix = Matrix(models=(ref,), backends=("torch",), batches=(1,), passes=1, min_time_s=0.0, min_runs=3)
        with Store.open(db) as store:
            run = Sweep(matrix, matrix.cells([ref]), store, SpyExecutor(base=1.0), environment=environment("abc1234"),
                        argv=["cnnprof", "sweep"], revision=given)
            run.executor.sweep = run
            run.run()
    with Store.open(db, write=False) as store:
        stored = [r[0] for r in store.conn.execute("SELECT model_revision FROM rows ORDER BY id")]
    assert stored == [labels[-1], "v1.0"]


def test_gate_checks_are_a_series_of_their_own():
    """Gate checks of a model (its raw median now, ``now_ms``) at revisions where nothing else
    timed it make their own series, apart from the timed rows' (a gate process times differently)."""
    from cnnprof.store.query import history_lines

    gate = [{"kind": "gate-check", "model": "net", "revision": f"r{i}", "machine": "m", "verdict": "pass",
             "ratio": 1.0, "backend": "torch", "precision": "fp32", "threads": 1, "input": "3x224x224",
             "now_ms": ms, "recorded_at": f"2026-01-0{i + 1}"} for i, ms in enumerate(MEDIANS)]
    timed = [{"model": "net", "revision": f"r{i}", "machine": "m", "backend": "torch", "precision": "fp32",
              "batch": 4, "threads": 1, "input": "3x224x224", "latency_ms_median": 40.0, "recorded_at": "t",
              "command": "sweep"} for i in range(6)]
    lines = history_lines(timed, gate, {f"r{i}": f"2026-01-0{i + 1}" for i in range(6)})
    found = changes.change_points(lines)
    assert [(c.series, c.batch, c.revision, c.verdict) for c in found] == [("gate", 1, "r3", changes.REGRESSION)]
