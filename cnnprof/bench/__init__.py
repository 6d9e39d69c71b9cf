"""Measuring a Target into rows: ``rows.py`` (``count_rows``, ``make_plan``, ``bench_rows``,
``configurations``, ``fastest``), ``isolated.py`` (the parent side of a fresh measurement process) and ``worker.py``
(its other side). What ``cnnprof.bench`` names is ``rows.py``'s."""

from cnnprof.bench.rows import (  # noqa: F401
    FastestRow,
    Plan,
    Progress,
    bench_rows,
    configurations,
    count_rows,
    fastest,
    make_plan,
)
