"""Inputs that used to crash or mislead, and tables a person can read (classes 7-13 of the
hostile-input review): every bad input is one line on stderr with exit 2, a run of several
models reports a failing one as its row and exits 1, and tables fit a narrow terminal without
cutting what identifies a row."""

import io
import json
from pathlib import Path

import pytest
from support import one_line

USER = str(Path(__file__).with_name("user_model.py"))


# -- 7. values that overflow or make no sense ------------------------------------------------------
def test_more_threads_than_cores_are_capped_and_said(cli, tmp_path, monkeypatch):
    from cnnprof.timing.environment import cpu_count

    monkeypatch.chdir(tmp_path)
    result = cli("bench", f"{USER}:tiny_net", "--threads", "999", "--min-time", "0", "--min-runs", "2", "-f", "json",
                 "--no-save")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["threads"] == cpu_count()
    assert f"--threads 999: this process may use {cpu_count()} cores" in result.stderr


@pytest.mark.parametrize("threads", ["²", "99999999999999999999999", "-3", "1.5", "٣"])
def test_threads_that_are_not_a_count_are_one_line(cli, threads):
    result = cli("bench", "mobilenetv3_small", "--threads", threads)
    assert result.exit_code == 2 and one_line(result) and "threads must be a positive integer" in result.stderr


@pytest.mark.parametrize("phi, needle", [("1e308", "far beyond"), ("30", "GMACs; cnnprof builds up to")])
def test_a_phi_too_large_to_build_is_refused_before_building(cli, phi, needle):
    result = cli("scale", "--phi", phi)
    assert result.exit_code == 2 and one_line(result) and needle in result.stderr


def test_an_input_that_cannot_fit_in_memory_is_one_line(cli):
    result = cli("profile", "efficientnet_b0", "--resolution", "100000")
    assert result.exit_code == 2 and one_line(result) and "GB free here" in result.stderr
    result = cli("profile", "efficientnet_b0", "--resolution", "4000x500000")
    assert result.exit_code == 2 and one_line(result)


def test_running_out_of_memory_in_a_forward_is_not_called_a_rejected_input(cli):
    result = cli("profile", f"{USER}:out_of_memory")
    assert result.exit_code == 2 and one_line(result)
    assert "ran out of memory" in result.stderr and "rejects input" not in result.stderr


# -- 8. hostile JSON in a baseline or a table ---------------------------------------------------
HOSTILE = {
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "an integer too long": '{"schema": ' + "9" * 5000 + "}",
    "Infinity": '{"schema": Infinity}',
    "NaN": '{"threads": NaN}',
    "a number out of range": '{"threads": 1e999}',
}


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("kind", ["baseline", "table"])
def test_hostile_json_is_one_line_naming_the_file(cli, tmp_path, case, kind):
    path = tmp_path / "hostile.json"
    path.write_text(HOSTILE[case])
    if kind == "baseline":
        result = cli("gate", "check", "--baseline", str(path))
    else:
        result = cli("lut", "predict", "--sample", "2", "--table", str(path))
    assert result.exit_code == 2 and one_line(result) and "hostile.json" in result.stderr, (case, result.output)


def test_negative_counts_in_a_baseline_and_a_table_are_refused(tmp_path):
    from cnnprof.gate.baseline import parse_baseline
    from cnnprof.lut.table import parse

    with pytest.raises(Exception, match="negative"):
        parse_baseline({"schema": "cnnprof.gate.baseline/1", "calibration": {"version": 1}, "models": [
            {"name": "m", "processes": [{"ms": [1.0], "calibration_before_ms": [1.0], "calibration_after_ms": [1.0]}],
             "input": [3, 8, 8], "params": -5, "macs": 10}]})
    doc = {"schema": "cnnprof-lut/1", "backend": "torch", "threads": 1, "environments": {"e": {}},
           "entries": {"k": {"label": "x", "input": [3, 8, 8], "median_ms": 1.0, "iqr_ms": 0.1, "p10_ms": 1.0,
                             "p90_ms": 1.0, "runs": -3, "env": "e"}}}
    with pytest.raises(ValueError, match="runs must be a positive integer"):
        parse(doc)


# -- 9. a user's factory that exits or prints -------------------------------------------------------
def test_a_factory_that_calls_sys_exit_is_an_error_not_a_silent_exit_0(cli):
    result = cli("profile", f"{USER}:exits")
    assert result.exit_code == 2 and one_line(result) and "called sys.exit(3)" in result.stderr


def test_a_model_that_prints_does_not_corrupt_csv_or_json(cli):
    result = cli("profile", f"{USER}:talks", "-f", "csv")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.startswith("model,family") and row.startswith(f"{USER}:talks,")
    assert "factory says hello" in result.stderr and "forward says hello" in result.stderr
    result = cli("profile", f"{USER}:talks", "-f", "json")
    assert json.loads(result.stdout)[0]["params"] == 4 * 3 * 9 + 4


# -- 10. multi-model runs: a failing model is its row, and the run exits 1 ---------------------------
def test_one_failing_factory_is_its_row_and_the_run_exits_1(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("compare", f"{USER}:tiny_net", f"{USER}:broken", f"{USER}:exits_in_forward", "--no-timing", "-f",
                 "json")
    assert result.exit_code == 1
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    assert rows[f"{USER}:tiny_net"]["params"] == 322 and rows[f"{USER}:tiny_net"]["error"] == ""  # 216 + 16 + 90
    assert "the factory raised ValueError" in rows[f"{USER}:broken"]["error"]
    assert "called sys.exit(4)" in rows[f"{USER}:exits_in_forward"]["error"]
    assert result.stderr.strip().endswith("see their error column") and "some rows failed: 2 of 3" in result.stderr


# -- 11. no arguments, --version, suggestions, library wording, enormous names ---------------------
def test_no_arguments_prints_help_and_exits_0(cli):
    result = cli()
    assert result.exit_code == 0 and "Usage" in result.stdout and "error" not in result.stderr


def test_version(cli):
    from cnnprof import __version__

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"cnnprof {__version__}"


def test_suggestions_name_each_model_once(cli):
    for typo in ("espnett", "ghostnet_10", "efficientnett"):
        result = cli("profile", typo)
        suggested = result.stderr.split("did you mean: ")[1].split("?")[0].split(", ")
        assert len(suggested) == len(set(suggested)), suggested
        from cnnprof.models import registry

        canonical = [registry.get(s).name for s in suggested]
        assert len(canonical) == len(set(canonical)), (typo, suggested)


def test_messages_do_not_leak_library_wording_and_shorten_huge_names(cli):
    result = cli("profile", "efficientnet_b0", "--format", "xml")
    assert result.exit_code == 2 and "Value error" not in result.stderr and "'xml' is not one of" in result.stderr
    result = cli("profile", "x" * 5000)
    assert result.exit_code == 2 and one_line(result) and len(result.stderr) < 400


# -- 12-13. tables a person can read -------------------------------------------------------------------
@pytest.fixture
def terminal(monkeypatch):
    """The report printed as on a terminal of a given width (no colour codes)."""
    from rich.console import Console

    from cnnprof import terminal as term

    def at(width: int):
        out = io.StringIO()
        monkeypatch.setattr(term, "stdout_console", lambda: Console(file=out, width=width, force_terminal=True,
                                                                   color_system=None, highlight=False, markup=False))
        return out

    return at


@pytest.mark.parametrize("width", [80, 120])
def test_list_shows_whole_model_names_in_a_narrow_terminal(cli, terminal, width):
    from cnnprof.models import registry

    out = terminal(width)
    assert cli("list").exit_code == 0
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    first_cells = [line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.split()]
    for name in registry.list_models():
        assert name in first_cells, name
    assert "…" not in text


def test_profile_keeps_params_and_batch_at_80_columns(cli, terminal):
    out = terminal(80)
    assert cli("profile", "efficientnet_b0", "ghostnet", "mobilenetv3_small").exit_code == 0
    text = out.getvalue()
    header = next(line for line in text.splitlines() if "model" in line)
    assert "batch" in header and "params" in header and max(len(line) for line in text.splitlines()) <= 80
    assert "left out" in text  # says which columns it left out


@pytest.mark.parametrize("width", [80, 120])
def test_compare_headers_never_break_inside_a_word(cli, terminal, width, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = terminal(width)
    assert cli("compare", "efficientnet_b0", "mobilenetv3_small", "--no-timing", "--no-save").exit_code == 0
    text = out.getvalue()
    words = {w for line in text.splitlines() for w in line.split()}
    for header_word in ("model", "input", "params", "MACs"):
        assert header_word in words
    assert not any(len(w) == 1 and w.isalpha() for w in words)  # no header spelled one letter a line
    assert "efficientnet_b0" in words and "mobilenetv3_small" in words


def test_compare_without_timing_does_not_title_latency_settings(cli, terminal, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = terminal(200)
    assert cli("compare", "mobilenetv3_small", "ghostnet", "--no-timing", "--threads", "2", "--no-save").exit_code == 0
    title = out.getvalue().splitlines()[0]
    assert title.startswith("compared with mobilenetv3_small") and "latency" not in title and "thread" not in title


def test_piped_tables_keep_every_column(cli):
    result = cli("list", "ghostnet")
    assert "citation" in result.stdout and "MACs (official)" in result.stdout and "left out" not in result.stdout
