"""The environment fingerprint keeps the tool's revision as a field; the store files rows under it."""

from __future__ import annotations

from cnnprof.store import Where
from cnnprof.store.columns import revision_of
from cnnprof.timing.environment import fingerprint


def test_the_fingerprint_has_the_revision_its_tool_text_shows():
    fp = fingerprint(1)
    assert fp.revision and fp.revision == revision_of(fp.tool)  # the text people read says the same
    assert fp.to_dict()["revision"] == fp.revision


def test_the_store_files_rows_under_the_environments_revision_field():
    env = {"tool": "cnnprof 0.1.0 (aaaaaaa)", "revision": "bbbbbbb+dirty", "cpu": "x", "cores": 2}
    assert Where(env, "h").revision == "bbbbbbb+dirty"  # the field, not a parse of the text


def test_a_fingerprint_recorded_before_the_field_is_read_from_its_tool_text():
    assert Where({"tool": "cnnprof 0.1.0 (abc1234+dirty)"}, "h").revision == "abc1234+dirty"
    assert Where({"tool": "cnnprof 0.1.0"}, "h").revision == "0.1.0"
