"""The pinned table of every claim's expected figure and tolerance (tests/data/claims_pinned.json),
read from the claim definitions in cnnprof/claims/ (nothing is measured).

A claim's expected value or tolerance changes only on purpose: tests/test_claims_pinned.py compares
the live definitions with this table and fails on any difference. After a deliberate change,
write the table again and commit it with the change:

    PYTHONPATH=. python tests/claims_pin.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TABLE = Path(__file__).with_name("data") / "claims_pinned.json"
FIELDS = ("id", "family", "kind", "expected", "unit", "tolerance_kind", "tolerance_value", "identity", "timed",
          "narrow_interval")
UPDATE = "PYTHONPATH=. python tests/claims_pin.py --write"


def pin(claim) -> dict:
    """What the table holds of one claim (its definition, not a measurement)."""
    t = claim.tolerance
    return {"id": claim.id, "family": claim.family, "kind": "measured" if claim.measure is not None else "cited",
            "expected": claim.expected, "unit": claim.unit, "tolerance_kind": None if t is None else str(t.kind),
            "tolerance_value": None if t is None else t.value, "identity": claim.identity, "timed": claim.timed,
            "narrow_interval": claim.narrow_interval}


def live() -> list[dict]:
    from cnnprof.claims import all_claims

    return [pin(c) for c in all_claims()]


def read(path: Path = TABLE) -> list[dict]:
    return json.loads(path.read_text())["claims"]


def text(pins: list[dict]) -> str:
    """One claim a line, so that a change shows as one line of a diff."""
    lines = ",\n".join("    " + json.dumps({k: p[k] for k in FIELDS}, ensure_ascii=False) for p in pins)
    return ('{\n  "about": "every claim\'s expected figure and tolerance, pinned; regenerate deliberately with: '
            f'{UPDATE}",\n  "claims": [\n{lines}\n  ]\n}}\n')


def write(path: Path = TABLE) -> int:
    from cnnprof.files import write_atomic

    pins = live()
    write_atomic(path, text(pins))
    return len(pins)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        print(f"usage: {UPDATE}", file=sys.stderr)
        raise SystemExit(2)
    print(f"wrote {write()} claims to {TABLE}")
