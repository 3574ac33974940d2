"""crmkpi from Python: CRM event dumps in, KPI tables out.

The same engine as the ``crmkpi`` command line, called in-process:

- ``ingest(inputs, lake)`` adds dumps to a Parquet event lake and returns the run's summary,
- ``validate(inputs)`` checks dumps as ingest would, writing nothing,
- ``compute(lake)`` computes the KPI tables and returns them by name as ``Table`` objects;
  with ``out=DIR`` it also writes them like ``crmkpi compute --out DIR``.

Tables implement the Arrow PyCapsule interface (``__arrow_c_stream__``), so any Arrow reader
takes them without a copy and without tying you to one polars version::

    import crmkpi, polars, pyarrow
    tables = crmkpi.compute("lake", as_of="2025-06-30")
    monthly = polars.DataFrame(tables["kpi_monthly"])
    customers = pyarrow.table(tables["customers"]).to_pandas()

``config`` is the path of a crmkpi TOML configuration file (the command line's ``--config``);
without it ``./crmkpi.toml`` is used when it exists, else the built-in defaults. Failures raise
``CrmkpiError`` (``UsageError`` for refused arguments, ``RejectRatioError`` for too dirty a
dump) with the message the command line prints. Data warnings (models that did not converge,
tickets left out) are issued as ``CrmkpiWarning``. The engine releases the GIL while it works.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from typing import Any, Union

from crmkpi._crmkpi import (
    CrmkpiError,
    RejectRatioError,
    Table,
    UsageError,
    __version__,
)
from crmkpi import _crmkpi

__all__ = [
    "CrmkpiError",
    "CrmkpiWarning",
    "RejectRatioError",
    "Table",
    "UsageError",
    "__version__",
    "compute",
    "ingest",
    "validate",
]

StrPath = Union[str, "os.PathLike[str]"]


class CrmkpiWarning(UserWarning):
    """A data warning of a compute run, as recorded in the manifest's ``warnings``."""


def _paths(inputs: StrPath | Iterable[StrPath]) -> list[str]:
    """One path or glob, or several, as strings."""
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(path) for path in inputs]


def _optional_path(path: StrPath | None) -> str | None:
    return None if path is None else os.fspath(path)


def ingest(
    inputs: StrPath | Iterable[StrPath],
    lake: StrPath,
    *,
    config: StrPath | None = None,
) -> dict[str, Any]:
    """Ingest dumps into a lake, like ``crmkpi ingest INPUT... --lake LAKE``.

    ``inputs`` are files, directories (read recursively) or globs of ``.ndjson``/``.jsonl``/
    ``.json``/``.csv`` dumps, optionally ``.gz`` or ``.zst``. The lake is created in a new or
    empty directory. Returns the summary the command line prints with ``--log-format json``:
    ``{"read": ..., "accepted": ..., "duplicates": ..., "rejected": {reason: count},
    "files": [...]}``.

    Raises ``RejectRatioError`` (its ``summary`` holds the dict) when more records were
    rejected than ``max_reject_ratio`` allows: the rejects are kept in the lake, none of the
    run's events entered it. Raises ``UsageError`` when ``lake`` is a directory that is not a
    crmkpi lake, ``CrmkpiError`` on unreadable input or I/O failure.
    """
    text, refusal = _crmkpi.ingest(_paths(inputs), os.fspath(lake), _optional_path(config))
    summary = json.loads(text)
    if refusal is not None:
        raise _reject_ratio_error(refusal, summary)
    return summary


def validate(
    inputs: StrPath | Iterable[StrPath],
    *,
    config: StrPath | None = None,
) -> dict[str, Any]:
    """Check dumps as ``ingest`` would, writing nothing, like ``crmkpi validate INPUT...``.

    Returns the same summary as ``ingest``; duplicates are counted within the inputs only.
    Raises ``RejectRatioError`` (its ``summary`` holds the dict) when more records would be
    rejected than ``max_reject_ratio`` allows.
    """
    text, excess = _crmkpi.validate(_paths(inputs), _optional_path(config))
    summary = json.loads(text)
    if excess is not None:
        raise _reject_ratio_error(excess, summary)
    return summary


def compute(
    lake: StrPath,
    *,
    as_of: str | None = None,
    tables: Iterable[str] | None = None,
    config: StrPath | None = None,
    out: StrPath | None = None,
    report: bool = True,
    memory_limit: str | None = None,
    buckets: int | None = None,
) -> dict[str, Table]:
    """Compute KPI tables from a lake, like ``crmkpi compute``; returns them by name.

    ``as_of`` is an RFC 3339 instant, a local timestamp ``YYYY-MM-DDTHH:MM:SS`` or a date
    ``YYYY-MM-DD`` (the end of that local day) in the reporting time zone; by default the
    latest event in the lake. ``tables`` names the tables to compute (default: all 12, in
    output order). With ``out`` the tables are also written there exactly as
    ``crmkpi compute --out`` writes them (Parquet, CSV, ``manifest.json`` and, unless
    ``report=False``, ``report.html``), replacing the directory atomically. ``memory_limit``
    (``"4GiB"``) overrides the configuration's ``[compute] memory_limit`` that the number of
    entity buckets is planned for; ``buckets`` sets that number directly (the tables are the
    same for every number).

    Each ``Table`` implements ``__arrow_c_stream__``: ``pyarrow.table(t)``,
    ``polars.DataFrame(t)``, ``duckdb.sql("select * from t")``; its ``as_of`` is the run's
    ``as_of`` (RFC 3339 UTC), as the manifest records it. Data warnings are issued as
    ``CrmkpiWarning``. Raises ``UsageError`` for a bad ``as_of`` or table name or an ``out``
    that crmkpi may not replace, ``CrmkpiError`` for anything else.
    """
    names = [] if tables is None else [tables] if isinstance(tables, str) else list(tables)
    computed, data_warnings = _crmkpi.compute(
        os.fspath(lake), as_of, names, _optional_path(config), _optional_path(out), report, memory_limit, buckets
    )
    for warning in data_warnings:
        warnings.warn(warning, CrmkpiWarning, stacklevel=2)
    return {table.name: table for table in computed}


def _reject_ratio_error(message: str, summary: dict[str, Any]) -> RejectRatioError:
    error = RejectRatioError(message)
    error.summary = summary
    return error
