"""Where cnnprof keeps what it writes when the user names no path: the results database and the
CSV copies of runs (``reports/``), exported ONNX files and latency tables (``models/``).

* ``CNNPROF_HOME`` set: ``$CNNPROF_HOME/reports`` and ``$CNNPROF_HOME/models``;
* run inside a cnnprof checkout: ``reports/`` and ``models/`` of the checkout (relative names when
  run from its top folder, as always);
* anywhere else: the per-user data folder, ``$XDG_DATA_HOME/cnnprof`` (``~/.local/share/cnnprof``),
  so a command run in some folder never leaves ``reports/`` or ``models/`` in it.

Decided once per process (the CLI is one process per command). Imports nothing of the project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

HOME_ENV = "CNNPROF_HOME"
# One sentence for --help wherever a default folder is named.
WHERE = ("under $CNNPROF_HOME when set, else in the checkout when run inside one, else under "
         "$XDG_DATA_HOME/cnnprof, i.e. ~/.local/share/cnnprof")


def checkout_root(cwd: str | os.PathLike) -> Path | None:
    """The cnnprof checkout that ``cwd`` is in (a folder with the ``cnnprof`` package and a
    pyproject.toml naming it), or None."""
    here = Path(cwd).absolute()
    for folder in (here, *here.parents):
        project = folder / "pyproject.toml"
        try:
            if (folder / "cnnprof" / "__init__.py").is_file() and 'name = "cnnprof"' in project.read_text(
                    errors="replace"):
                return folder
        except OSError:
            continue
    return None


def data_home(env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None) -> Path:
    """The folder that holds ``reports/`` and ``models/`` (see the module docstring); ``Path(".")``
    at the top of a checkout, so the defaults stay the relative names they always were."""
    env = os.environ if env is None else env
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser()
    cwd = Path(os.getcwd() if cwd is None else cwd)
    root = checkout_root(cwd)
    if root is not None:
        return Path(".") if root == cwd.absolute() else root
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return base / "cnnprof"
