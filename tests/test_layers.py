"""The layer order of DESIGN.md, as import-linter contracts in pyproject.toml: a broken contract
fails this test and is named, with the import lines that break it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(tmp_path: Path, config: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` of the venv running the tests, on this checkout, with ``config``."""
    script = Path(sys.executable).with_name("lint-imports")
    if not script.exists():
        pytest.fail(f"lint-imports is not installed next to {sys.executable} (pip install import-linter)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([str(script), str(config), "--no-logo", "--cache-dir", str(tmp_path / "cache")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def broken_contracts(output: str) -> str:
    """The part of lint-imports' report that names the broken contracts and their imports."""
    start = output.find("Broken contracts")
    return output[start:] if start >= 0 else output


def test_the_layer_order_holds(tmp_path):
    result = lint_imports(tmp_path, ROOT / "pyproject.toml")
    assert "Contracts:" in result.stdout, result.stdout + result.stderr  # it ran and read the contracts
    assert result.returncode == 0, "broken import contracts:\n" + broken_contracts(result.stdout)
    assert " 0 broken" in result.stdout


def test_a_broken_contract_fails(tmp_path):
    """The check can fail: a contract that the code breaks (rows importing the command line is
    forbidden here on purpose) is reported as broken, with the import that breaks it."""
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_package = "cnnprof"\n\n[[tool.importlinter.contracts]]\n'
                      'name = "the command line imports no results database"\ntype = "forbidden"\n'
                      'source_modules = ["cnnprof.cli"]\nforbidden_modules = ["cnnprof.store"]\n')
    result = lint_imports(tmp_path, config)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "cnnprof.cli" in broken_contracts(result.stdout)


def import_circles(package: str) -> list[list[str]]:
    """The import circles of ``package``: every group of two or more modules that reach each other
    through imports (any import grimp sees: top-level, inside a function, under TYPE_CHECKING),
    found as the strongly connected components of grimp's graph (Tarjan's, without recursion)."""
    try:
        import grimp
    except ImportError:
        pytest.fail("grimp is not installed (it comes with import-linter: pip install import-linter)")
    graph = grimp.build_graph(package, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.find_modules_directly_imported_by(step)))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))
    return sorted(circles)


def circle_report(package: str, circles: list[list[str]]) -> str:
    """Each circle with the import lines inside it (``a -> b  line 12: from ... import ...``)."""
    import grimp

    graph = grimp.build_graph(package, cache_dir=None)
    lines = []
    for group in circles:
        lines.append(" <-> ".join(group))
        for a in group:
            for b in group:
                if a != b and graph.direct_import_exists(importer=a, imported=b):
                    for d in graph.get_import_details(importer=a, imported=b):
                        lines.append(f"    {a} -> {b}  line {d['line_number']}: {d['line_contents']}")
    return "\n".join(lines)


def test_no_import_circle():
    """No module of cnnprof reaches itself through imports, lazy ones included."""
    circles = import_circles("cnnprof")
    assert not circles, f"{len(circles)} import circle(s) in cnnprof:\n" + circle_report("cnnprof", circles)


def test_an_import_circle_is_found(tmp_path, monkeypatch):
    """The check can fail: a package whose ``a`` imports ``b`` at the top, ``b`` imports ``c``, and
    ``c`` imports ``a`` inside a function (a lazy import hides no circle) is one circle of three;
    ``d``, imported by ``a`` and importing nothing back, is in none."""
    pkg = tmp_path / "circle_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circle_probe_pkg import b, d\n")
    (pkg / "b.py").write_text("import circle_probe_pkg.c\n")
    (pkg / "c.py").write_text("def later():\n    from circle_probe_pkg import a\n    return a\n")
    (pkg / "d.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    circles = import_circles("circle_probe_pkg")
    assert circles == [["circle_probe_pkg.a", "circle_probe_pkg.b", "circle_probe_pkg.c"]]
    assert "circle_probe_pkg.c -> circle_probe_pkg.a  line 2" in circle_report("circle_probe_pkg", circles)
