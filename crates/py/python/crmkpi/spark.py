"""crmkpi on Spark: the 12 tables of ``crmkpi compute``, with the entity buckets computed by
Spark tasks.

Run it as ``python -m crmkpi.spark --lake DIR --out DIR`` (``--master URL``, by default
``local[*]``), submit this module's file with ``spark-submit`` (the ``crmkpi`` wheel, pyarrow
and pandas installed on every node)::

    spark-submit --master yarn "$(python -c 'import crmkpi.spark as s; print(s.__file__)')" \
        --lake /shared/lake --out /shared/out --scratch /shared/tmp

or call ``run()`` with a ``SparkSession`` of your own.

What runs where:

- the driver opens the lake's committed snapshot with the engine (``as_of``, the calendar, the
  number of buckets, as ``crmkpi compute`` resolves them) and hands Spark its event files;
- Spark reads the files, routes every event to its entity bucket with
  ``pmod(xxhash64(key), buckets)`` (the engine's own bucket function: a customer's events by
  ``customer_id``, a deal's by ``deal_id``, a ticket's by ``ticket_id``), and runs one
  ``applyInArrow`` task per bucket, in which the engine computes the bucket's per-entity facts
  and additive parts, exactly as a single-node run computes that bucket, and writes them as
  Parquet files into a scratch directory;
- the driver's engine reads those files (they do not pass through Spark's driver JVM), merges
  them, fits the CLV models, computes the tables and writes them with ``manifest.json`` like
  ``crmkpi compute --out``.

Python only moves events and the names of the facts files between Spark and the engine: every KPI is
computed by the Rust engine. The tables are the same for every number of buckets.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from crmkpi import CrmkpiError, CrmkpiWarning, Table, _crmkpi, _optional_path

__all__ = ["main", "run"]

#: Spark settings of the sessions this module creates: UTC timestamps, so that the lake's
#: ``occurred_at`` reaches the engine unshifted.
SESSION_SETTINGS = {"spark.sql.session.timeZone": "UTC"}

#: The schema of what a task returns: one row per fact or part of its bucket, naming the file
#: it wrote.
FACTS_SCHEMA = "bucket int, name string, path string"


def run(
    lake: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    spark: Any = None,
    master: str | None = None,
    as_of: str | None = None,
    tables: Iterable[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    buckets: int | None = None,
    memory_limit: str | None = None,
    report: bool = True,
    scratch: str | os.PathLike[str] | None = None,
) -> dict[str, Table]:
    """Compute the KPI tables of ``lake`` with Spark; returns them by name like ``compute``.

    With ``out`` they are also written there exactly as ``crmkpi compute --out`` writes them.
    ``spark`` is a ``SparkSession`` to use (its ``spark.sql.session.timeZone`` must be UTC);
    without it the active session is used, or one is created with ``master`` (default: the one
    ``spark-submit`` passed, else ``local[*]``) and stopped at the end.
    ``buckets`` sets the number of entity buckets (one Spark task each); by default the
    engine's choice for ``memory_limit``, and at least the session's default parallelism.
    The tasks write their buckets' facts as Parquet files into a temporary directory under
    ``scratch`` (default: the system's temporary directory), which the driver reads and then
    removes: on a cluster, pass a directory that the executors and the driver share, as they
    share the lake. The other arguments are those of ``crmkpi.compute``.
    """
    names = [] if tables is None else [tables] if isinstance(tables, str) else list(tables)
    if out is not None:
        _crmkpi.check_out_dir(os.fspath(out), os.fspath(lake))
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
    # A session this call creates is stopped at its end; one it was given or found is not.
    own_session = spark is None
    if own_session:
        spark = _session(master)
    try:
        engine_run = _crmkpi.SparkRun(
            os.fspath(lake),
            as_of,
            names,
            _optional_path(config),
            memory_limit,
            buckets,
            spark.sparkContext.defaultParallelism,
        )
        with tempfile.TemporaryDirectory(prefix="crmkpi-spark-", dir=scratch) as facts_dir:
            for bucket, name, path in _bucket_facts(spark, engine_run, facts_dir):
                engine_run.add_received(bucket, name, path)
        computed, data_warnings = engine_run.finish(_optional_path(out), report)
    finally:
        if own_session:
            spark.stop()
    import warnings

    for warning in data_warnings:
        warnings.warn(warning, CrmkpiWarning, stacklevel=2)
    return {table.name: table for table in computed}


def _bucket_facts(spark: Any, engine_run: Any, scratch: str) -> Iterator[tuple[int, str, str]]:
    """Every bucket's facts, computed by Spark tasks: (bucket, name, Parquet file under
    ``scratch``)."""
    from pyspark.sql import functions as F

    if spark.conf.get("spark.sql.session.timeZone") != "UTC":
        raise CrmkpiError("crmkpi.spark needs a SparkSession with spark.sql.session.timeZone=UTC")
    files = engine_run.event_files()
    buckets = engine_run.buckets
    task_spec = engine_run.task_spec()
    events = spark.read.parquet(*files).select(*_crmkpi.compute_columns())
    types_by_key: dict[str, list[str]] = {}
    for event_type, column in _crmkpi.entity_keys():
        types_by_key.setdefault(column, []).append(event_type)
    key = None
    for column, event_types in types_by_key.items():
        condition = F.col("event_type").isin(event_types)
        key = F.when(condition, F.col(column)) if key is None else key.when(condition, F.col(column))
    # Spend and CRM-user events have no key (the driver's engine reads them); xxhash64 of a null
    # is its seed, so they are left out before hashing, as are events missing their key.
    routed = events.where(key.isNotNull()).withColumn("bucket", F.pmod(F.xxhash64(key), F.lit(buckets)).cast("int"))

    # The task's columns must have exactly the Arrow types Spark expects for FACTS_SCHEMA.
    large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false").lower() == "true"

    def task(table: Any) -> Any:
        import pyarrow

        text = pyarrow.large_string() if large else pyarrow.string()

        # One engine thread pool per task slot, not one per core in every slot.
        os.environ.setdefault("POLARS_MAX_THREADS", os.environ.get("CRMKPI_TASK_THREADS", "1"))
        bucket = table.column("bucket")[0].as_py()
        facts = _crmkpi.bucket_task(task_spec, bucket, table.drop_columns(["bucket"]), scratch)
        return pyarrow.table(
            {
                "bucket": pyarrow.array([bucket] * len(facts), pyarrow.int32()),
                "name": pyarrow.array([name for name, _ in facts], text),
                "path": pyarrow.array([path for _, path in facts], text),
            }
        )

    # As many shuffle partitions as buckets, so that the tasks run in parallel (Spark places the
    # buckets by a hash of their number: a partition may hold two buckets, computed one after
    # the other, and another none).
    previous_partitions = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", str(buckets))
    try:
        written = routed.groupBy("bucket").applyInArrow(task, FACTS_SCHEMA).collect()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous_partitions)
    for row in sorted(written, key=lambda row: (row["bucket"], row["name"])):
        yield row["bucket"], row["name"], row["path"]


def _session(master: str | None) -> Any:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("crmkpi")
    # Without a master the one spark-submit passed applies, else pyspark's local[*].
    if master is not None:
        builder = builder.master(master)
    for key, value in SESSION_SETTINGS.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def main(argv: list[str] | None = None) -> int:
    """``python -m crmkpi.spark``: the command line of ``run``."""
    parser = argparse.ArgumentParser(
        prog="python -m crmkpi.spark",
        description="Compute the crmkpi tables of a lake with Spark, one entity bucket per task.",
    )
    parser.add_argument("--lake", required=True, help="the lake directory")
    parser.add_argument("--out", required=True, help="the output directory (replaced atomically)")
    parser.add_argument("--config", help="a crmkpi TOML configuration file")
    parser.add_argument("--as-of", help="RFC 3339 instant, local timestamp or date (default: the latest event)")
    parser.add_argument("--tables", nargs="+", help="tables to compute (default: all 12)")
    parser.add_argument("--buckets", type=int, help="entity buckets, one Spark task each")
    parser.add_argument("--memory-limit", help="memory the buckets are planned for, e.g. 4GiB")
    parser.add_argument("--master", help="Spark master URL (default: local[*], or spark-submit's)")
    parser.add_argument(
        "--scratch", help="directory the tasks write their facts into, shared with the driver (default: $TMPDIR)"
    )
    parser.add_argument("--no-report", action="store_true", help="do not write report.html")
    args = parser.parse_args(argv)
    try:
        computed = run(
            args.lake,
            args.out,
            master=args.master,
            as_of=args.as_of,
            tables=args.tables,
            config=args.config,
            buckets=args.buckets,
            memory_limit=args.memory_limit,
            report=not args.no_report,
            scratch=args.scratch,
        )
    except CrmkpiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, _crmkpi.UsageError) else 1
    except Exception as error:  # a failed Spark job: the engine's message is in the task's error
        from pyspark.errors import PySparkException

        if not isinstance(error, PySparkException):
            raise
        print(f"error: the Spark job failed: {error}", file=sys.stderr)
        return 1
    for name, table in computed.items():
        print(f"{name}: {table.num_rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
