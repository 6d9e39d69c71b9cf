"""The ``cnnprof`` command line: one module per command, each thin (parse -> call a room -> render).

Errors a user can cause print one line on stderr (``cnnprof: error: ...``) and exit 2 (bad
usage) or 1 (a check failed); a traceback is a bug. Only typer is imported here, so
``cnnprof --help`` answers at once; commands import torch when they run.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cnnprof.errors import CnnprofError, shorten


def fail(message: str, code: int = 2) -> None:
    """One line on stderr (control characters in it shown escaped), then exit with ``code``."""
    from cnnprof.terminal import printable

    sys.stderr.write(f"cnnprof: error: {printable(message, newlines=True)}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def _printable_streams() -> None:
    """A character stdout or stderr cannot encode (an ASCII-only terminal, PYTHONIOENCODING=ascii,
    a name with an unpaired surrogate) is written as an escape such as ``\\u03b1``, never an
    error half-way through a report."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text stream of io's (a test's capture)
            pass


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is: it unwinds as Ctrl-C does (temporary folders removed,
    workers stopped), then exit 143."""


_TERMINATED: list[bool] = []  # set once SIGTERM came: a command's "interrupted" exit (130) becomes 143


def _on_sigterm(signum, frame) -> None:
    _TERMINATED.append(True)
    raise _Terminated()


def _handle_sigterm():
    """Install ``_on_sigterm`` for the command (main thread, default handler only); returns the undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, _on_sigterm)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _plain_help(command, done: set[int]) -> None:
    """Every help text of ``command`` and the commands and options under it shown as written:
    typer's help reads rich markup, which would take a written ``[default: fp32]`` for a tag and
    remove it, so square brackets that look like markup are escaped (each object once)."""
    from rich.markup import escape

    if id(command) in done:
        return
    done.add(id(command))
    for obj in (command, *getattr(command, "params", ())):
        for attr in ("help", "short_help"):
            if isinstance(getattr(obj, attr, None), str):
                setattr(obj, attr, escape(getattr(obj, attr)))
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub, done)


def _no_args_help(exc: Exception) -> bool:
    """The error a group given no arguments raises once it has printed its help. Typer keeps its
    class private (and recognises it by name itself), so it is recognised by name here too."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def _usage_error(exc: Exception) -> None:
    """A usage or parameter error of click's as one line, exit 2 (or the error's own code)."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = message.replace("Value error, ", "")  # the validation library's wording, not ours
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    fail(shorten(" ".join(message.split()), 400) + where, getattr(exc, "exit_code", 2))


class _OneLineErrors(TyperGroup):
    """Runs the command in non-standalone mode so every error can become a single line; its help
    and its commands' are plain text (``_plain_help``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self, set())

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        from cnnprof.cli import common

        common.ARGV[:] = ["cnnprof", *(sys.argv[1:] if args is None else list(args))]  # what the database records
        _printable_streams()
        from cnnprof.terminal import DataStream

        stdout = sys.stdout
        undo_sigterm = _handle_sigterm()
        try:
            if stdout is not None:  # help, --version, reports: every failed write is one line
                sys.stdout = DataStream(stdout)
            rv = super().main(args=args, prog_name=prog_name or "cnnprof", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except CnnprofError as exc:
            fail(str(exc), exc.exit_code)
        except typer.Abort as exc:
            if isinstance(exc.__cause__ or exc.__context__, _Terminated):
                fail("terminated", 143)
            fail("interrupted", 130)
        except _Terminated:
            fail("terminated", 143)
        except SystemExit as exc:
            if _TERMINATED and exc.code == 130:  # a command that kept what it had measured: say why it stopped
                fail("terminated", 143)
            raise
        except typer.exceptions.TyperException as exc:  # click's usage and parameter errors
            if not _no_args_help(exc):
                _usage_error(exc)
            rv = 0  # `cnnprof` (or `cnnprof gate`) alone: the help is printed, nothing failed
        finally:
            undo_sigterm()
            if isinstance(sys.stdout, DataStream):
                sys.stdout = stdout
        try:  # what the command printed but Python still holds: a write that fails fails the command
            from cnnprof.terminal import flush_stdout

            flush_stdout()
        except CnnprofError as exc:
            fail(str(exc), exc.exit_code)
        code = rv if isinstance(rv, int) else 0
        if _TERMINATED and code == 130:
            fail("terminated", 143)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    name="cnnprof",
    help=(
        "Count, time and check efficient CNNs (ESPNet, FBNet, EfficientNet, GhostNet, "
        "MobileNetV3) on your own machine.\n\n"
        "Examples:\n\n"
        "  cnnprof list 'ghostnet*'\n\n"
        "  cnnprof profile efficientnet_b0\n\n"
        "  cnnprof compare espnetv2 ghostnet"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

from cnnprof.cli import bench as _bench  # noqa: E402
from cnnprof.cli import claims as _claims  # noqa: E402
from cnnprof.cli import compare as _compare  # noqa: E402
from cnnprof.cli import eval as _eval  # noqa: E402
from cnnprof.cli import export as _export  # noqa: E402
from cnnprof.cli import history as _history  # noqa: E402
from cnnprof.cli import htmlreport as _htmlreport  # noqa: E402
from cnnprof.cli import listing as _listing  # noqa: E402
from cnnprof.cli import lut_calibrate as _lut_calibrate  # noqa: E402,F401  (registers `lut calibrate`)
from cnnprof.cli import lut_predict as _lut_predict  # noqa: E402,F401  (registers `lut predict`)
from cnnprof.cli import machine as _machine  # noqa: E402
from cnnprof.cli import profile as _profile  # noqa: E402
from cnnprof.cli import scale as _scale  # noqa: E402
from cnnprof.cli import sweep as _sweep  # noqa: E402
from cnnprof.cli.common import command  # noqa: E402
from cnnprof.cli.db import db_app as _db_app  # noqa: E402
from cnnprof.cli.gate import gate_app as _gate_app  # noqa: E402
from cnnprof.cli.lut import lut_app as _lut_app  # noqa: E402


def _version(value: bool) -> None:
    if value:
        from cnnprof.version import __version__

        from cnnprof.terminal import data_stream

        data_stream().write(f"cnnprof {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="Print cnnprof's version and exit.")] = False,
) -> None:
    """Count, time and check efficient CNNs (ESPNet, FBNet, EfficientNet, GhostNet, MobileNetV3) on
    your own machine."""


app.command("list")(command(_listing.list_command))
app.command("profile")(command(_profile.profile_command))
app.command("compare")(command(_compare.compare_command))
app.command("bench")(command(_bench.bench_command))
app.command("eval")(command(_eval.eval_command))
app.command("export")(command(_export.export_command))
app.command("machine")(command(_machine.machine_command))
app.add_typer(_gate_app, name="gate")
app.add_typer(_lut_app, name="lut")
app.command("claims")(command(_claims.claims_command))
app.command("scale")(command(_scale.scale_command))
app.add_typer(_db_app, name="db")
app.command("sweep")(command(_sweep.sweep_command))
app.command("report")(command(_htmlreport.report_command))
app.command("history")(command(_history.history_command))


def reflow(doc: str | None) -> str | None:
    """A help text with each prose paragraph on one line. Typer's help keeps the source's line
    breaks, which a terminal narrower than the source then wraps a second time (ragged lines at
    80 columns); indented lines (examples) and lists stay as written."""
    if not doc:
        return doc
    import inspect

    paragraphs = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines = para.split("\n")
        structured = any(line.startswith((" ", "\t", "* ", "- ", "\b")) for line in lines)
        paragraphs.append(para if structured else " ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _reflow_help(group: typer.Typer) -> None:
    """``reflow`` every command's and sub-group's help in ``group``, at import (before typer reads them)."""
    group.info.help = reflow(group.info.help)
    for info in group.registered_commands:
        info.help = reflow(info.help or (info.callback.__doc__ if info.callback else None))
    if group.registered_callback is not None:  # its docstring yields to the group's own help: leave it
        group.registered_callback.help = reflow(group.registered_callback.help)
    for sub in group.registered_groups:
        sub.help = reflow(sub.help) if isinstance(sub.help, str) else sub.help
        _reflow_help(sub.typer_instance)


_reflow_help(app)


def main() -> None:  # console-script entry point
    app()
