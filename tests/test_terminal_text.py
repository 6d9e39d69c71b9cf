"""Untrusted text on the terminal: a model name (from a user's file or a results database) that holds
escape sequences, other control characters or rich markup is shown as written, never obeyed, in
every table and line cnnprof prints (``terminal.printable``)."""

import io

import pytest
from store_data import fill

EVIL = "evil\x1b[2J\x1b]0;pwn\x07[red]x[/red]\x9b31m\x7f\u202e\r"
RAW = ["\x1b", "\x07", "\x9b", "\x7f", "\u202e", "\r"]  # none of these may reach the terminal
SHOWN = "evil\\x1b[2J\\x1b]0;pwn\\x07[red]x[/red]\\x9b31m\\x7f\\u202e\\x0d"


def test_printable_shows_every_control_character_and_keeps_the_rest():
    from cnnprof.terminal import markup_safe, printable

    assert printable(EVIL) == SHOWN
    assert printable("\x00\t\n\x1f") == "\\x00\\x09\\x0a\\x1f"
    assert printable("two\nlines\x1b", newlines=True) == "two\nlines\\x1b"
    plain = "efficientnet_b0 α=1.2 β² 中文 é [red] back\\slash"
    assert printable(plain) == plain
    assert markup_safe("[red]x[/bold]\x1b") == "\\[red]x\\[/bold]\\x1b"


@pytest.fixture(scope="module")
def evil_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("evil") / "evil.db"
    fill(path, revisions=2, models=[EVIL, "ghostnet_100"], batches=(1,), backends=("torch",))
    return path


@pytest.mark.parametrize("fmt", ["table", "md"])
def test_db_rows_shows_a_stored_name_escaped(cli, evil_db, fmt):
    result = cli("db", "rows", "--db", str(evil_db), "-f", fmt)
    assert result.exit_code == 0, result.stderr
    for raw in RAW:
        assert raw not in result.stdout, repr(raw)
    assert SHOWN in result.stdout  # the markup in it shown as written, not read as a colour


def test_the_json_of_db_rows_keeps_the_name_as_stored(cli, evil_db):
    import json

    result = cli("db", "rows", "--db", str(evil_db), "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert EVIL in {r["model"] for r in json.loads(result.stdout)}  # data stays data (JSON escapes it)


def test_history_shows_a_pattern_escaped_in_its_title(cli, evil_db):
    result = cli("history", "evil\x1b[[]2J*", "--db", str(evil_db))  # the pattern is in the table's title
    assert result.exit_code == 0, result.stderr
    for raw in RAW:
        assert raw not in result.stdout + result.stderr, repr(raw)
    assert "evil\\x1b[[]2J*: median latency" in result.stdout


def test_a_line_on_stderr_and_an_error_show_the_name_escaped(capsys):
    from cnnprof.cli import fail
    from cnnprof.terminal import say

    say(f"warning: {EVIL}: slow")
    with pytest.raises(SystemExit):
        fail(f"cannot build {EVIL}")
    err = capsys.readouterr().err
    for raw in RAW:
        assert raw not in err, repr(raw)
    assert err.count(SHOWN) == 2


def test_a_progress_bar_shows_a_name_with_markup_and_escapes_as_written(monkeypatch):
    from rich.console import Console

    from cnnprof.cli import common

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    monkeypatch.setattr(common, "stderr_console", lambda: console)
    with common.counted_progress(columns=lambda rp: (rp.TextColumn("{task.description}"),),
                                 fields=lambda name: {"description": name}, counts=lambda name: (1, 1),
                                 line=lambda name, s: name) as update:
        update(f"[/bold]{EVIL}")
    text = out.getvalue()
    for raw in ["\x07", "\x9b", "\u202e"]:
        assert raw not in text, repr(raw)
    assert "[/bold]evil\\x1b[2J" in text and "[red]x[/red]" in text
