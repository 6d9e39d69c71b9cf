"""Files the user names: written so that nothing they had is lost, read so that no input crashes.

Writing. Every file cnnprof writes (reports, plots, lookup tables, baselines, exported models,
the machine cache, worker results) goes through ``write_atomic``, which does what the path is:

* a regular file, or a path that does not exist yet: the data goes to a temporary file beside it,
  which then replaces it in one rename, so a reader never sees half a file and a run that fails
  or is interrupted leaves the old file as it was (its mode kept; a new file follows the umask);
* a symbolic link: the file it points to is written that way, and the link stays a link;
* a FIFO, a character device, a socket (``/dev/stdout``, ``/dev/null``, ``-o >(wc -l)``): written
  into directly, in place; it is not a file that could be replaced;
* a directory: refused.

``check_writable`` answers the same question before any work (exit 2 with one line), and
``check_distinct`` refuses an output that is one of the command's own inputs. A write that fails
(disk full, name too long, read-only file system) is one line, exit 2, the old file intact.

Reading. ``read_json`` turns every way a JSON file can be hostile (missing, a directory, not
UTF-8, empty, truncated, nested too deeply, an integer too long to parse, Infinity or NaN) into
one line naming the file.

Knows nothing of the rest of the project (it imports the error type and where files go).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable

from cnnprof.errors import UsageError
from cnnprof.home import data_home

# Where the tool writes when the user names no path: built artefacts (exported ONNX files, latency
# tables), and reports (a CSV copy of every run, the results database); see cnnprof.home.
MODELS_DIR = str(data_home() / "models")
REPORTS_DIR = str(data_home() / "reports")
DEFAULT_DB = Path(REPORTS_DIR) / "cnnprof.db"  # the results database (cnnprof.store)


class WriteError(UsageError):
    """A file could not be written: one line, exit 2, nothing the user had is changed."""


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the file name is longer than the file system allows"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno == errno.EFBIG:
        return "the file would grow past the file-size limit (ulimit -f)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


describe = _describe  # why an OSError happened, in words (for the other rooms that write files)


def _special(st: os.stat_result) -> bool:
    """Something to write into in place: a FIFO, a device, a socket."""
    return stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(
        st.st_mode)


def destination(path: str | os.PathLike) -> tuple[Path, bool]:
    """Where writing ``path`` really goes, and whether it is written in place: a symbolic link
    resolves to its target (which may not exist yet); a FIFO or device is written in place."""
    p = Path(path)
    try:
        st = p.stat()  # follows links
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise WriteError(f"cannot write {str(p)!r}: {_describe(exc)}") from None
    if st is not None and _special(st):
        return p, True
    if p.is_symlink():  # an existing file or a dangling link: write what it points to
        return Path(os.path.realpath(p)), False
    return p, False


def check_writable(path: str | os.PathLike | None) -> None:
    """Fail early (exit 2) when ``path`` cannot be written, before any expensive work."""
    if path is None:
        return
    p = Path(path)
    target, in_place = destination(p)
    if target.is_dir():
        raise UsageError(f"output path {str(p)!r} is a directory")
    if in_place:
        if not os.access(target, os.W_OK):
            raise WriteError(f"cannot write {str(p)!r}: permission denied")
        return
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise WriteError(f"cannot write {str(p)!r}: folder {str(parent)!r} {what}")
    try:
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(target.name)) > limit:
        raise WriteError(f"cannot write {str(p)!r}: the file name is longer than the file system allows "
                         f"({len(os.fsencode(target.name))} > {limit} bytes)")
    if target.exists() and read_only(target):
        raise WriteError(f"cannot write {str(p)!r}: the file is read-only (make it writable, or choose another path)")
    if not os.access(parent, os.W_OK):
        raise WriteError(f"cannot write {str(p)!r}: permission denied")


def read_only(path: str | os.PathLike) -> bool:
    """Whether an existing file must not be replaced: it has no write permission bit (read-only
    even for root, who could write it: its owner made it so), or this process may not write it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (links and spellings resolved), existing or not."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_distinct(outputs: Iterable[str | os.PathLike | None], inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse (exit 2) an output that is one of the command's inputs, or two outputs that are one
    file: writing it would destroy what the command reads or the other output."""
    outs = [o for o in outputs if o is not None]
    ins = [i for i in inputs if i is not None]
    for i, out in enumerate(outs):
        if _special_path(out):
            continue
        for src in ins:
            if Path(src).exists() and same_file(out, src):
                raise UsageError(f"the output {str(out)!r} is the input {str(src)!r}: writing it would destroy it; "
                                 "choose another output path")
        for other in outs[i + 1:]:
            if same_file(out, other):
                raise UsageError(f"{str(out)!r} and {str(other)!r} are the same file: give each output its own path")


def _special_path(path: str | os.PathLike) -> bool:
    try:
        return _special(os.stat(path))
    except OSError:
        return False


def write_atomic(path: str | os.PathLike, data: str | bytes, *, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` as the module docstring says; returns the path written.

    ``exclusive``: never replace an existing file (a report copy named by time): if the name is
    taken by the time the data is ready, ``-2``, ``-3``, ... is added before the extension."""
    p = Path(path)
    check_writable(p)
    target, in_place = destination(p)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if in_place:
        try:
            with open(target, "wb") as fh:
                fh.write(payload)
        except OSError as exc:
            raise WriteError(f"cannot write {str(p)!r}: {_describe(exc)}") from None
        return p
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise WriteError(f"cannot write {str(p)!r}: {_describe(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600): give it the mode a plain open() would have, or
        # keep the mode of the file it replaces
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~umask())
        if exclusive:
            target = _link_unique(tmp, target)
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise WriteError(f"cannot write {str(p)!r}: {_describe(exc)}; the old file is unchanged") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target if exclusive else p


def _link_unique(tmp: str, target: Path) -> Path:
    """Give ``tmp`` the name ``target`` (or ``target-2``, ...) without ever replacing a file."""
    for n in range(1, 1000):
        name = target if n == 1 else target.with_name(f"{target.stem}-{n}{target.suffix}")
        try:
            os.link(tmp, name)
            return name
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, f"no free name for {target}")


def replace_file(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move a finished temporary file (written beside ``path``) over ``path`` in one rename, with
    the mode a plain write would give it; for a file cnnprof made itself (an exported model)."""
    target, in_place = destination(path)
    if in_place:
        raise WriteError(f"cannot write {str(path)!r}: not a regular file")
    try:
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~umask())
        os.replace(tmp, target)
    except OSError as exc:
        raise WriteError(f"cannot write {str(path)!r}: {_describe(exc)}; the old file is unchanged") from None
    return Path(path)


def umask() -> int:
    """The process's file-creation mask (read without changing it for long)."""
    current = os.umask(0)
    os.umask(current)
    return current


def ensure_folder(path: str | os.PathLike) -> Path:
    """Create ``path`` (and its parents) as a folder if it is missing; exit 2 with one line when it
    is a file or cannot be created or written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise WriteError(f"cannot write into {str(p)!r}: it is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create folder {str(p)!r}: {_describe(exc)}") from None
    if not os.access(p, os.W_OK):
        raise WriteError(f"cannot write into {str(p)!r}: permission denied")
    return p


# -- reading --------------------------------------------------------------------------------------
class _BadNumber(ValueError):
    """A number JSON should not hold (raised while decoding)."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"the number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise _BadNumber(f"it holds {name}, which is not a number JSON allows")


def read_json(path: str | os.PathLike, what: str, error: type[UsageError] = UsageError) -> Any:
    """The decoded JSON document at ``path``; any problem is one ``error`` (a ``UsageError``: exit 2)
    naming the file as ``what`` (e.g. "baseline", "latency table")."""
    p = Path(path)
    if not p.exists():
        raise error(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise error(f"{what} {str(p)!r} is a directory, not a file")
    invalid = f"{str(p)!r} is not a valid {what}"
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{invalid}: not UTF-8 text") from None
    except OSError as exc:
        raise error(f"cannot read {what} {str(p)!r}: {_describe(exc)}") from None
    if not text.strip():
        raise error(f"{invalid}: the file is empty")
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{invalid}: truncated or corrupt JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise error(f"{invalid}: it is nested too deeply") from None
    except _BadNumber as exc:
        raise error(f"{invalid}: {exc}") from None
    except ValueError:  # int() refuses integers of more than 4300 digits
        raise error(f"{invalid}: it holds an integer too long to read") from None
