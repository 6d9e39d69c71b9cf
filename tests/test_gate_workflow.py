"""The GitHub workflow the project ships checks a pull request against the baseline of its merge
base (the whole history fetched, `git merge-base`, that commit's cache key and no fallback to
another commit's baseline), recording one there when main has none, with the two gate levels."""

from __future__ import annotations

from pathlib import Path

import pytest

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "latency-gate.yml"


def test_pull_requests_are_checked_against_their_merge_base():
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = flow["jobs"]["check"]["steps"]
    checkout = steps[0]
    assert checkout["uses"].startswith("actions/checkout") and checkout["with"]["fetch-depth"] == 0
    base = next(s for s in steps if s.get("id") == "base")
    assert 'git merge-base "origin/$BASE_REF" "$HEAD_SHA"' in base["run"]
    restore = next(s for s in steps if s.get("id") == "baseline")
    assert restore["with"]["key"].endswith("${{ steps.base.outputs.sha }}")
    assert "restore-keys" not in restore["with"]  # never another commit's baseline
    record = next(s for s in steps if "merge base" in s.get("name", "") and "record" in s.get("run", ""))
    assert record["if"] == "steps.baseline.outputs.cache-hit != 'true'"
    assert 'git worktree add --detach "$RUNNER_TEMP/base" "$BASE_SHA"' in record["run"]
    check = next(s for s in steps if "gate check" in s.get("run", ""))
    assert '--warn "$WARN" --fail "$FAIL"' in check["run"] and "if" not in check
    assert float(flow["env"]["WARN"]) <= float(flow["env"]["FAIL"])
