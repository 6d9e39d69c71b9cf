"""What the page carries inline: Vega, Vega-Lite and vega-embed (one JavaScript bundle), and the
report's own script and styles.

The bundle comes from ``vl-convert-python`` (``vl_convert.javascript_bundle()``: the three
libraries and their dependencies as one script, about 0.9 MB, that sets ``window.vegaEmbed``).
Making it takes a few seconds, so it is kept in the user's cache folder
(``$XDG_CACHE_HOME/cnnprof`` or ``~/.cache/cnnprof``), one file per vl-convert version.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnprof"


def vega_bundle() -> tuple[str, str]:
    """(the script, the versions it holds): from the cache when present, else made and cached."""
    try:
        import vl_convert
    except ImportError:
        from cnnprof.errors import UsageError

        raise UsageError("cnnprof report needs the vl-convert-python package (pip install vl-convert-python)") from None
    versions = (f"Vega {vl_convert.get_vega_version()}, Vega-Lite {vl_convert.get_vegalite_versions()[-1]}, "
                f"vega-embed {vl_convert.get_vega_embed_version()}")
    version = getattr(vl_convert, "__version__", "") or versions
    safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in version)
    path = cache_dir() / f"vega-bundle-{safe}.js"
    try:
        text = path.read_text(encoding="utf-8")
        if "vegaEmbed" in text:
            return text, versions
    except OSError:
        pass
    text = vl_convert.javascript_bundle()
    try:
        from cnnprof.files import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    except Exception:  # noqa: BLE001 - a cache that cannot be written only costs time
        pass
    return text, versions


def script() -> str:
    return (HERE / "report.js").read_text(encoding="utf-8")


def styles() -> str:
    return (HERE / "report.css").read_text(encoding="utf-8")
