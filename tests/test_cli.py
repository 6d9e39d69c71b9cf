"""The command line through Typer's CliRunner: exit codes, one-line errors, JSON fields, CSV header."""

import csv
import io
import json
import subprocess
import sys

import pytest

from cnnprof.rows import ProfileRow


def test_help_lists_commands_with_examples(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("list", "profile", "compare"):
        assert command in result.stdout
    assert "cnnprof profile efficientnet_b0" in cli("profile", "--help").stdout


def test_help_paragraphs_are_reflowed_so_a_narrow_terminal_wraps_them_once():
    from cnnprof.cli import app, reflow

    doc = """First line.

        Prose that the source
        wrapped at its own width.

        Examples:

          cnnprof lut build
          cnnprof lut predict fbnet_a

        * a list item
          continued
        """
    assert reflow(doc).split("\n\n") == [
        "First line.", "Prose that the source wrapped at its own width.", "Examples:",
        "  cnnprof lut build\n  cnnprof lut predict fbnet_a", "* a list item\n  continued"]
    assert reflow(None) is None
    # every registered command's help: prose paragraphs are single lines (typer keeps line breaks)
    groups, seen = [app], 0
    while groups:
        group = groups.pop()
        groups += [g.typer_instance for g in group.registered_groups]
        for info in group.registered_commands:
            seen += 1
            for para in (info.help or "").split("\n\n"):
                lines = para.split("\n")
                assert len(lines) == 1 or lines[1].startswith((" ", "* ", "- ")), (info.name, para[:60])
    assert seen >= 15


def test_help_does_not_import_torch():
    code = "import sys, cnnprof.cli, cnnprof.models.catalog; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_list_csv_has_name_first_and_every_variant(cli):
    result = cli("list", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[0] == "model"
    names = [r["model"] for r in rows]
    assert "efficientnet_b0" in names and "mobilenetv3_small" in names
    b0 = next(r for r in rows if r["model"] == "efficientnet_b0")
    assert b0["paper_params"] == "5300000" and b0["official_params"] == "5288548"
    assert "arXiv:1905.11946" in b0["citation"]


def test_list_patterns_and_aliases(cli):
    result = cli("list", "efficientnet_b?", "mobilenetv3", "-f", "json")
    names = [r["model"] for r in json.loads(result.stdout)]
    assert names == [f"efficientnet_b{i}" for i in range(8)] + ["mobilenetv3_large"]


def test_profile_json_rows_carry_the_design_fields(cli):
    result = cli("profile", "mobilenetv3_small", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert list(rows[0]) == ProfileRow.field_names()
    row = rows[0]
    assert row["model"] == "mobilenetv3_small" and row["family"] == "mobilenetv3"
    assert row["input"] == "3x224x224" and row["batch"] == 1
    assert row["params"] == 2542856
    assert abs(row["macs"] - 56.5e6) / 56.5e6 < 0.01
    assert row["macs_fvcore"] > row["macs"]
    assert "aten::hardswish" in row["uncounted_ops"]
    assert row["counts_status"] == "complete" and row["error"] == ""


def test_profile_csv_header_is_stable_and_batch_scales_macs(cli):
    one = cli("profile", "mobilenetv3_small", "-r", "96", "-f", "csv")
    two = cli("profile", "mobilenetv3_small", "-r", "96", "-b", "2", "-f", "csv")
    header = one.stdout.splitlines()[0].split(",")
    assert header == ProfileRow.field_names()
    r1 = next(csv.DictReader(io.StringIO(one.stdout)))
    r2 = next(csv.DictReader(io.StringIO(two.stdout)))
    assert r1["input"] == "3x96x96" and r2["batch"] == "2"
    assert int(r2["macs"]) == 2 * int(r1["macs"]) and r2["params"] == r1["params"]


def test_profile_table_shows_modules_and_operators(cli):
    result = cli("profile", "mobilenetv3_small", "--depth", "1")
    assert result.exit_code == 0
    assert "per module" in result.stdout and "blocks" in result.stdout
    assert "per operator" in result.stdout and "not counted" in result.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["profile", "efficentnet_b0"], "did you mean: efficientnet_b0"),
        (["profile", "nomatch*"], "matches no model"),
        (["profile", "mobilenetv3_small", "-r", "0"], "must be positive"),
        (["profile", "mobilenetv3_small", "-r", "-5"], "must be positive"),
        (["profile", "mobilenetv3_small", "-r", "16"], "too small"),
        (["profile", "mobilenetv3_small", "-r", "big"], "N or HxW"),
        (["profile", "mobilenetv3_small", "-b", "0"], "batch must be at least 1"),
        (["profile", "mobilenetv3_small", "-f", "xml"], "--format"),
        (["profile", "mobilenetv3_small", "-o", "/nonexistent-dir/out.csv"], "does not exist"),
        (["compare", "mobilenetv3_small", "nope_net"], "unknown model"),
        (["list", "zzz*"], "matches no model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, needle):
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cnnprof: error:")
    assert needle in result.stderr
    assert "Traceback" not in result.output


def test_output_file_is_written_whole_and_kept_on_failure(cli, tmp_path):
    out = tmp_path / "report.json"
    assert cli("profile", "mobilenetv3_small", "-r", "64", "-f", "json", "-o", str(out)).exit_code == 0
    before = out.read_text()
    assert json.loads(before)[0]["input"] == "3x64x64"
    assert cli("profile", "nope_net", "-f", "json", "-o", str(out)).exit_code == 2
    assert out.read_text() == before  # untouched by the failed run
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary files left


def test_compare_ratios_and_saved_csv(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("compare", "mobilenetv3_small", "mobilenetv3_large", "-r", "96", "--no-timing", "-f", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["macs_ratio"] == 1.0
    assert rows[1]["macs_ratio"] == pytest.approx(rows[1]["macs"] / rows[0]["macs"])
    saved = list((tmp_path / "reports").glob("compare-*.csv"))
    assert len(saved) == 1 and f"saved {saved[0].relative_to(tmp_path)}" in result.stderr
    assert saved[0].read_text().splitlines()[0].startswith("model,family,input")


@pytest.mark.parametrize("terminal", [True, False])
def test_the_progress_bars_of_lut_build_and_sweep_draw_on_a_terminal_and_print_lines_elsewhere(monkeypatch, terminal):
    from types import SimpleNamespace

    from rich.console import Console

    from cnnprof.cli import common, lut, sweep

    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=120)
    monkeypatch.setattr(common, "stderr_console", lambda: console)
    lines = []
    monkeypatch.setattr(common, "say", lines.append)
    with lut.progress_bar() as update:
        update(1, 2, "fbnet L00 k3_e1")
        update(2, 2, "done")
    status = SimpleNamespace(done=2, total=2, failed=1, stopping=False, current="tiny_net count b1 t1")
    with sweep.progress_bar() as update:
        update(status)
    if terminal:
        assert "timing" in out.getvalue() and lines == []
    else:  # the sweep's last line always; the build's only after 5 s
        assert lines == ["[    0s] 2/2 cell passes, 1 failed; last: tiny_net count b1 t1"]
