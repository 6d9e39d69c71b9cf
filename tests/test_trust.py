"""Data files name models; they do not run code (issue 30).

A gate baseline, a sweep file and a results database may name, without asking, only registered
models, .onnx files and .py files inside their own folder or git repository; anything else
(``package.module:factory``, a .py file elsewhere) is refused before it is imported, unless
``--trust`` names it. References typed on the command line keep working as before. A baseline
that lists one model twice under two spellings, or asks for numbers the command line would refuse
(a million threads, a million instances, an input no machine holds), is one line and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support import one_line
from test_gate import make_baseline, proc, procs, record_of, write

from cnnprof.errors import UsageError

ONE = ("--processes", "1", "--min-time", "0.2", "--extra-processes", "0", "--no-db")
HOSTILE = {
    "subprocess": "subprocess:getoutput(cmd='touch {x}')",
    "os.system": "os:system(command='touch {x}')",
}
# a module whose factory leaves a mark (so a test sees it ran) and returns a tiny network:
# Flatten + Linear(48 -> 2) at 3x4x4 is 98 parameters and 96 MACs
PROBE = """from pathlib import Path
from torch import nn

def net():
    with open({mark!r}, "a") as f:
        f.write("built\\n")
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
"""
PROBE_INPUT, PROBE_COUNTS = (3, 4, 4), {"params": 98, "macs": 96}
# a module that leaves a mark as soon as it is imported
ON_IMPORT = "open({mark!r}, 'w').close()\ndef net():\n    raise SystemExit('never')\n"


def baseline_of(folder: Path, *names: str, shape=(3, 64, 64), **record) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    models = [record_of(n, procs(3.0, 2), shape=shape, **record) for n in names]
    return write(folder / "baseline.json", make_baseline(models))


def edited(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def fake_measure(monkeypatch):
    """``gate check`` without its measurement processes: every model measures as recorded."""
    from cnnprof.gate import core
    from cnnprof.gate import measure as gm

    def fake(models, settings, *, processes=None, **_):
        names = tuple(m.name for m in models)
        run = gm.Run(names, rounds=12, measure_s=0.2, wall_s=1.0, others_cores=0.0)
        n = processes or settings.processes
        return {name: [proc(3.0, noise=0.0)] * n for name in names}, [run] * n

    monkeypatch.setattr(core, "measure", fake)


# -- 1. the gate baseline --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_gate_check_refuses_a_baseline_naming_a_module_factory_and_runs_nothing(cli, tmp_path, kind):
    x = tmp_path / "X"
    ref = HOSTILE[kind].format(x=x)
    path = baseline_of(tmp_path / "ci", ref)
    result = cli("gate", "check", "--baseline", str(path), *ONE)
    assert not x.exists()  # nothing ran
    assert result.exit_code == 2 and one_line(result), result.output
    assert ref.split("(")[0] in result.stderr and "not trusted" in result.stderr
    assert f"--trust {ref.split(':')[0]}" in result.stderr


def test_a_module_is_refused_before_it_is_imported(cli, tmp_path, monkeypatch):
    mark = tmp_path / "imported"
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "cnnprof_probe_on_import.py").write_text(ON_IMPORT.format(mark=str(mark)))
    monkeypatch.syspath_prepend(str(lib))
    path = baseline_of(tmp_path / "ci", "cnnprof_probe_on_import:net")
    result = cli("gate", "check", "--baseline", str(path), *ONE)
    assert result.exit_code == 2 and one_line(result) and "--trust cnnprof_probe_on_import" in result.stderr
    assert not mark.exists() and "cnnprof_probe_on_import" not in sys.modules


def test_a_py_file_outside_the_baselines_folder_is_refused_inside_it_is_not(cli, tmp_path, monkeypatch):
    fake_measure(monkeypatch)
    mark = tmp_path / "imported"
    (tmp_path / "elsewhere").mkdir()
    outside = tmp_path / "elsewhere" / "nets.py"
    outside.write_text(ON_IMPORT.format(mark=str(mark)))
    path = baseline_of(tmp_path / "ci", f"{outside}:net")
    result = cli("gate", "check", "--baseline", str(path), *ONE)
    assert result.exit_code == 2 and one_line(result) and not mark.exists()
    assert f"--trust {outside}" in result.stderr and "outside that file's folder" in result.stderr

    # the same kind of file next to the baseline is the user's own code: it loads without asking
    built = tmp_path / "built"
    inside = tmp_path / "ci" / "nets.py"
    inside.write_text(PROBE.format(mark=str(built)))
    path = baseline_of(tmp_path / "ci", f"{inside}:net", shape=PROBE_INPUT, **PROBE_COUNTS)
    result = cli("gate", "check", "--baseline", str(path), *ONE)
    assert result.exit_code == 0, result.output
    assert built.exists()


def test_a_py_file_in_the_baselines_git_repository_loads_without_asking(tmp_path):
    from cnnprof.references import check_trusted

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "nets").mkdir()
    (repo / "nets" / "mine.py").write_text("")
    (repo / "ci").mkdir()
    check_trusted([f"{repo}/nets/mine.py:net"], source=repo / "ci" / "baseline.json")
    with pytest.raises(UsageError, match="not trusted"):  # no repository: only its own folder
        check_trusted([f"{repo}/nets/mine.py:net"], source=tmp_path / "plain" / "baseline.json")


def test_trust_allows_a_module_factory_and_the_check_runs_it(cli, tmp_path, monkeypatch):
    fake_measure(monkeypatch)
    built = tmp_path / "built"
    lib = tmp_path / "lib" / "cnnprof_probe_pkg"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "nets.py").write_text(PROBE.format(mark=str(built)))
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    path = baseline_of(tmp_path / "ci", "cnnprof_probe_pkg.nets:net", shape=PROBE_INPUT, **PROBE_COUNTS)
    assert cli("gate", "check", "--baseline", str(path), *ONE).exit_code == 2 and not built.exists()
    result = cli("gate", "check", "--baseline", str(path), *ONE, "--trust", "cnnprof_probe_pkg")
    assert result.exit_code == 0, result.output
    assert built.exists()  # trusted: its factory ran (to count it)


POLICY = [  # (reference, where the file is, trusted values, allowed?)
    ("mobilenetv3_small", None, (), True),
    ("ghostnet*", None, (), True),
    ("MobileNetV3", None, (), True),
    ("/anywhere/model.onnx", None, (), True),
    ("torchvision:resnet18", None, (), True),
    ("timm:hf-hub:someone/net", None, (), False),
    ("timm:hf-hub:someone/net", None, ("timm",), True),
    ("torchvision:resnet18(weights='x')", None, (), False),
    ("pkg.sub:net", None, (), False),
    ("pkg.sub:net", None, ("pkg",), True),
    ("pkg.sub:net", None, ("pkg.sub",), True),
    ("pkgx.sub:net", None, ("pkg",), False),
    ("pkg.sub:net", None, ("pkg.sub:net",), True),
    ("{tmp}/data/nets.py:net", None, (), True),
    ("{tmp}/data/deeper/nets.py:net", None, (), True),
    ("{tmp}/other/nets.py:net", None, (), False),
    ("{tmp}/other/nets.py:net", None, ("{tmp}/other",), True),
    ("{tmp}/other/nets.py:net", None, ("{tmp}/other/nets.py",), True),
    ("{tmp}/other/nets.py:net", None, ("{tmp}/data",), False),
    ("{tmp}/data/link.py:net", "{tmp}/other/nets.py", (), False),  # a link inside to a file outside
    ("{tmp}/other/n\x00ts.py:net", None, (), False),  # no path at all: one line, not a traceback
]


@pytest.mark.parametrize("ref, link, trusted, allowed", POLICY)
def test_the_trust_policy(tmp_path, ref, link, trusted, allowed):
    from cnnprof.references import check_trusted

    (tmp_path / "data" / "deeper").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "nets.py").write_text("")
    if link:
        Path(ref.format(tmp=tmp_path).split(":")[0]).symlink_to(link.format(tmp=tmp_path))
    ref = ref.format(tmp=tmp_path)
    trusted = tuple(t.format(tmp=tmp_path) for t in trusted)
    source = tmp_path / "data" / "sweep.toml"
    if allowed:
        check_trusted([ref], source=source, trusted=trusted, what="sweep file")
    else:
        with pytest.raises(UsageError, match=r"^sweep file .* not trusted .* pass --trust "):
            check_trusted([ref], source=source, trusted=trusted, what="sweep file")


# -- the sweep file --------------------------------------------------------------------------------
def sweep_file(folder: Path, *models: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.toml"
    path.write_text("models = [" + ", ".join(json.dumps(m) for m in models) + "]\n")
    return path


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_sweep_file_naming_a_module_factory_is_refused_and_runs_nothing(cli, tmp_path, kind):
    x = tmp_path / "X"
    ref = HOSTILE[kind].format(x=x)
    config = sweep_file(tmp_path / "conf", ref)
    result = cli("sweep", "--config", str(config), "--no-timing", "--db", str(tmp_path / "r.db"))
    assert not x.exists()
    assert result.exit_code == 2 and one_line(result), result.output
    assert "sweep file" in result.stderr and f"--trust {ref.split(':')[0]}" in result.stderr
    assert not (tmp_path / "r.db").exists()  # refused before the database is opened


def test_a_sweep_file_may_name_its_own_py_files_and_trusted_modules(cli, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "nets.py").write_text("")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "nets.py").write_text("")
    config = sweep_file(tmp_path / "conf", f"{tmp_path}/conf/nets.py:net", "mobilenetv3_small")
    result = cli("sweep", "--config", str(config), "--no-timing", "--list")
    assert result.exit_code == 0, result.output
    assert f"{tmp_path}/conf/nets.py:net count" in result.stdout
    config = sweep_file(tmp_path / "conf", f"{tmp_path}/elsewhere/nets.py:net", "harmless.module:net")
    result = cli("sweep", "--config", str(config), "--no-timing", "--list")
    assert result.exit_code == 2 and one_line(result) and "elsewhere" in result.stderr
    result = cli("sweep", "--config", str(config), "--no-timing", "--list", "--trust", f"{tmp_path}/elsewhere",
                 "--trust", "harmless")
    assert result.exit_code == 0, result.output
    assert "harmless.module:net count" in result.stdout


def test_references_typed_on_the_command_line_need_no_trust(cli, tmp_path):
    config = sweep_file(tmp_path / "conf", "json:loads")
    # the models given here replace the file's: those are the user's own words
    result = cli("sweep", "harmless.module:net", "--config", str(config), "--no-timing", "--list")
    assert result.exit_code == 0, result.output
    assert "harmless.module:net count" in result.stdout


# -- the results database --------------------------------------------------------------------------
def hostile_database(path: Path, ref: str) -> None:
    """A database holding ``ref`` as a model: timed rows (history reads them) and an unfinished
    sweep of it (what --resume looks for)."""
    from store_data import fill

    from cnnprof.store import Store
    from cnnprof.store.columns import Kind
    from cnnprof.sweep.driver import plan_digest
    from cnnprof.sweep.matrix import Cell
    from cnnprof.timing.environment import fingerprint

    fill(path, revisions=2, models=[ref], batches=(1,), backends=("torch",), kinds=False)
    cell = Cell(model=ref, backend="", batch=1, threads=1)
    with Store.open(path) as store:
        run = store.start_run("sweep", ["cnnprof", "sweep", ref], environment=fingerprint(1).to_dict(),
                              context={"plan": plan_digest([cell], 1), "cells": 1, "passes": 1})
        store.add_pass(run, cell.key, 1, kind=Kind.PROFILE, environment=fingerprint(1).to_dict(), host=None, ok=False,
                       seconds=1.0, overhead=None, samples=None, result={"ok": False}, error="stopped",
                       pooled={"model": ref, "error": "stopped"}, passes=1)


def test_history_and_resume_of_a_database_naming_a_module_factory_run_nothing(cli, tmp_path, monkeypatch):
    from cnnprof.sweep import executor

    x = tmp_path / "X"
    ref = HOSTILE["subprocess"].format(x=x)
    db = tmp_path / "r.db"
    hostile_database(db, ref)
    result = cli("history", ref, "--db", str(db), "-f", "json")
    assert result.exit_code == 0, result.output
    assert {line["model"] for line in json.loads(result.stdout)} == {ref}

    jobs: list = []

    class Recorder:  # the worker processes, left out: what matters is which cells they are given
        def __init__(self, **_):
            self.parallel = 1

        def run(self, given, on_result, should_stop):
            for job in given:
                jobs.append(job["cell"]["model"])
                on_result(job, executor.failure(job, "not run in this test"))

    monkeypatch.setattr(executor, "LocalExecutor", Recorder)
    result = cli("sweep", "mobilenetv3_small", "--no-timing", "--resume", "--db", str(db), "-f", "json")
    assert result.exit_code == 1 and "not run in this test" in result.stdout, result.output
    assert jobs == ["mobilenetv3_small"]
    assert not x.exists()


# -- 2. one model under two spellings ----------------------------------------------------------------
@pytest.mark.parametrize("first, second", [
    ("mobilenetv3_large", "mobilenetv3"),  # the family alias
    ("mobilenetv3_small", "MobileNetV3_Small"),  # case
    ("{tmp}/nets.py:net", "./nets.py:net"),  # the same file by two paths
    ("./nets.py:net", "./nets.py:net()"),  # no options, written two ways
    ("{tmp}/m.onnx", "./m.onnx"),
])
def test_a_baseline_listing_one_model_twice_is_refused(cli, tmp_path, monkeypatch, first, second):
    fake_measure(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(PROBE.format(mark=str(tmp_path / "built")))
    path = baseline_of(tmp_path, first.format(tmp=tmp_path), second.format(tmp=tmp_path), shape=PROBE_INPUT,
                       **PROBE_COUNTS)
    result = cli("gate", "check", "--baseline", str(path), *ONE)
    assert result.exit_code == 2 and one_line(result), result.output
    assert "appears twice" in result.stderr and "built" not in {p.name for p in tmp_path.iterdir()}


def test_same_model_tells_spellings_apart_only_when_they_differ(tmp_path, monkeypatch):
    from cnnprof.references import same_model

    monkeypatch.chdir(tmp_path)
    assert same_model("ghostnet") == same_model("GhostNet_100") != same_model("ghostnet_130")
    assert same_model("./a.py:net(width=2)") == same_model(f"{tmp_path}/a.py:net( width = 2 )")
    assert same_model("./a.py:net(width=2)") != same_model("./a.py:net(width=3)")
    assert same_model("./a.py:net") != same_model("./b.py:net") != same_model("b:net")
    assert same_model("./a\x00.py:net") != same_model("./a.py:net")  # no path: compared as written


def test_gate_record_refuses_one_model_given_twice(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(PROBE.format(mark=str(tmp_path / "built")))
    result = cli("gate", "record", "nets.py:net", f"{tmp_path}/nets.py:net", "--input", "3x4x4", "--baseline",
                 str(tmp_path / "b.json"), *ONE[:4], "--no-db")
    assert result.exit_code == 2 and one_line(result) and "same model" in result.stderr
    assert not (tmp_path / "b.json").exists()


# -- 3. a baseline's numbers, held to the command line's bounds ---------------------------------------
def _set(key, value):
    def change(doc):
        doc[key] = value
    return change


NUMBERS = {
    "a million threads": (lambda d: d.update(threads=1_000_000, threads_spec="1000000"), "threads"),
    "threads beyond the recorded cores": (lambda d: d.update(threads=d["environment"]["cores"] + 1), "cores"),
    "threads not a count": (_set("threads_spec", "lots"), "threads must be a positive integer"),
    "threads a float": (_set("threads_spec", 2.5), "threads_spec should be"),
    "a million instances": (lambda d: d["protocol"].update(instances=1_000_000), "instances"),
    "zero instances": (lambda d: d["protocol"].update(instances=0), "instances"),
    "an input no machine holds": (lambda d: d["models"][0].update(input=[3, 100_000, 100_000]), "input 3x100000x100000"),
    "channels the model does not take": (lambda d: d["models"][0].update(input=[5, 64, 64]), "input channel"),
}


@pytest.mark.parametrize("case", list(NUMBERS))
def test_a_baseline_with_numbers_the_command_line_refuses_is_one_line(cli, tmp_path, monkeypatch, case):
    fake_measure(monkeypatch)
    change, needle = NUMBERS[case]
    path = edited(baseline_of(tmp_path, "mobilenetv3_small"), change)
    result = cli("gate", "check", "--baseline", str(path), *ONE)
    assert result.exit_code == 2 and one_line(result), result.output
    assert needle in result.stderr and "baseline.json" in result.stderr


def test_a_baseline_asking_for_more_threads_than_this_machine_has_is_capped(tmp_path):
    from cnnprof.gate import core
    from cnnprof.gate.baseline import load_baseline
    from cnnprof.timing.environment import cpu_count

    path = edited(baseline_of(tmp_path, "mobilenetv3_small"), _set("threads_spec", "1000000"))
    threads, env, diffs = core.prepare(load_baseline(path), source=str(path), strict_env=False)
    assert threads == cpu_count() == env["threads"]


def test_instances_on_the_command_line_have_the_same_bound(cli, tmp_path):
    from cnnprof.gate.measure import MAX_INSTANCES

    result = cli("gate", "record", "mobilenetv3_small", "--instances", str(MAX_INSTANCES + 1), "--baseline",
                 str(tmp_path / "b.json"))
    assert result.exit_code == 2 and not (tmp_path / "b.json").exists()
