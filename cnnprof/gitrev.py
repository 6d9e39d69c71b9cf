"""The git revision of the repository a model lives in, and commit order across revisions.

A user's model (``path/model.py:factory``, ``path/model.onnx``) is the user's code: the row that
times it records the revision of *that* repository (``model_revision``) beside cnnprof's own, so
that history and change points run over the user's commits. Only read-only git commands run
here, with ``GIT_OPTIONAL_LOCKS=0`` so that not even ``git status`` refreshes the index: the
user's branch, index and work tree are never touched.

    rev = repo_revision("nets/model.py")     # Revision(sha, short, dirty, commit_time, repo_root) | None
    rev.label                                # 'abc1234def56' or 'abc1234def56+dirty'
    revision_order(rev.repo_root, ["abc1234def56", "0a1b2c3d4e5f+dirty"])   # the known ones, oldest first
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

SHORT = 12  # hex digits kept of a sha: unambiguous in any repository a person meets
DIRTY = "+dirty"
_HEX = re.compile(r"[0-9a-fA-F]{7,40}")
_TIMEOUT_S = 10


@dataclass(frozen=True)
class Revision:
    """A work tree's checked-out commit: ``dirty`` when tracked files differ from it (or the model
    file itself is not tracked)."""

    sha: str
    short: str
    dirty: bool
    commit_time: int  # seconds since the epoch, the committer's date
    repo_root: Path

    @property
    def label(self) -> str:
        return self.short + (DIRTY if self.dirty else "")


def _git(folder: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, input=stdin,
                              timeout=_TIMEOUT_S, env=env)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def repo_revision(path: str | os.PathLike) -> Revision | None:
    """The revision of the git work tree holding ``path`` (a file or folder), or None when it is in
    none (or git is missing, or the repository has no commit yet)."""
    try:
        p = Path(path).absolute()
    except (OSError, ValueError):
        return None
    folder = p if p.is_dir() else p.parent
    if not folder.is_dir():
        return None
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None or top.returncode != 0 or not top.stdout.strip():
        return None
    root = Path(top.stdout.strip())
    head = _git(root, "log", "-1", "--format=%H %ct", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return None
    sha, _, when = head.stdout.strip().partition(" ")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty = status is None or status.returncode != 0 or bool(status.stdout.strip())
    if not dirty and p.is_file():  # an untracked model file is not described by any commit
        tracked = _git(root, "ls-files", "--error-unmatch", "--", str(p))
        dirty = tracked is None or tracked.returncode != 0
    return Revision(sha=sha, short=sha[:SHORT], dirty=dirty, commit_time=int(when or 0), repo_root=root)


def given_revision(text: str) -> str:
    """``--revision REV`` as stored: a full sha is shortened as measured revisions are; anything
    else (a tag, a short sha, ``abc1234+dirty``) is kept as given, stripped."""
    text = str(text).strip()
    base, dirty = (text[: -len(DIRTY)], DIRTY) if text.endswith(DIRTY) else (text, "")
    if _HEX.fullmatch(base) and len(base) > SHORT:
        base = base[:SHORT].lower()
    return base + dirty


def model_file(reference: str) -> Path | None:
    """The file a user's model reference reads (``file.py:factory(...)``, ``model.onnx``), if it
    names one that exists; None for a registered model, a module or a hub name."""
    ref = str(reference or "").strip()
    if not ref:
        return None
    if ref.lower().endswith(".onnx"):
        location = ref
    else:
        location, sep, _ = ref.partition(":")
        if not sep or not (location.endswith(".py") or "/" in location or "\\" in location):
            return None
    try:
        p = Path(location)
        return p if p.is_file() else None
    except (OSError, ValueError):
        return None


def model_revision(reference: str, given: str | None = None) -> str:
    """What a row of ``reference`` records as ``model_revision``: ``given`` (``--revision``) when
    set, else the revision of the repository its file lives in, else '' (a registered model: its
    code is cnnprof's, whose revision the row has already)."""
    if given:
        return given_revision(given)
    path = model_file(reference)
    rev = repo_revision(path) if path is not None else None
    return rev.label if rev is not None else ""


def base_sha(label: str) -> str:
    """'abc1234+dirty' -> 'abc1234'."""
    return label[: -len(DIRTY)] if label.endswith(DIRTY) else label


def revision_order(repo: str | os.PathLike, revisions: Sequence[str]) -> list[str]:
    """The ``revisions`` (labels: shas, short shas, tags, with or without ``+dirty``) that name
    commits of ``repo``, in commit order, oldest first (topological, so a commit comes after its
    parents whatever the dates; a dirty label right after its commit's). Those that name no commit
    there are left out: the caller places them (by when they were first seen)."""
    labels = list(dict.fromkeys(r for r in revisions if r))
    if not labels:
        return []
    root = Path(repo)
    names = [base_sha(r) for r in labels]
    found = _git(root, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                 stdin="".join(f"{n}^{{commit}}\n" for n in names))
    if found is None or found.returncode != 0:
        return []
    out_lines = found.stdout.splitlines()
    if len(out_lines) != len(names):
        return []
    full: dict[str, str] = {}
    for label, line in zip(labels, out_lines):
        parts = line.split()
        if len(parts) == 2 and parts[1] == "commit":
            full[label] = parts[0]
    if not full:
        return []
    listed = _git(root, "rev-list", "--topo-order", "--reverse", *sorted(set(full.values())))
    if listed is None or listed.returncode != 0:
        return []
    position = {sha: i for i, sha in enumerate(listed.stdout.split())}
    known = [r for r in labels if full.get(r) in position]
    return sorted(known, key=lambda r: (position[full[r]], r.endswith(DIRTY)))
