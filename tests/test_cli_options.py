"""Options shared by several commands are declared once (cli/options.py): the same long name has
the same short flag everywhere, bench and compare take the same group of options, and
``compare --batch`` takes a list as ``bench --batch`` does."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cnnprof.cli.options import Measure, grouped  # module level: grouped reads the command's annotations


def commands():
    """Every command of the app, by its path ("bench", "db rows", ...), as click sees it."""
    from typer.main import get_command

    from cnnprof.cli import app

    def walk(cmd, path):
        if not getattr(cmd, "commands", None):
            yield " ".join(path), cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return dict(walk(get_command(app), []))


def options_of(cmd) -> dict[str, object]:
    return {o: p for p in cmd.params if p.param_type_name == "option" for o in p.opts if o.startswith("--")}


# `lut calibrate --batch` is another quantity (networks per step of the adaptive choice) that
# happens to share the name; it takes no short flag so that `-b` always means a batch size.
OTHER_MEANING = {("lut calibrate", "--batch")}


def test_a_shared_option_has_the_same_names_on_every_command():
    from cnnprof.cli.options import FLAGS

    longs = {names[0]: set(names) for names in FLAGS.values()}
    seen = []
    for path, cmd in commands().items():
        for long, p in options_of(cmd).items():
            if long in longs and (path, long) not in OTHER_MEANING:
                assert set(p.opts) | set(p.secondary_opts) == longs[long], (path, long, p.opts)
                seen.append((path, long))
    # -p works wherever --precision does, including the commands that lacked it
    for path in ("bench", "compare", "sweep", "history", "db rows", "gate record", "scale"):
        assert (path, "--precision") in seen
        assert "-p" in options_of(commands()[path])["--precision"].opts


def test_batch_is_a_list_of_sizes_wherever_it_is_measured_or_filtered():
    every = commands()
    for path in ("bench", "compare", "sweep", "history", "db rows"):
        assert options_of(every[path])["--batch"].bare_type() == "str", path


def test_bench_and_compare_take_the_same_measure_group():
    every = commands()
    bench, compare = options_of(every["bench"]), options_of(every["compare"])
    by_name = {p.name: p for p in every["bench"].params}
    for f in dataclasses.fields(Measure):
        p = by_name[f.name]
        long = next(o for o in p.opts if o.startswith("--"))
        assert bench[long].opts == compare[long].opts and bench[long].default == compare[long].default == f.default


def test_grouped_hands_the_command_the_assembled_group():
    got = {}

    @grouped
    def command(models: list[str], m: Measure = Measure(), last: int = 3):
        got.update(models=models, m=m, last=last)

    import inspect

    names = list(inspect.signature(command).parameters)
    assert names[0] == "models" and names[-1] == "last" and "m" not in names
    assert set(names[1:-1]) == {f.name for f in dataclasses.fields(Measure)}
    command(models=["a"], threads="2", precision="int8", last=4)
    assert got["m"] == dataclasses.replace(Measure(), threads="2", precision="int8")
    assert got["models"] == ["a"] and got["last"] == 4


def test_compare_batch_takes_a_list_and_one_number_still_works(cli):
    result = cli("compare", "mobilenetv3_small", "ghostnet_050", "--no-timing", "--batch", "1,2", "--format", "json",
                 "--no-save", "--no-db")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted((r["model"], r["batch"]) for r in rows) == [("ghostnet_050", 1), ("ghostnet_050", 2),
                                                             ("mobilenetv3_small", 1), ("mobilenetv3_small", 2)]
    by = {(r["model"], r["batch"]): r for r in rows}
    assert by[("mobilenetv3_small", 2)]["macs"] == 2 * by[("mobilenetv3_small", 1)]["macs"]
    # ratios are to the first model at the same batch size
    assert by[("ghostnet_050", 2)]["macs_ratio"] == pytest.approx(by[("ghostnet_050", 1)]["macs_ratio"])
    one = cli("compare", "mobilenetv3_small", "--no-timing", "--batch", "4", "--format", "json", "--no-save", "--no-db")
    assert one.exit_code == 0 and [r["batch"] for r in json.loads(one.stdout)] == [4]


def test_compare_table_shows_a_line_per_model_and_batch(cli):
    result = cli("compare", "mobilenetv3_small", "--no-timing", "--batch", "1,3", "--no-save", "--no-db")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "mobilenetv3_small" in line and "3x224x224" in line]
    assert len(lines) == 2
