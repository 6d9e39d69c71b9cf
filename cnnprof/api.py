"""The Python API: name -> model -> counts (and latency) -> report rows.

Thin calls into the rooms the command line uses too (``targets``, ``bench``, ``counting``), so a
notebook gets the same numbers as ``cnnprof``. Heavy imports (torch, fvcore) happen inside the
functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

# bench_rows: count and time targets into report rows, as ``cnnprof bench`` does. The other names
# lived here before the ``targets`` and ``bench`` modules held them; kept so that code written
# against them keeps working.
from cnnprof.bench import bench_rows, count_rows  # noqa: F401
from cnnprof.errors import UsageError
from cnnprof.models import registry
from cnnprof.rows import Counts, ProfileRow
from cnnprof.targets import (  # noqa: F401
    Target,
    check_batch,
    count_target,
    parse_resolution,
    resolve_targets,
    target_input,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from torch import nn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, in natural order.

    >>> list_models("efficientnet_b?")[:3]
    ['efficientnet_b0', 'efficientnet_b1', 'efficientnet_b2']
    """
    return registry.list_models(pattern)


def build_model(name: str, **options: Any) -> "nn.Module":
    """Build a registered variant (in eval mode), passing ``options`` to its builder.

    >>> model = build_model("mobilenetv3_small")
    >>> sum(p.numel() for p in model.parameters())
    2542856
    """
    from cnnprof.targets import registered

    return registered(name, **options).build(seed=None, calibrate=False)


def input_shape(name: str) -> tuple[int, int, int]:
    """The native input (C, H, W) of a registered variant.

    >>> input_shape("espnet")
    (3, 512, 1024)
    """
    return registry.get(name).input


def count(
    model_or_name: "str | nn.Module", input_shape: Sequence[int] | None = None, *, batch: int = 1
) -> Counts:
    """Count parameters, MACs, activations and bytes moved of a model.

    >>> c = count("efficientnet_b0")
    >>> c.params, round(c.macs / 1e6, 1)
    (5288548, 385.8)
    """
    from cnnprof import counting

    check_batch(batch)
    if isinstance(model_or_name, str):
        target = resolve_targets([model_or_name], input_shape=input_shape)[0]
        return count_target(target, target.input, batch=batch)
    if input_shape is None:
        raise UsageError("count(model) needs input_shape=(C, H, W) for a model that is not registered")
    return counting.count(model_or_name, tuple(input_shape), batch=batch)


def profile(
    names: str | Iterable[str], *, resolution: str | int | None = None, batch: int = 1
) -> "pandas.DataFrame":
    """The report rows of ``names`` (names, aliases or patterns) as a DataFrame.

    >>> df = profile(["mobilenetv3_small"])
    >>> int(df.loc[0, "params"]), df.loc[0, "input"]
    (2542856, '3x224x224')
    """
    from cnnprof.report import rows_to_frame

    refs = [names] if isinstance(names, str) else list(names)
    rows = count_rows(resolve_targets(refs), resolution=parse_resolution(resolution), batch=batch)
    return rows_to_frame([row for row, _ in rows], ProfileRow)


def parse_threads(text: str | int) -> int:
    """``"1"`` -> 1, ``"all"`` -> the cores this process may use (see ``timing.environment``)."""
    from cnnprof.timing.environment import parse_threads as parse

    return parse(text)


def results(db: str | None = None, **filters: Any) -> "pandas.DataFrame":
    """Rows of the results database as a DataFrame (typed: integers stay integers where a value is
    missing). ``filters`` are those of ``cnnprof db rows``: ``kind``, ``model`` (patterns),
    ``family``, ``backend``, ``precision``, ``device``, ``batch``, ``threads``, ``revision``,
    ``machine``, ``command``, ``run``, ``since``, ``errors`` ('only' / 'none'), ``latest``; a value
    may be one item or a list. ``records=True`` adds each row's full record (JSON text).

    >>> df = results(model="ghostnet*", backend="onnxruntime", latest=True)   # doctest: +SKIP
    """
    from cnnprof.store import DEFAULT_DB, Store, query
    from cnnprof.store.frames import frame

    records = bool(filters.pop("records", False))
    f = query.Filters()
    for key, value in filters.items():
        if not hasattr(f, key) or key == "extra_where":
            raise UsageError(f"results(): unknown filter {key!r}")
        default = getattr(f, key)
        if isinstance(default, tuple) and not isinstance(value, (list, tuple)):
            value = [value]
        setattr(f, key, value)
    with Store.open(db or DEFAULT_DB, write=False) as store:
        rows = query.select(store, f, records=records)
    return frame(rows, list(query.ROW_FIELDS) + (["record"] if records else []))


def runs(db: str | None = None) -> "pandas.DataFrame":
    """The runs of the results database, newest first, as a DataFrame."""
    from cnnprof.store import DEFAULT_DB, Store, query
    from cnnprof.store.frames import frame

    with Store.open(db or DEFAULT_DB, write=False) as store:
        return frame(query.runs(store), query.RUN_FIELDS)
