"""Every command's help shows its defaults: a ``[default: ...]`` written in a help text is not read
as rich markup (and removed), and no sentence is left ending on a space (" ." or " ,")."""

from __future__ import annotations

import re

import pytest


def _commands():
    """(path, click command) of every command and sub-command, the groups included."""
    import typer.main

    from cnnprof.cli import app

    out, stack = [], [((), typer.main.get_command(app))]
    while stack:
        path, cmd = stack.pop()
        out.append((path, cmd))
        stack += [((*path, name), sub) for name, sub in getattr(cmd, "commands", {}).items()]
    return sorted(out, key=lambda item: item[0])


def _written_defaults(cmd) -> list[str]:
    """The ``[default: ...]`` texts written in the help of ``cmd`` and of its options, as written
    (the escaping the help adds taken off)."""
    texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    return [m.replace("\\[", "[") for t in texts for m in re.findall(r"\\?\[default[^\]]*\]", t)]


COMMANDS = _commands()


def test_every_command_is_checked():
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"sweep", "lut build", "gate check", "db runs", "bench"} <= paths and len(paths) >= 18
    assert len(_written_defaults(dict(COMMANDS)[("sweep",)])) >= 13  # the defaults sweep writes itself


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=lambda p: " ".join(p) or "cnnprof")
def test_help_keeps_every_default_and_no_empty_sentence_end(cli, monkeypatch, path):
    import typer.rich_utils

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 1000)  # one line per option: nothing wraps
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.replace("│", " ").split())
    for default in _written_defaults(dict(COMMANDS)[path]):
        assert " ".join(default.split()) in text, (path, default)
    assert not re.search(r" [.,](\s|$)", text), re.search(r".{40} [.,](\s|$)", text)
    assert "\\[" not in text  # the escape itself is never shown
