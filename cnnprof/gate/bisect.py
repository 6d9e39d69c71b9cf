"""``gate bisect``: the first commit of a model's repository that made it slower.

The user's checkout is never touched: everything happens in git worktrees made in a temporary
folder (detached, so no branch is created) and removed afterwards, whatever happens. One worktree
holds the good revision; ``git bisect start --no-checkout`` runs in another, so it only moves that
worktree's ``BISECT_HEAD`` (bisect state is per worktree); each candidate gets a fresh worktree of
its own. ``git bisect run`` calls ``cnnprof gate _bisect-step STATE`` (hidden), which measures the
candidate against the good revision *in the same processes* (the gate's protocol: fresh processes,
the calibration network timed between every call, ambiguous models measured again; good and
candidate interleaved in each process, so the test is a paired t over processes) and exits 0
(good), 1 (slower than ``factor`` and significant: bad), 125 (the candidate cannot be checked out,
imported or run: skipped, not blamed) or 128 (abort).

Before bisecting, the bad revision itself is measured: a range whose bad end is not slower has
nothing to find. Cost: one step per ``ceil(log2(commits in good..bad))`` plus that first one; each
step is ``budget.processes`` processes (up to ``budget.extra_processes`` more for ambiguous
models), each timing every model twice (good and candidate).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from cnnprof.errors import CnnprofError, UsageError, shorten
from cnnprof.gate import stats
from cnnprof.gate.budgets import Budget
from cnnprof.references import is_reference

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 128
OUTCOMES = {GOOD: "good", BAD: "bad", SKIP: "skip"}
Progress = Callable[[str], None]


class BisectError(CnnprofError):
    exit_code = 2


def git(cwd: str | Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``git -C cwd args``; with ``check`` a failure is a BisectError (one line)."""
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    if check and proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise BisectError(f"git {' '.join(args[:2])} failed: {why}")
    return proc


def repository_root(path: str | Path) -> Path:
    proc = git(path, "rev-parse", "--show-toplevel", check=False) if Path(path).is_dir() else None
    if proc is None or proc.returncode != 0:
        raise UsageError(f"{str(path)!r} is not a git repository (--repo)")
    return Path(proc.stdout.strip())


def commit(root: Path, rev: str) -> str:
    """The full sha of ``rev`` (a UsageError when it names no commit)."""
    proc = git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UsageError(f"revision {rev!r} does not exist in {root}")
    return proc.stdout.strip()


def subject(root: Path, sha: str) -> str:
    return git(root, "log", "-1", "--format=%s", sha).stdout.strip()


def split_ref(ref: str) -> tuple[str | None, str]:
    """A user's ``file.py:factory(...)`` -> (file, ':factory(...)'); anything else -> (None, ref)."""
    if is_reference(ref):
        location, sep, call = ref.partition(":")
        if location.endswith(".py") or location.lower().endswith(".onnx"):
            return location, sep + call
    if ref.lower().endswith(".onnx"):
        return ref, ""
    return None, ref


def repo_relative(ref: str, root: Path) -> str:
    """A model reference with its file made relative to the repository (as given, relative to the
    repository; or a path that exists here, inside the repository)."""
    location, rest = split_ref(ref)
    if location is None:
        return ref
    path = Path(location)
    if path.is_absolute() or path.exists():
        real = path.resolve()
        try:
            return real.relative_to(root.resolve()).as_posix() + rest
        except ValueError:
            raise UsageError(f"model file {location!r} is not inside the repository {root}") from None
    return path.as_posix() + rest


def at_tree(ref: str, tree: str | Path) -> str:
    """The reference as it reads in the worktree ``tree``."""
    location, rest = split_ref(ref)
    return ref if location is None else f"{Path(tree) / location}{rest}"


@dataclass
class Plan:
    """Everything a step needs (written to the state file ``git bisect run`` passes on)."""

    root: str
    good: str
    bad: str
    models: list[str]  # repository-relative references
    inputs: dict[str, list[int]] = field(default_factory=dict)
    factor: float = 1.10
    alpha: float = 0.01
    budget: dict = field(default_factory=dict)
    work: str = ""  # the temporary folder with every worktree
    commits: int = 0  # in good..bad

    @property
    def steps(self) -> int:
        return steps_for(self.commits)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        return cls(**json.loads(Path(path).read_text()))


def steps_for(commits: int) -> int:
    """Measured steps: the bad end, then ``ceil(log2(commits))`` bisection steps."""
    return 1 + (math.ceil(math.log2(commits)) if commits > 1 else 0)


def prepare(repo: str | Path, good: str, bad: str, models: Sequence[str]) -> Plan:
    """Checks that need no measurement (each failure one UsageError line)."""
    if not models:
        raise UsageError("gate bisect needs at least one model")
    root = repository_root(repo)
    good_sha, bad_sha = commit(root, good), commit(root, bad)
    if good_sha == bad_sha:
        raise UsageError(f"--good {good} and --bad {bad} are the same commit")
    if git(root, "merge-base", "--is-ancestor", good_sha, bad_sha, check=False).returncode != 0:
        raise UsageError(f"--good {good} is not an ancestor of --bad {bad}: no range to bisect")
    if git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        raise UsageError(f"the work tree of {root} has uncommitted changes: commit or stash them first "
                         "(bisect measures commits, and leaves your checkout alone)")
    refs = [repo_relative(m, root) for m in models]
    for ref in refs:
        location, _ = split_ref(ref)
        if location is None:  # its code is this cnnprof's, the same at every revision of the repository
            raise UsageError(f"{shorten(ref)!r} is not a model file of the repository: gate bisect times "
                             "`file.py:factory` references, whose code changes from commit to commit")
        if git(root, "cat-file", "-e", f"{good_sha}:{location}", check=False).returncode:
            raise UsageError(f"model file {location!r} does not exist at the good revision {good}")
    commits = int(git(root, "rev-list", "--count", f"{good_sha}..{bad_sha}").stdout.strip())
    return Plan(str(root), good_sha, bad_sha, refs, commits=commits)


def add_worktree(plan: Plan, name: str, sha: str) -> Path:
    path = Path(plan.work, name)
    git(plan.root, "worktree", "add", "--detach", "--quiet", str(path), sha)
    return path


def remove_worktree(plan: Plan, path: Path) -> None:
    git(plan.root, "worktree", "remove", "--force", str(path), check=False)
    shutil.rmtree(path, ignore_errors=True)


def paired(good: Sequence, cand: Sequence, *, alpha: float, clock: str) -> stats.Comparison:
    """Candidate / good from processes that timed both (interleaved, same process state): a paired
    t on the per-process differences of the log normalised levels."""
    import numpy as np

    d = np.array([stats.level(c, clock) - stats.level(g, clock) for g, c in zip(good, cand)])
    n, diff = len(d), float(d.mean())
    if n < 2:
        return stats.Comparison(math.exp(diff), 0.0, math.inf, 1.0, "paired-t (1 process: undecided)", n, n)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        p, half = (1.0 if diff == 0.0 else 0.0), 0.0
    else:
        p, half = stats.t_two_sided_p(diff / se, n - 1), stats.t_critical(alpha, n - 1) * se
    return stats.Comparison(math.exp(diff), math.exp(diff - half), math.exp(diff + half), p,
                            "paired-t on process medians (good and candidate in the same processes)", n, n)


def compare(plan: Plan, good_tree: Path, cand_tree: Path, on_progress: Progress | None = None) -> list:
    """The candidate against the good revision, interleaved in the same processes: one Verdict per model."""
    from cnnprof.gate.core import Verdict
    from cnnprof.gate.measure import GateModel, Settings, measure

    b = plan.budget
    settings = Settings(processes=b["processes"], min_time_s=b["min_time_s"])
    clock = settings.clock
    pairs = [(GateModel(at_tree(m, good_tree), tuple(plan.inputs[m])),
              GateModel(at_tree(m, cand_tree), tuple(plan.inputs[m]))) for m in plan.models]
    samples, _ = measure([g for pair in pairs for g in pair], settings, on_progress=on_progress)

    def verdict(m: str, g: GateModel, c: GateModel) -> Verdict:
        good, cand = samples[g.name], samples[c.name]
        cmp = paired(good, cand, alpha=plan.alpha, clock=clock)
        base_ms, now_ms = stats.raw_median(good), stats.raw_median(cand)
        return Verdict(model=m, input="x".join(map(str, g.input)),
                       verdict=stats.decide(cmp, factor=plan.factor, alpha=plan.alpha), ratio=cmp.ratio,
                       ci_low=cmp.ci_low, ci_high=cmp.ci_high, p_value=cmp.p_value, baseline_ms=base_ms,
                       now_ms=now_ms, raw_ratio=now_ms / base_ms,
                       calibration_baseline_ms=stats.calibration_median(good),
                       calibration_now_ms=stats.calibration_median(cand), processes_baseline=len(good),
                       processes_now=len(cand), method=f"{cmp.method}, {clock} clock")

    rows = [verdict(m, g, c) for m, (g, c) in zip(plan.models, pairs)]
    started = time.perf_counter()
    for _ in range(b["extra_processes"]):
        unsure = [p for p, r in zip(pairs, rows) if r.ci_low <= plan.factor <= r.ci_high]
        if not unsure or time.perf_counter() - started > b["seconds"]:
            break
        more, _ = measure([g for pair in unsure for g in pair], settings, processes=1, on_progress=on_progress)
        for name, s in more.items():
            samples[name].extend(s)
        rows = [verdict(m, g, c) for m, (g, c) in zip(plan.models, pairs)]
    return rows


def step(plan: Plan, sha: str, on_progress: Progress | None = None) -> dict:
    """Measure one candidate: {sha, subject, outcome, reason, rows, seconds}."""
    from cnnprof.gate.measure import MeasureError

    t0 = time.perf_counter()
    record = {"sha": sha, "subject": subject(Path(plan.root), sha), "outcome": "skip", "reason": "", "rows": []}
    tree = Path(plan.work, f"c-{sha[:12]}")
    try:
        try:
            add_worktree(plan, tree.name, sha)
            check_models(plan, tree)
            rows = compare(plan, Path(plan.work, "good"), tree, on_progress)
        except (UsageError, MeasureError, BisectError) as e:
            record["reason"] = str(e)
        else:
            record["rows"] = [r.to_dict() for r in rows]
            record["outcome"] = "bad" if any(r.verdict == stats.REGRESSION for r in rows) else "good"
    finally:
        remove_worktree(plan, tree)
    record["seconds"] = time.perf_counter() - t0
    return record


def check_models(plan: Plan, tree: Path) -> None:
    """Each model resolves (imports, builds) in ``tree``: a UsageError otherwise."""
    from cnnprof.gate.core import plan as plan_models

    for m in plan.models:
        plan_models([at_tree(m, tree)], input_shape="x".join(map(str, plan.inputs[m])))


# What ``git bisect run`` calls (with the state file): replaced by the tests' stub.
STEP_COMMAND = [sys.executable, "-c", "from cnnprof.cli import main; main()", "gate", "_bisect-step"]


def _steps_file(plan: Plan) -> Path:
    return Path(plan.work, "steps.jsonl")


def run_step(state: str | Path, on_progress: Progress | None = None) -> int:
    """The ``git bisect run`` command's body: measure BISECT_HEAD, append its record, return 0/1/125
    (128 on an error that is not the candidate's, which makes git abort the bisection)."""
    try:
        plan = Plan.load(state)
        sha = git(Path(plan.work, "bisect"), "rev-parse", "BISECT_HEAD").stdout.strip()
        from cnnprof.terminal import say

        say(f"bisect: measuring {sha[:12]} {shorten(subject(Path(plan.root), sha))}")
        record = step(plan, sha, on_progress)
        say(f"bisect: {sha[:12]} is {record['outcome']}" + (f" ({record['reason']})" if record["reason"] else ""))
        with open(_steps_file(plan), "a") as fh:
            fh.write(json.dumps(record) + "\n")
    except BaseException as e:  # noqa: BLE001 - Ctrl-C included: git must stop, and say why
        Path(state).with_name("error.txt").write_text(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        return ABORT
    return {"good": GOOD, "bad": BAD}.get(record["outcome"], SKIP)


@dataclass
class BisectResult:
    plan: Plan
    first_bad: str | None  # None: the bad end is not slower, or skipped commits leave it open
    subject: str = ""
    rows: list[dict] = field(default_factory=list)  # the first bad commit's verdicts (now = it, baseline = good)
    steps: list[dict] = field(default_factory=list)  # every measured candidate, in order
    candidates: list[str] = field(default_factory=list)  # when skipped commits leave it open
    message: str = ""


def resolve_inputs(plan: Plan, good_tree: Path, input_shape: str | None) -> None:
    from cnnprof.gate.core import plan as plan_models

    for m in plan.models:
        try:
            (g,) = plan_models([at_tree(m, good_tree)], input_shape=input_shape)
        except UsageError as e:
            raise UsageError(f"model {shorten(m)!r} at the good revision {plan.good[:12]}: "
                             f"{str(e).replace(str(good_tree) + os.sep, '')}") from None
        plan.inputs[m] = list(g.input)


def bisect(repo: str | Path, good: str, bad: str, models: Sequence[str], *, budget: Budget, factor: float = 1.10,
           alpha: float = 0.01, input_shape: str | None = None, on_progress: Progress | None = None) -> BisectResult:
    """Find the first commit in good..bad after which a model is slower than ``factor`` (significantly)."""
    plan = prepare(repo, good, bad, models)
    plan.factor, plan.alpha, plan.budget = factor, alpha, dataclasses.asdict(budget)
    plan.work = tempfile.mkdtemp(prefix="cnnprof-bisect-")
    bisect_tree = Path(plan.work, "bisect")
    try:
        resolve_inputs(plan, add_worktree(plan, "good", plan.good), input_shape)
        if on_progress:
            on_progress(f"measuring the bad end {plan.bad[:12]} against the good one {plan.good[:12]}")
        first = step(plan, plan.bad, on_progress)
        if first["outcome"] == "skip":
            raise UsageError(f"the bad revision {bad} cannot be measured: {first['reason']}")
        if first["outcome"] == "good":
            return BisectResult(plan, None, steps=[first], message=f"the bad revision {bad} is not slower than "
                                f"{factor:g}x the good one {good}: nothing to bisect")
        if plan.commits == 1:
            return BisectResult(plan, plan.bad, first["subject"], first["rows"], [first])
        add_worktree(plan, "bisect", plan.bad)
        state = Path(plan.work, "plan.json")
        plan.save(state)
        git(bisect_tree, "bisect", "start", "--no-checkout", plan.bad, plan.good)
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.run(["git", "-C", str(bisect_tree), "bisect", "run", *STEP_COMMAND, str(state)],
                              stdout=subprocess.PIPE, text=True, env=env)
        steps = [first] + [json.loads(line) for line in _steps_file(plan).read_text().splitlines()
                           if line.strip()] if _steps_file(plan).exists() else [first]
        return _outcome(plan, proc.stdout, state, steps)
    finally:
        if bisect_tree.exists():
            git(bisect_tree, "bisect", "reset", check=False)
        for tree in sorted(Path(plan.work).iterdir()):
            if tree.is_dir():
                remove_worktree(plan, tree)
        git(plan.root, "worktree", "prune", check=False)
        shutil.rmtree(plan.work, ignore_errors=True)


def _outcome(plan: Plan, output: str, state: Path, steps: list[dict]) -> BisectResult:
    import re

    error = state.with_name("error.txt")
    if error.exists():
        raise BisectError(f"bisection stopped: {error.read_text().strip()}")
    found = re.search(r"^([0-9a-f]{40}) is the first bad commit", output, re.M)
    if found:
        sha = found.group(1)
        rows = next((s["rows"] for s in reversed(steps) if s["sha"] == sha), [])
        return BisectResult(plan, sha, subject(Path(plan.root), sha), rows, steps)
    listed = output.split("could be any of:", 1)
    candidates = re.findall(r"^([0-9a-f]{40})", listed[1], re.M) if len(listed) == 2 else []
    if not candidates:
        raise BisectError(f"git bisect run ended without a result: {shorten(output.strip()[-300:])}")
    return BisectResult(plan, None, steps=steps, candidates=candidates,
                        message=f"skipped commits leave the first bad commit open: one of "
                                f"{', '.join(c[:12] for c in candidates)}")
