"""Two runs or two revisions side by side: per configuration timed in both, the latency ratio B/A
with an interval, and the gate's verdict on that configuration at B where there is one.

A side is named by a run id (``12``) or a revision (a prefix of one, ``abc12``); without names the
page compares the two newest revisions, and its selector also offers each revision against the
one before. Only what both sides timed is compared: the configuration
(model, input, backend, precision, batch, threads, machine) must be present in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from cnnprof.errors import UsageError
from cnnprof.htmlreport.data import Dataset
from cnnprof.store.columns import Kind
from cnnprof.store.query import FLAGGED, gate_config

CONFIG = ("model", "input", "backend", "precision", "batch", "threads", "machine")
COLUMNS = [
    ("model", "model", "text"), ("input", "input", "text"), ("backend", "backend", "text"),
    ("precision", "precision", "text"), ("batch", "batch", "int"), ("threads", "threads", "int"),
    ("machine", "machine", "text"), ("a_ms", "A median (ms)", "ms"), ("b_ms", "B median (ms)", "ms"),
    ("ratio", "ratio B/A", "float"), ("ratio_low", "ratio low", "float"), ("ratio_high", "ratio high", "float"),
    ("change", "change", "text"), ("gate", "gate at B", "verdict"), ("gate_ratio", "gate ratio", "float"),
]


@dataclass
class Side:
    kind: str  # "run" or "revision"
    name: str  # the run's id or the revision, as text
    label: str  # what the page calls it
    rows: list[dict[str, Any]] = field(default_factory=list)  # timed profile rows


@dataclass
class Comparison:
    a: Side
    b: Side
    rows: list[dict[str, Any]]  # regressions first
    only_a: int = 0  # configurations timed on one side only
    only_b: int = 0

    @property
    def title(self) -> str:
        return f"{self.b.kind} {self.b.name} against {self.a.kind} {self.a.name}"

    @property
    def note(self) -> str:
        return "".join(f" {n} configuration(s) were timed in {s.kind} {s.name} only." for n, s in
                       ((self.only_a, self.a), (self.only_b, self.b)) if n).strip()


def _timed(data: Dataset) -> list[dict[str, Any]]:
    return [r for r in data.of(Kind.PROFILE) if r.get("latency_ms_median") is not None and not r.get("error")]


def _revisions(data: Dataset) -> list[str]:
    return sorted(data.revision_order, key=lambda r: (data.revision_order[r], r))


def side(data: Dataset, name: str) -> Side:
    """The run with id ``name``, else the one revision ``name`` starts; anything else, or one that
    timed nothing, is a usage error."""
    found = _side(data, name)
    if not found.rows:
        raise UsageError(f"--compare: {found.label} has no timed profile rows to compare")
    return found


def _side(data: Dataset, name: str) -> Side:
    timed = _timed(data)
    text = name.strip()
    if text.isdigit() and any(str(run.get("id")) == text for run in data.runs):
        run = next(run for run in data.runs if str(run.get("id")) == text)
        rows = [r for r in timed if str(r.get("run_id")) == text]
        label = f"run {text} ({run.get('command')}, {run.get('revision')}, {run.get('started_at')})"
        return Side("run", text, label, rows)
    found = [rev for rev in _revisions(data) if text and rev.startswith(text)]
    if text in found:
        found = [text]
    if len(found) == 1:
        return Side("revision", found[0], f"revision {found[0]}", [r for r in timed if r.get("revision") == found[0]])
    if found:
        raise UsageError(f"--compare: {name!r} starts {len(found)} revisions ({', '.join(found[:5])}): give more of it")
    raise UsageError(f"--compare: {name!r} is neither a run id nor a revision of these rows"
                     + (f" (revisions: {', '.join(_revisions(data)[-5:])})" if data.revision_order else ""))


def _newest(rows: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    newest: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        newest[tuple(r.get(k) for k in CONFIG)] = r
    return newest


def _severity(verdict: str | None) -> int:
    return FLAGGED.index(verdict) if verdict in FLAGGED else len(FLAGGED)


def _gate_at(data: Dataset, b: Side, config: dict[str, Any]) -> dict[str, Any] | None:
    """The gate's most severe verdict on this configuration at side B (its revision, or the
    revision of run B), on the same machine."""
    revision = b.name if b.kind == "revision" else (b.rows[0].get("revision") if b.rows else None)
    found = [g for g in data.of(Kind.GATE_CHECK) if g.get("verdict") and g.get("model") == config["model"]
             and g.get("revision") == revision and g.get("machine") == config["machine"]
             and all(config.get(k) == v for k, v in gate_config(g).items())]
    return min(found, key=lambda g: _severity(g["verdict"])) if found else None


def compare(data: Dataset, a: Side, b: Side) -> Comparison:
    """Every configuration both sides timed (the newest row of each side): B's median over A's, with
    the interval [B low / A high, B high / A low] where both rows carry their 95% interval
    (conservative: it holds both medians' uncertainty), and the gate's verdict at B. Order: the gate's
    regressions first, then the largest ratio first."""
    old, new = _newest(a.rows), _newest(b.rows)
    rows = []
    for key in old.keys() & new.keys():
        ra, rb = old[key], new[key]
        config = dict(zip(CONFIG, key))
        ratio = rb["latency_ms_median"] / ra["latency_ms_median"] if ra["latency_ms_median"] else None
        low = high = None
        if ratio is not None and all(r.get(k) for r in (ra, rb) for k in ("latency_ms_ci_low", "latency_ms_ci_high")):
            low = rb["latency_ms_ci_low"] / ra["latency_ms_ci_high"]
            high = rb["latency_ms_ci_high"] / ra["latency_ms_ci_low"]
        change = None
        if low is not None:
            change = "slower" if low > 1 else ("faster" if high < 1 else "inconclusive")
        g = _gate_at(data, b, config)
        rows.append({**config, "a_ms": ra["latency_ms_median"], "b_ms": rb["latency_ms_median"], "ratio": ratio,
                     "ratio_low": low, "ratio_high": high, "change": change,
                     "gate": g["verdict"] if g else None, "gate_ratio": g.get("ratio") if g else None})
    rows.sort(key=lambda r: (r["gate"] != "regression", -(r["ratio"] or 0.0),
                             tuple(str(r[k]) for k in CONFIG)))
    return Comparison(a, b, rows, only_a=len(old.keys() - new.keys()), only_b=len(new.keys() - old.keys()))


def default_pair(data: Dataset) -> tuple[str, str] | None:
    """Without --compare: the two newest revisions that timed something, older first."""
    timed = {r.get("revision") for r in _timed(data)}
    revisions = [r for r in _revisions(data) if r in timed]
    return (revisions[-2], revisions[-1]) if len(revisions) >= 2 else None


def of(data: Dataset, pair: Sequence[str] | None) -> Comparison | None:
    """The comparison the page shows: of ``pair`` (as the user named them), else the default pair."""
    names = tuple(pair) if pair else default_pair(data)
    if names is None:
        return None
    return compare(data, side(data, names[0]), side(data, names[1]))


MAX_CHOICES = 6


def choices(data: Dataset, first: Comparison) -> list[Comparison]:
    """What the page's selector offers: ``first``, then each revision against the one before it,
    newest first (at most ``MAX_CHOICES`` in all)."""
    timed = {r.get("revision") for r in _timed(data)}
    revisions = [r for r in _revisions(data) if r in timed]
    out = [first]
    for old, new in reversed(list(zip(revisions, revisions[1:]))):
        if len(out) >= MAX_CHOICES:
            break
        if (first.a.kind, first.a.name, first.b.kind, first.b.name) != ("revision", old, "revision", new):
            out.append(compare(data, side(data, old), side(data, new)))
    return out
