"""The README stays a front door, its links and the docs' links lead somewhere, and the benchmark
scripts write their tables into the docs between markers without touching the rest of a page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 400
# [text](target) and ![alt](target); a target ends at whitespace or ")" (an optional "title" follows)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """The link targets of a markdown text that point into the repository (code blocks skipped)."""
    text = FENCE.sub("", text)
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, mailto:, ... and anchors within the page
        targets.append(unquote(target.split("#", 1)[0]))
    return targets


def broken_links(page: Path) -> list[str]:
    return [t for t in relative_links(page.read_text(encoding="utf-8")) if not (page.parent / t).exists()]


def test_the_readme_stays_under_400_lines():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines: move the detail to docs/"


def test_the_readme_links_to_every_docs_page():
    linked = {Path(t).name for t in relative_links((REPO / "README.md").read_text(encoding="utf-8"))}
    missing = [p.name for p in sorted((REPO / "docs").glob("*.md")) if p.name not in linked]
    assert not missing, f"README.md does not link to {missing}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file(page):
    assert broken_links(page) == []


def test_the_link_check_finds_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("x", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[a](there.md) [b](gone.md#part) ![c](img/none.png) [d](https://example.com/x.md) "
                    "[e](#anchor)\n```\n[f](inside-a-code-block.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["gone.md", "img/none.png"]


def docblock():
    spec = importlib.util.spec_from_file_location("docblock", REPO / "benchmarks" / "docblock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_block_is_replaced_and_the_rest_of_the_page_kept():
    block = docblock()
    page = "# Gate\n\nbefore\n<!-- begin: trials -->\nold table\n<!-- end: trials -->\nafter\n"
    out = block.replace_block(page, "trials", "| a |\n|---|\n| 1 |\n")
    assert out == "# Gate\n\nbefore\n<!-- begin: trials -->\n| a |\n|---|\n| 1 |\n<!-- end: trials -->\nafter\n"
    assert block.replace_block(out, "trials", "new") == (
        "# Gate\n\nbefore\n<!-- begin: trials -->\nnew\n<!-- end: trials -->\nafter\n")
    with pytest.raises(ValueError, match="begin: other"):
        block.replace_block(page, "other", "x")
    with pytest.raises(ValueError):
        block.replace_block(page + "<!-- end: trials -->\n", "trials", "x")


def test_a_written_block_names_its_command_date_and_machine(tmp_path, monkeypatch):
    block = docblock()
    page = tmp_path / "page.md"
    page.write_text("top\n<!-- begin: t -->\n<!-- end: t -->\nbottom\n", encoding="utf-8")
    monkeypatch.setattr("sys.argv", [str(REPO / "benchmarks" / "gate_trials.py"), "--summarize"])
    block.write_block(page, "t", "| x |")
    text = page.read_text(encoding="utf-8")
    assert text.startswith("top\n<!-- begin: t -->\nWritten by `python benchmarks/gate_trials.py --summarize` on ")
    assert "UTC.\nEnvironment: cnnprof " in text and "thread(s)" in text
    assert text.endswith("\n\n| x |\n<!-- end: t -->\nbottom\n")


@pytest.mark.parametrize("page, name", [("docs/gate.md", "gate-trials"), ("docs/counting.md", "onnx-counter-check")])
def test_the_pages_the_scripts_write_have_their_markers(page, name):
    text = (REPO / page).read_text(encoding="utf-8")
    begin, end = docblock().markers(name)
    assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end)


def shown_commands() -> list[tuple[str, str]]:
    """(page, command line) for every cnnprof command a page shows in a code block: `$ cnnprof ...`
    lines of an output, and `cnnprof ...` lines of a shell block."""
    found = []
    for page in pages():
        for block in FENCE.finditer(page.read_text(encoding="utf-8")):
            shell = block.group(0).startswith(("```sh", "```bash"))
            for line in block.group(0).splitlines()[1:-1]:
                line = line.strip()
                if line.startswith("$ cnnprof ") or (shell and line.startswith("cnnprof ")):
                    found.append((page.name, line.removeprefix("$ ").split(" && ")[0]))
    return found


def parse(line: str):
    """Parse a command line as `cnnprof` would, without running it: the command must exist and
    every option must be one of its own, with a value it accepts."""
    import shlex

    import typer

    from cnnprof.cli import app

    args = shlex.split(line, comments=True)[1:]
    cmd, name, parent = typer.main.get_command(app), "cnnprof", None
    while True:
        ctx = cmd.make_context(name, args, parent=parent)
        if not hasattr(cmd, "resolve_command"):
            return ctx
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        name, cmd, args = cmd.resolve_command(ctx, rest)
        parent = ctx


def test_the_readme_shows_commands():
    assert sum(page == "README.md" for page, _ in shown_commands()) >= 10


@pytest.mark.parametrize("page, line", shown_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_command_shown_exists_and_parses(page, line):
    assert parse(line).command_path.startswith("cnnprof ")


@pytest.mark.parametrize("line", ["cnnprof bench mobilenetv3_small --no-such-option", "cnnprof no-such-command",
                                  "cnnprof lut predict fbnet_a --measure=3"])
def test_a_command_that_would_not_parse_is_caught(line):
    with pytest.raises(Exception, match="(?i)no such|does not take"):
        parse(line)


def test_the_schema_versions_the_docs_name_are_the_migrations_own():
    from cnnprof.store.schema import MIGRATIONS, SCHEMA_VERSION

    database = (REPO / "docs" / "database.md").read_text()
    assert f"(`cnnprof/store/schema.py`, version {SCHEMA_VERSION};" in database
    # every "schema version N" / "column since schema version N" a page states is the migration that added it
    added = {m.version: m for m in MIGRATIONS}
    for page, column in (("gate.md", "model_revision"), ("accuracy.md", "top1"), ("timing.md", "latency_ms_p90_upper")):
        text = " ".join((REPO / "docs" / page).read_text().split())
        said = [int(v) for v in re.findall(r"schema version (\d+)", text)]
        assert said, page
        for version in said:
            assert any(column in statement for statement in added[version].statements), (page, version)
