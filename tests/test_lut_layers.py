"""The layered ``cnnprof.lut``: no import circle, the layer order in pyproject.toml kept, no module
handing on another's names, LUT modes and allocators as enums that are written as plain words,
and table files written before all of this still loading to the same bytes."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnprof.lut.table import ALLOCATORS, MODES, Allocator, Mode, Table, load

ROOT = Path(__file__).resolve().parents[1]
LUT = ROOT / "cnnprof" / "lut"
DATA = Path(__file__).parent / "data"


def lut_graph() -> dict[str, set[str]]:
    """cnnprof.lut.* -> the cnnprof.lut.* modules it imports (any import: top, lazy, TYPE_CHECKING)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("cnnprof", cache_dir=None)
    mods = {m for m in graph.modules if m.startswith("cnnprof.lut.")}
    return {m: {d for d in graph.find_modules_directly_imported_by(m) if d in mods} for m in mods}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other round a circle (Tarjan's components > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_circles_finds_a_circle_and_a_chain_is_none():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle_among_the_lut_modules():
    edges = lut_graph()
    assert {"cnnprof.lut.space", "cnnprof.lut.table", "cnnprof.lut.evaluate"} <= set(edges)
    assert circles(edges) == []


def test_the_lut_layers_contract_is_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).exists():
        pytest.fail(f"lint-imports is not installed next to {sys.executable} (pip install import-linter: a dev "
                    "dependency)")
    text = (ROOT / "pyproject.toml").read_text()
    assert 'id = "lut-layers"' in text and 'containers = ["cnnprof.lut"]' in text
    run = subprocess.run([lint, "--no-cache", "--contract", "lut-layers"], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout


def _imported_from_lut(tree: ast.Module) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of every name a module imports from another cnnprof.lut module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnprof.lut."):
            out += [(a.asname or a.name, node.lineno, node.end_lineno) for a in node.names]
    return out


@pytest.mark.parametrize("path", sorted(LUT.glob("*.py")), ids=lambda p: p.name)
def test_no_lut_module_hands_on_names_it_imports(path):
    """A name taken from another lut module is used where it is imported (in code or in an
    annotation), never only listed or imported so that callers can find it there."""
    if path.name == "__init__.py":
        return  # the package's names: the one place that gathers them
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    for name, first, last in _imported_from_lut(tree):
        rest = "\n".join(lines[:first - 1] + lines[last:])
        rest = re.sub(r"__all__ = \[.*?\]", "", rest, flags=re.DOTALL)
        assert re.search(rf"\b{re.escape(name)}\b", rest), f"{path.name} imports {name} and does not use it"
    exported = re.search(r"__all__ = \[(.*?)\]", source, flags=re.DOTALL)
    imported = {name for name, _, _ in _imported_from_lut(tree)}
    listed = set(re.findall(r'"(\w+)"', exported.group(1))) if exported else set()
    assert not listed & imported, f"{path.name} lists names of other modules in __all__: {listed & imported}"


def test_modes_and_allocators_are_enums_written_as_plain_words(tmp_path):
    assert MODES == ("isolated", "in-context") and ALLOCATORS == ("steady", "default")
    table = Table(backend="torch", threads=1, mode="in-context", allocator="steady")
    assert table.mode is Mode.IN_CONTEXT and table.allocator is Allocator.STEADY
    assert f"{table.mode} entries, {table.allocator} allocator" == "in-context entries, steady allocator"
    doc = json.loads(table.to_json())
    assert (doc["mode"], doc["allocator"]) == ("in-context", "steady")
    back = load(table.save(tmp_path / "t.json"))
    assert back.mode is Mode.IN_CONTEXT and back.allocator is Allocator.STEADY
    with pytest.raises(ValueError):
        Table(backend="torch", threads=1, mode="sideways")


@pytest.mark.parametrize("name", ["lut_tiny_in_context.json", "lut_tiny_isolated.json"])
def test_a_table_written_before_loads_and_saves_to_the_same_bytes(name, tmp_path):
    """Table files as an earlier cnnprof wrote them (an in-context one with a learned correction and
    the steady allocator, an isolated one with a single scale): same values, same file."""
    table = load(DATA / name)
    assert table.mode == json.loads((DATA / name).read_text())["mode"]
    assert table.to_json() == (DATA / name).read_text()
    assert table.save(tmp_path / name).read_text() == (DATA / name).read_text()


def test_old_tables_keep_their_calibration_and_predict_with_it():
    from cnnprof.lut.predict import SpaceMatrix
    from cnnprof.lut.table import Calibration

    table = load(DATA / "lut_tiny_in_context.json")
    cal = Calibration.from_dict(table.calibration)
    assert (cal.overhead_ms, cal.scales, cal.trained_on()) == (0.1, {"k3_e1": 1.1, "skip": 0.9}, {"012"})
    raw = SpaceMatrix.from_table(table, "tiny@32")
    calibrated = SpaceMatrix.from_table(table, "tiny@32", calibration=cal)
    assert calibrated.fixed_ms == pytest.approx(raw.fixed_ms + 0.1)
    single = Calibration.from_dict(load(DATA / "lut_tiny_isolated.json").calibration)
    assert single.single and single.default_scale == 1.25


def test_importing_the_cli_loads_only_the_table_module_of_lut():
    code = "import sys, cnnprof.cli; print(sorted(m for m in sys.modules if m.startswith('cnnprof.lut')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "['cnnprof.lut', 'cnnprof.lut.table']"


def test_the_package_names_load_on_first_use():
    from cnnprof import lut
    from cnnprof.lut.evaluate import additivity
    from cnnprof.lut.learn import calibrate_scale

    assert lut.additivity is additivity and lut.calibrate is calibrate_scale and lut.Mode is Mode
    assert sorted(lut.__all__) == sorted(lut._HOME) and set(lut.__all__) <= set(dir(lut))
    with pytest.raises(AttributeError):
        lut.no_such_name  # noqa: B018
