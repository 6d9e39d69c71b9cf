"""The ``cnnprof`` command line: one module per command, each thin (parse -> call a room -> render).

Errors a user can cause print one line on stderr (``cnnprof: error: ...``) and exit 2 (bad
usage) or 1 (a check failed); a traceback is a bug. Only typer is imported here, so
``cnnprof --help`` answers at once; commands import torch when they run.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from cnnprof.errors import CnnprofError


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, then exit with ``code``."""
    sys.stderr.write(f"cnnprof: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


class _OneLineErrors(TyperGroup):
    """Runs the command in non-standalone mode so every error can become a single line."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            rv = super().main(args=args, prog_name=prog_name or "cnnprof", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except CnnprofError as exc:
            fail(str(exc), exc.exit_code)
        except typer.Abort:
            fail("interrupted", 130)
        except typer.exceptions.TyperException as exc:  # click's usage and parameter errors
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            ctx = getattr(exc, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            fail(" ".join(message.split()) + where, getattr(exc, "exit_code", 2))
        code = rv if isinstance(rv, int) else 0
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
from cnnprof.cli import export as _export  # noqa: E402
from cnnprof.cli import listing as _listing  # noqa: E402
from cnnprof.cli import machine as _machine  # noqa: E402
from cnnprof.cli import profile as _profile  # noqa: E402
from cnnprof.cli import scale as _scale  # noqa: E402
from cnnprof.cli.gate import gate_app as _gate_app  # noqa: E402
from cnnprof.cli.lut import lut_app as _lut_app  # noqa: E402

app.command("list")(_listing.list_command)
app.command("profile")(_profile.profile_command)
app.command("compare")(_compare.compare_command)
app.command("bench")(_bench.bench_command)
app.command("export")(_export.export_command)
app.command("machine")(_machine.machine_command)
app.add_typer(_gate_app, name="gate")
app.add_typer(_lut_app, name="lut")
app.command("claims")(_claims.claims_command)
app.command("scale")(_scale.scale_command)


def main() -> None:  # console-script entry point
    app()
