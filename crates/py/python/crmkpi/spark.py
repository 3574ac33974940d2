"""crmkpi on Spark: the 12 tables of ``crmkpi compute``, computed by Spark tasks, one entity
bucket per task.

Run it as ``python -m crmkpi.spark --lake DIR --out DIR`` (``--master URL``, by default
``local[*]``), submit this module's file with ``spark-submit`` (the ``crmkpi`` wheel, pyarrow
and pandas installed on every node)::

    spark-submit --master yarn "$(python -c 'import crmkpi.spark as s; print(s.__file__)')" \
        --lake /shared/lake --out /shared/out

or call ``run()`` with a ``SparkSession`` of your own.

What runs where:

- the driver opens the lake's committed snapshot with the engine (``as_of``, the calendar, the
  number of buckets, as ``crmkpi compute`` resolves them) and hands Spark its event files;
- stage 1: Spark reads the files, routes every event to its entity bucket with
  ``pmod(xxhash64(key), buckets)`` (the engine's own bucket function: a customer's events by
  ``customer_id``, a deal's by ``deal_id``, a ticket's by ``ticket_id``; the events of no
  entity to one more task), and runs one ``applyInArrow`` task per bucket, in which the engine
  computes the bucket's per-entity facts and additive parts and ships them on: to the bucket
  of the per-entity table rows they belong to (a deal to its customer's bucket, for its lead
  channel), to the task of each aggregated table that reads them, and to the driver only the
  bucket's customers grouped by RFM summary;
- the driver merges the RFM groups and fits the CLV models once;
- stage 2: Spark groups the shipments by destination; a bucket's task computes its rows of
  ``customers`` (predicting with the driver's fits, which travel in the task specification),
  ``deals``, ``deal_stage_visits`` and ``tickets`` and writes them as part files into the
  output's staging directory; an aggregated table's task merges what every bucket sent it and
  computes the table;
- the driver writes the aggregated tables (received from their tasks), ``clv_model`` and
  ``manifest.json`` beside the parts, and puts the directory in the place of ``--out``.

Python only moves events and the engine's shipments between Spark and the engine: every KPI is
computed by the Rust engine, and no per-entity row passes through the driver. The tables are
the same for every number of buckets; the per-entity tables are directories of part files
(``customers.parquet/part-00003.parquet``, ``customers.csv/part-00003.csv``), each part sorted by
the table's key.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any

from crmkpi import CrmkpiError, CrmkpiWarning, Table, _crmkpi, _optional_path

__all__ = ["main", "run"]

#: Spark settings of the sessions this module creates: UTC timestamps, so that the lake's
#: ``occurred_at`` reaches the engine unshifted.
SESSION_SETTINGS = {"spark.sql.session.timeZone": "UTC"}

#: Session settings while the job runs (None: the number of tasks), restored afterwards.
STAGE_SETTINGS = {"spark.sql.shuffle.partitions": None, "spark.sql.adaptive.coalescePartitions.enabled": "false"}

#: The schema of what the tasks of both stages return: shipments (stage 1) and results
#: (stage 2), each a frame or description encoded by the engine, with its destination.
SHIPMENT_SCHEMA = "dest int, name string, payload binary"

#: The destination of the shipments for the driver, and the bucket of the events of no entity
#: (the engine's numbers).
TO_DRIVER = _crmkpi.TO_DRIVER
GLOBAL_BUCKET = _crmkpi.GLOBAL_BUCKET


def run(
    lake: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    spark: Any = None,
    master: str | None = None,
    as_of: str | None = None,
    tables: Iterable[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    buckets: int | None = None,
    memory_limit: str | None = None,
    report: bool = False,
) -> dict[str, Table]:
    """Compute the KPI tables of ``lake`` with Spark and write them to ``out`` as
    ``crmkpi compute --out`` does, the per-entity tables (``customers``, ``deals``,
    ``deal_stage_visits``, ``tickets``) as directories of part files written by the tasks.

    Returns the aggregated tables (those the driver writes) by name, like ``compute``; read the
    per-entity ones from ``out`` (``spark.read.parquet(f"{out}/customers.parquet")``).
    ``out`` must be on storage the driver and the executors share, as the lake is.
    ``spark`` is a ``SparkSession`` to use (its ``spark.sql.session.timeZone`` must be UTC);
    without it the active session is used, or one is created with ``master`` (default: the one
    ``spark-submit`` passed, else ``local[*]``) and stopped at the end.
    ``buckets`` sets the number of entity buckets (one Spark task each); by default the
    engine's choice for ``memory_limit``, and at least the session's default parallelism.
    ``report=True`` also renders ``report.html`` on the driver, which then reads three columns
    of ``customers`` (its histograms): the one per-entity data the driver would see, so it is
    off by default. The other arguments are those of ``crmkpi.compute``.
    """
    names = [] if tables is None else [tables] if isinstance(tables, str) else list(tables)
    _crmkpi.check_out_dir(os.fspath(out), os.fspath(lake))
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
    # A session this call creates is stopped at its end; one it was given or found is not.
    own_session = spark is None
    if own_session:
        spark = _session(master)
    try:
        if spark.conf.get("spark.sql.session.timeZone") != "UTC":
            raise CrmkpiError("crmkpi.spark needs a SparkSession with spark.sql.session.timeZone=UTC")
        engine_run = _crmkpi.SparkRun(
            os.fspath(lake),
            as_of,
            names,
            _optional_path(config),
            memory_limit,
            buckets,
            spark.sparkContext.defaultParallelism,
        )
        computed, data_warnings = _compute(spark, engine_run, os.fspath(out), report)
    finally:
        if own_session:
            spark.stop()
    import warnings

    for warning in data_warnings:
        warnings.warn(warning, CrmkpiWarning, stacklevel=2)
    return {table.name: table for table in computed}


def _compute(spark: Any, engine_run: Any, out: str, report: bool) -> tuple[list[Table], list[str]]:
    """Both stages, the fits between them, and the driver's tables and manifest."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    buckets = engine_run.buckets
    first_spec = engine_run.task_spec()
    events = spark.read.parquet(*engine_run.event_files()).select(*_crmkpi.compute_columns())
    types_by_key: dict[str, list[str]] = {}
    for event_type, column in _crmkpi.entity_keys():
        types_by_key.setdefault(column, []).append(event_type)
    key = None
    for column, event_types in types_by_key.items():
        condition = F.col("event_type").isin(event_types)
        key = F.when(condition, F.col(column)) if key is None else key.when(condition, F.col(column))
    entity_types = [event_type for event_types in types_by_key.values() for event_type in event_types]
    # Events of an entity missing their key are left out, as the engine leaves them out (and
    # xxhash64 of a null is its seed); the events of no entity go to one more task.
    is_global = ~F.col("event_type").isin(entity_types)
    routed = events.where(is_global | key.isNotNull()).withColumn(
        "bucket", F.when(is_global, F.lit(GLOBAL_BUCKET)).otherwise(F.pmod(F.xxhash64(key), F.lit(buckets))).cast("int")
    )
    # The tasks' columns must have exactly the Arrow types Spark expects for SHIPMENT_SCHEMA.
    large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false").lower() == "true"

    def shipments_table(rows: list[tuple[int, str, bytes]]) -> Any:
        import pyarrow

        return pyarrow.table(
            {
                "dest": pyarrow.array([dest for dest, _, _ in rows], pyarrow.int32()),
                "name": pyarrow.array([name for _, name, _ in rows], pyarrow.large_string() if large else pyarrow.string()),
                "payload": pyarrow.array(
                    [payload for _, _, payload in rows], pyarrow.large_binary() if large else pyarrow.binary()
                ),
            }
        )

    def first_stage(table: Any) -> Any:
        _task_threads()
        bucket = table.column("bucket")[0].as_py()
        return shipments_table(_crmkpi.bucket_task(first_spec, bucket, table.drop_columns(["bucket"])))

    # As many shuffle partitions as tasks of the larger stage (the buckets, the events of no
    # entity, the aggregated tables), so that they run in parallel (Spark places groups by a
    # hash of their number: a partition may hold two, computed one after the other), and not
    # coalesced by adaptive execution (small partitions are still separate tasks).
    tasks = buckets + 1 + engine_run.merged_tables
    previous = {key: spark.conf.get(key, None) for key in STAGE_SETTINGS}
    for key, value in STAGE_SETTINGS.items():
        spark.conf.set(key, str(tasks) if value is None else value)
    shipments = routed.groupBy("bucket").applyInArrow(first_stage, SHIPMENT_SCHEMA)
    shipments = shipments.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        for row in shipments.where(F.col("dest") == TO_DRIVER).orderBy("name").collect():
            engine_run.add_driver_shipment(row["name"], bytes(row["payload"]))
        engine_run.fit()
        second_spec = engine_run.task_spec()
        staging = engine_run.begin_output(out)

        def second_stage(table: Any) -> Any:
            _task_threads()
            dest = table.column("dest")[0].as_py()
            results = _crmkpi.stage_two_task(second_spec, dest, table.select(["name", "payload"]), staging)
            return shipments_table([(TO_DRIVER, name, payload) for name, payload in results])

        destinations = shipments.where(F.col("dest") != TO_DRIVER)
        results = destinations.groupBy("dest").applyInArrow(second_stage, SHIPMENT_SCHEMA).collect()
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        shipments.unpersist()
    for row in sorted(results, key=lambda row: row["name"]):
        engine_run.add_result(row["name"], bytes(row["payload"]))
    return engine_run.finish(report)


def _task_threads() -> None:
    """One engine thread pool per task slot, not one per core in every slot."""
    os.environ.setdefault("POLARS_MAX_THREADS", os.environ.get("CRMKPI_TASK_THREADS", "1"))


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
    parser.add_argument(
        "--out", required=True, help="the output directory (replaced atomically), shared by the driver and executors"
    )
    parser.add_argument("--config", help="a crmkpi TOML configuration file")
    parser.add_argument("--as-of", help="RFC 3339 instant, local timestamp or date (default: the latest event)")
    parser.add_argument("--tables", nargs="+", help="tables to compute (default: all 12)")
    parser.add_argument("--buckets", type=int, help="entity buckets, one Spark task each")
    parser.add_argument("--memory-limit", help="memory the buckets are planned for, e.g. 4GiB")
    parser.add_argument("--master", help="Spark master URL (default: local[*], or spark-submit's)")
    parser.add_argument(
        "--report",
        action="store_true",
        help="also write report.html (rendered on the driver, which then reads three columns of customers)",
    )
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
            report=args.report,
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
    del computed  # the aggregated tables; the manifest lists every table, parts included
    import json

    with open(os.path.join(args.out, "manifest.json"), encoding="utf-8") as manifest:
        for table in json.load(manifest)["tables"]:
            print(f"{table['name']}: {table['rows']} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
