"""The blocks of measurements in docs/ are written by the benchmark scripts: every block is closed,
every block a script declares (``DOCS_PAGE``, ``DOCS_BLOCKS``) is in its page, every block in a page
is some script's, and each block says where its text came from. Read from the scripts' source
(nothing is run or imported but benchmarks/docblock.py)."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- (begin|end): (.*?) -->")
WRITERS = {"captured", "write_block"}  # docblock's functions whose second argument names the block


def docblock():
    spec = importlib.util.spec_from_file_location("docblock_under_test", REPO / "benchmarks" / "docblock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def marker_problems(text: str) -> list[str]:
    """What is wrong with a page's markers: a begin without its end (or the reverse), one block
    inside another, a name used twice, a marker that shares its line with other text."""
    problems, seen, open_name = [], set(), None
    for line_no, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"`[^`]*`", "", line)  # a marker quoted in code is text about markers
        for m in MARKER.finditer(line):
            kind, name = m.groups()
            if line.strip() != m.group(0):
                problems.append(f"line {line_no}: {m.group(0)} is not alone on its line")
            if kind == "begin":
                if open_name is not None:
                    problems.append(f"line {line_no}: begin: {name} inside {open_name}")
                if name in seen:
                    problems.append(f"line {line_no}: block {name} twice")
                seen.add(name)
                open_name = name
            else:
                if open_name != name:
                    problems.append(f"line {line_no}: end: {name} without its begin")
                open_name = None
    if open_name is not None:
        problems.append(f"begin: {open_name} never ends")
    return problems


def page_blocks(text: str) -> dict[str, str]:
    """name -> the text between the markers of a page whose markers are sound."""
    return dict(re.findall(r"^<!-- begin: (.*?) -->\n(.*?)^<!-- end: \1 -->$", text, re.S | re.M))


def literal_names(node: ast.expr) -> set[str]:
    """The block names an argument can take: a string, or either string of ``a if c else b``;
    anything computed is "<computed>", which no page has."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return literal_names(node.body) | literal_names(node.orelse)
    return {"<computed>"}


def declared(script: Path) -> dict:
    """A script's DOCS_PAGE and DOCS_BLOCKS, the block names its writers are called with (every
    string in their second argument), and whether it registers --docs through add_option."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    out: dict = {"page": None, "blocks": None, "written": set(), "add_option": False}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "DOCS_PAGE":
                out["page"] = ast.literal_eval(node.value)
            elif node.targets[0].id == "DOCS_BLOCKS":
                out["blocks"] = tuple(ast.literal_eval(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in WRITERS and len(node.args) >= 2:
                out["written"] |= literal_names(node.args[1])
            if name == "add_option":
                out["add_option"] = [getattr(a, "id", None) for a in node.args[1:]] == ["DOCS_PAGE", "DOCS_BLOCKS"]
    return out


def docs_scripts() -> list[Path]:
    return [p for p in sorted((REPO / "benchmarks").glob("*.py"))
            if p.name != "docblock.py" and "--docs" in p.read_text(encoding="utf-8")]


def docs_pages() -> list[Path]:
    return sorted((REPO / "docs").glob("*.md"))


def rel(p: Path) -> str:
    return str(p.relative_to(REPO))


@pytest.mark.parametrize("page", docs_pages(), ids=rel)
def test_every_block_in_the_docs_is_closed(page):
    assert marker_problems(page.read_text(encoding="utf-8")) == []


def test_the_marker_check_finds_what_is_wrong():
    good = "a\n<!-- begin: x -->\nt\n<!-- end: x -->\n<!-- begin: y -->\n<!-- end: y -->\n"
    assert marker_problems(good) == []
    assert page_blocks(good) == {"x": "t\n", "y": ""}
    assert marker_problems("<!-- begin: x -->\nt\n") == ["begin: x never ends"]
    assert marker_problems("t\n<!-- end: x -->\n") == ["line 2: end: x without its begin"]
    assert marker_problems("<!-- begin: x -->\n<!-- end: y -->\n") == ["line 2: end: y without its begin"]
    assert marker_problems("<!-- begin: x -->\n<!-- begin: y -->\n<!-- end: y -->\n<!-- end: x -->\n")[0] == (
        "line 2: begin: y inside x")
    assert marker_problems(good + good) == ["line 8: block x twice", "line 11: block y twice"]
    assert marker_problems("quoted: `<!-- begin: x -->`\n") == []
    assert marker_problems("see <!-- begin: x -->\n<!-- end: x -->\n") == [
        "line 1: <!-- begin: x --> is not alone on its line"]


def test_scripts_with_docs_are_found():
    names = {p.name for p in docs_scripts()}
    assert {"precision_check.py", "lut_accuracy.py", "sweep_report.py", "gate_trials.py"} <= names


@pytest.mark.parametrize("script", docs_scripts(), ids=lambda p: p.name)
def test_a_script_writes_only_blocks_its_page_has(script):
    got = declared(script)
    assert got["page"] and got["blocks"], f"{script.name} takes --docs but declares no DOCS_PAGE / DOCS_BLOCKS"
    assert got["add_option"], f"{script.name} must register --docs with add_option(parser, DOCS_PAGE, DOCS_BLOCKS)"
    page = REPO / got["page"]
    blocks = page_blocks(page.read_text(encoding="utf-8"))
    missing = [b for b in got["blocks"] if b not in blocks]
    assert not missing, f"{got['page']} has no block {missing} that {script.name} writes"
    assert got["written"] and got["written"] <= set(got["blocks"]), (
        f"{script.name} writes {sorted(got['written'] - set(got['blocks']))} that DOCS_BLOCKS does not name")
    assert set(got["blocks"]) <= got["written"], (
        f"{script.name} declares {sorted(set(got['blocks']) - got['written'])} but never writes it")
    docblock().check_page(page, got["blocks"])  # what --docs checks before a run


def owners() -> dict[tuple[str, str], str]:
    """(page, block) -> the script that writes it."""
    out = {}
    for script in docs_scripts():
        got = declared(script)
        for block in got["blocks"] or ():
            assert (got["page"], block) not in out, f"{block} of {got['page']} is written by two scripts"
            out[got["page"], block] = script.name
    return out


@pytest.mark.parametrize("page", docs_pages(), ids=rel)
def test_every_block_is_a_scripts_and_says_where_it_came_from(page):
    block = docblock()
    who = owners()
    for name, body in page_blocks(page.read_text(encoding="utf-8")).items():
        script = who.get((rel(page), name))
        assert script, f"no benchmark script declares block {name} of {rel(page)}"
        first = body.split("\n", 1)[0]
        if first.startswith("Written by `"):
            assert first.startswith(f"Written by `python benchmarks/{script} "), f"{name}: {first}"
        elif first == block.NOT_YET:
            assert f"python benchmarks/{script} " in body and f"--docs {rel(page)}" in body, (
                f"{name} does not show the command that writes it")
        else:
            assert first == block.CARRIED_OVER, f"block {name} of {rel(page)} does not say where it came from: {first}"
            assert f"benchmarks/{script}" in page.read_text(encoding="utf-8")


def test_docs_refuses_a_page_without_the_blocks_before_anything_runs(tmp_path, capsys):
    block = docblock()
    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text("x\n<!-- begin: a -->\nold\n<!-- end: a -->\n", encoding="utf-8")
    bad.write_text("x\n<!-- begin: b -->\n<!-- end: b -->\n", encoding="utf-8")
    parser = argparse.ArgumentParser(prog="bench")
    block.add_option(parser, "docs/x.md", ("a",))
    assert parser.parse_args(["--docs", str(good)]).docs == good
    assert parser.parse_args([]).docs is None
    for page in (bad, tmp_path / "none.md"):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(["--docs", str(page)])
        assert e.value.code == 2
        assert "argument --docs" in capsys.readouterr().err
    assert "docs/x.md" in parser.format_help()


def test_captured_prints_and_writes_what_was_printed(tmp_path, capsys, monkeypatch):
    block = docblock()
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "sweep_report.py"), "--docs", "p.md"])
    page = tmp_path / "p.md"
    page.write_text("top\n<!-- begin: r -->\nold\n<!-- end: r -->\nbottom\n", encoding="utf-8")
    with block.captured(page, "r", fence=True):
        print("\n1. one")
        print("2. two")
    assert capsys.readouterr().out == "\n1. one\n2. two\n"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("top\n<!-- begin: r -->\nWritten by `python benchmarks/sweep_report.py --docs p.md` on ")
    assert text.endswith("\n\n```\n1. one\n2. two\n```\n<!-- end: r -->\nbottom\n")
    before = page.read_text(encoding="utf-8")
    with pytest.raises(RuntimeError), block.captured(page, "r"):
        print("half a report")
        raise RuntimeError("the run failed")
    assert page.read_text(encoding="utf-8") == before  # a failed run leaves the block as it was
    with block.captured(None, "r"):
        print("only printed")
    assert capsys.readouterr().out == "half a report\nonly printed\n" and page.read_text(encoding="utf-8") == before
