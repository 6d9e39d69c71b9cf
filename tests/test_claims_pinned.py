"""Every claim's expected figure and tolerance, pinned in tests/data/claims_pinned.json: a claim
whose figure, tolerance or kind changes fails here until the table is written again on purpose
(tests/claims_pin.py says how). Read from the definitions; nothing is measured."""

from __future__ import annotations

import dataclasses

import claims_pin
import pytest


def differences(pinned: list[dict], live: list[dict]) -> list[str]:
    """What differs between the pinned table and the live definitions, one line per field."""
    old, new = {p["id"]: p for p in pinned}, {p["id"]: p for p in live}
    lines = [f"{i}: not in the table (a new claim)" for i in new if i not in old]
    lines += [f"{i}: pinned, but no such claim now" for i in old if i not in new]
    for i in (i for i in new if i in old):
        lines += [f"{i}: {k} pinned {old[i].get(k)!r}, now {new[i][k]!r}" for k in claims_pin.FIELDS
                  if old[i].get(k) != new[i][k] or type(old[i].get(k)) is not type(new[i][k])]
    return lines


def test_every_claims_expected_figure_and_tolerance_is_the_pinned_one():
    diff = differences(claims_pin.read(), claims_pin.live())
    assert not diff, ("claim definitions differ from tests/data/claims_pinned.json:\n  " + "\n  ".join(diff)
                      + f"\nIf the change is deliberate, write the table again and commit it: {claims_pin.UPDATE}")


def test_the_table_pins_every_claim_and_more_than_ids():
    from cnnprof.claims import all_claims

    pinned = claims_pin.read()
    assert [p["id"] for p in pinned] == [c.id for c in all_claims()]
    measured = [p for p in pinned if p["kind"] == "measured" and p["expected"] is not None]
    assert measured and all(p["tolerance_kind"] in ("rel", "abs", "above", "below") for p in measured)
    assert {p["tolerance_kind"] for p in measured} >= {"rel", "abs", "above", "below"}


@pytest.mark.parametrize("change", ["tolerance x10", "expected moved", "kind", "dropped"])
def test_a_changed_claim_is_named_with_the_way_to_update(monkeypatch, change):
    """The comparison above fails on each kind of change (on a copy of the definitions)."""
    from cnnprof import claims as claims_pkg
    from cnnprof.claims import Tolerance

    real = claims_pkg.all_claims()
    target = next(c for c in real if c.tolerance is not None and c.tolerance.value > 0 and c.expected)
    if change == "tolerance x10":
        changed = dataclasses.replace(target, tolerance=Tolerance(target.tolerance.kind, target.tolerance.value * 10))
    elif change == "expected moved":
        changed = dataclasses.replace(target, expected=target.expected * 1.001)
    elif change == "kind":
        other = "rel" if target.tolerance.kind == "abs" else "abs"
        changed = dataclasses.replace(target, tolerance=Tolerance(other, target.tolerance.value))
    else:
        changed = None
    edited = [changed if c is target else c for c in real if not (c is target and changed is None)]
    monkeypatch.setattr(claims_pkg, "all_claims", lambda: edited)
    with pytest.raises(AssertionError) as info:
        test_every_claims_expected_figure_and_tolerance_is_the_pinned_one()
    message = str(info.value)
    assert f"{target.id}: " in message and claims_pin.UPDATE in message
