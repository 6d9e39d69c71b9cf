"""Rows of the results database as a pandas DataFrame, with the columns' types kept (integers stay
integers where a value is missing: pandas' nullable ``Int64``)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from cnnprof.store.schema import ROW_COLUMNS

_META_TYPES = {"row_id": "INTEGER", "run_id": "INTEGER", "passes": "INTEGER", "id": "INTEGER", "rows": "INTEGER",
               "errors": "INTEGER"}


def frame(records: Sequence[dict[str, Any]], fields: Sequence[str]):
    """``records`` -> DataFrame with ``fields`` as columns: INTEGER columns as ``Int64``, REAL as
    ``float64``, text as ``object`` (a full record, when present, as its JSON text)."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name in fields:
        values = [r.get(name) for r in records]
        sql_type = ROW_COLUMNS.get(name) or _META_TYPES.get(name, "TEXT")
        if name == "record":
            data[name] = pd.Series([None if v is None else json.dumps(v) for v in values], dtype=object)
        elif sql_type == "INTEGER":
            data[name] = pd.array(values, dtype="Int64")
        elif sql_type == "REAL":
            data[name] = pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=list(fields))


def parquet_bytes(records: Sequence[dict[str, Any]], fields: Sequence[str]) -> bytes:
    """The rows as a Parquet file (pandas with pyarrow)."""
    import io

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        from cnnprof.errors import UsageError

        raise UsageError("--format parquet needs the pyarrow package (pip install pyarrow)") from None
    buf = io.BytesIO()
    frame(records, fields).to_parquet(buf, index=False)
    return buf.getvalue()
