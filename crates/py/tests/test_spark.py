"""The Spark job (`crmkpi.spark`) in local[2] mode gives what `crmkpi compute` gives: on the
bundled samples and on generated dumps of several seeds and time zones, for 1, 3 and 8 entity
buckets, table by table and row by row (the per-entity tables written by the tasks as part
files, the aggregated ones by the driver); also with buckets that receive no events and on a
lake of a single customer. Spark routes events with its own xxhash64, which must agree with the
engine's bucket function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

pyspark = pytest.importorskip("pyspark", reason="pyspark is in crates/py/requirements.txt")

import crmkpi  # noqa: E402
import crmkpi.spark  # noqa: E402
from crmkpi import _crmkpi  # noqa: E402

from conftest import ALL_TABLES, RUN_FIELDS, Cli, SampleRun, assert_same_rows, normalised  # noqa: E402

BUCKET_COUNTS = [1, 3, 8]


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("crmkpi-tests").config("spark.ui.enabled", "false")
    for key, value in crmkpi.spark.SESSION_SETTINGS.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


#: The tables the Spark tasks write as part files, with the columns their rows are sorted by.
PER_ENTITY_KEYS = {
    "customers": ["customer_id"],
    "deals": ["deal_id"],
    "deal_stage_visits": ["deal_id", "visit"],
    "tickets": ["ticket_id"],
}


def cli_tables(out: Path) -> dict[str, pa.Table]:
    return {name: pq.read_table(out / f"{name}.parquet") for name in ALL_TABLES}


def written_tables(out: Path) -> dict[str, pa.Table]:
    """The tables of a Spark run's output directory, by the manifest: a per-entity table's
    parts concatenated and sorted by its key."""
    manifest = json.loads((out / "manifest.json").read_text())
    tables = {}
    for entry in manifest["tables"]:
        name = entry["name"]
        files = [file["name"] for file in entry["files"] if file["name"].endswith(".parquet")]
        if name in PER_ENTITY_KEYS:
            assert (out / f"{name}.parquet").is_dir() and (out / f"{name}.csv").is_dir(), name
            assert all(file.startswith(f"{name}.parquet/part-") for file in files), files
            table = normalised(pa.concat_tables([pq.read_table(out / file) for file in files]))
            table = table.sort_by([(key, "ascending") for key in PER_ENTITY_KEYS[name]])
        else:
            assert files == [f"{name}.parquet"], files
            table = pq.read_table(out / files[0])
        assert table.num_rows == entry["rows"], name
        tables[name] = table
    return tables


def assert_same_tables(out: Path, expected: dict[str, pa.Table], what: str, returned: dict[str, crmkpi.Table]) -> None:
    """The tables written to `out` (and those the run returned) equal `expected` (restricted to
    the tables written)."""
    tables = written_tables(out)
    assert set(tables) <= set(expected), what
    expected = {name: expected[name] for name in tables}
    for name, table in tables.items():
        assert_same_rows(table, expected[name], f"{what}: {name}")
    assert list(returned) == [name for name in expected if name not in PER_ENTITY_KEYS], what
    for name, table in returned.items():
        assert_same_rows(pa.table(table), expected[name], f"{what}: {name} (returned)")


def csv_rows(path: Path) -> tuple[str, list[str]]:
    """A CSV file's or part directory's header and data lines (sorted)."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    headers, lines = set(), []
    for file in files:
        header, *rows = file.read_text().splitlines()
        headers.add(header)
        lines.extend(rows)
    assert len(headers) == 1, headers
    return headers.pop(), sorted(lines)


def test_spark_routes_events_to_the_engines_buckets(spark) -> None:
    from pyspark.sql import functions as F

    keys = ["c-1", "c-00042", "deal-77", "t-9", "", "é-ünicode", "x" * 200, "12345678901234567890123"]
    rows = spark.createDataFrame([(key,) for key in keys], "key string")
    for buckets in (1, 3, 8, 64):
        routed = rows.select("key", F.pmod(F.xxhash64("key"), F.lit(buckets)).alias("bucket")).collect()
        assert {row["key"]: row["bucket"] for row in routed} == {key: _crmkpi.bucket_of(key, buckets) for key in keys}


@pytest.mark.parametrize("buckets", BUCKET_COUNTS)
def test_spark_equals_the_cli_on_the_samples(
    spark, cli_run: SampleRun, tmp_path: Path, samples_config: Path, buckets: int
) -> None:
    out = tmp_path / "out"
    tables = crmkpi.spark.run(cli_run.lake, out, spark=spark, config=samples_config, buckets=buckets, report=True)
    assert_same_tables(out, cli_tables(cli_run.out), f"{buckets} buckets", tables)
    # The files too: the same names; the driver's the same bytes as the binary's, the
    # per-entity tables' CSV parts the same lines; the same manifest but for run fields and
    # the per-entity tables' files.
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in cli_run.out.iterdir())
    for path in cli_run.out.iterdir():
        table = path.name.split(".")[0]
        if table in PER_ENTITY_KEYS:
            if path.suffix == ".csv":
                assert csv_rows(out / path.name) == csv_rows(path), path.name
        elif path.name != "manifest.json":
            assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    expected = json.loads((cli_run.out / "manifest.json").read_text())
    written = json.loads((out / "manifest.json").read_text())
    for key in RUN_FIELDS:
        expected.pop(key), written.pop(key)
    for manifest in (expected, written):
        for table in manifest["tables"]:
            if table["name"] in PER_ENTITY_KEYS:
                table.pop("files")
    assert written == expected


def write_config(path: Path, timezone: str) -> Path:
    path.write_text(
        f'timezone = "{timezone}"\nsource_timezone = "UTC"\ncurrency = "EUR"\n\n[fx]\nUSD = 0.92\n\n'
        f'[business_hours]\ntimezone = "{timezone}"\n'
    )
    return path


@pytest.fixture(scope="session", params=[(2, "America/New_York"), (3, "Europe/Berlin"), (4, "UTC")], ids=str)
def generated_run(request, cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A generated dump of 20,000 events ingested and computed by the binary: (lake, config, out)."""
    seed, timezone = request.param
    root = tmp_path_factory.mktemp(f"generated-{seed}")
    config = write_config(root / "crmkpi.toml", timezone)
    generated = cli.run("--config", config, "generate", "--events", "20000", "--seed", str(seed), "--out", root / "dump")
    assert generated.code == 0, generated.stderr
    ingested = cli.run("--config", config, "ingest", root / "dump", "--lake", root / "lake")
    assert ingested.code == 0, ingested.stderr
    computed = cli.run("--config", config, "compute", "--lake", root / "lake", "--out", root / "out", "--no-report")
    assert computed.code == 0, computed.stderr
    return root / "lake", config, root / "out"


@pytest.mark.filterwarnings("ignore::crmkpi.CrmkpiWarning")
@pytest.mark.parametrize("buckets", BUCKET_COUNTS)
def test_spark_equals_the_cli_on_generated_lakes(
    spark, generated_run: tuple[Path, Path, Path], buckets: int, tmp_path: Path
) -> None:
    lake, config, out = generated_run
    tables = crmkpi.spark.run(lake, tmp_path / "out", spark=spark, config=config, buckets=buckets, report=False)
    assert_same_tables(tmp_path / "out", cli_tables(out), f"{lake.parent.name}, {buckets} buckets", tables)


@pytest.fixture(scope="session")
def one_customer_run(cli: Cli, tmp_path_factory: pytest.TempPathFactory, samples_config: Path, samples_dumps: Path):
    """The sample events of the customer with the most events, as their own lake."""
    root = tmp_path_factory.mktemp("one-customer")
    events = []
    for line in (samples_dumps / "events-00000.ndjson").read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # the samples hold malformed lines on purpose
    # Only whole events: the samples' incomplete ones would be this tiny dump's rejects.
    events = [event for event in events if isinstance(event, dict) and {"event_id", "event_type", "occurred_at"} <= set(event)]
    counts: dict[str, int] = {}
    for event in events:
        if isinstance(event.get("customer_id"), str):
            counts[event["customer_id"]] = counts.get(event["customer_id"], 0) + 1
    customer = max(counts, key=lambda key: (counts[key], key))
    dump = root / "one-customer.ndjson"
    dump.write_text("".join(json.dumps(event) + "\n" for event in events if event.get("customer_id") == customer))
    ingested = cli.run("--config", samples_config, "ingest", dump, "--lake", root / "lake")
    assert ingested.code == 0, ingested.stderr
    computed = cli.run("--config", samples_config, "compute", "--lake", root / "lake", "--out", root / "out")
    assert computed.code == 0, computed.stderr
    return root / "lake", root / "out"


def test_spark_on_a_single_customer_with_empty_buckets(
    spark, one_customer_run, samples_config: Path, tmp_path: Path
) -> None:
    lake, out = one_customer_run
    expected = cli_tables(out)
    assert expected["customers"].num_rows == 1
    # Eight buckets for one customer (and its deals and tickets): most receive no events.
    with pytest.warns(crmkpi.CrmkpiWarning) as caught:
        tables = crmkpi.spark.run(lake, tmp_path / "out", spark=spark, config=samples_config, buckets=8)
    manifest = json.loads((out / "manifest.json").read_text())
    data_warnings = [str(warning.message) for warning in caught if warning.category is crmkpi.CrmkpiWarning]
    assert data_warnings == manifest["warnings"]
    assert_same_tables(tmp_path / "out", expected, "one customer, 8 buckets", tables)


def test_spark_refuses_what_compute_refuses(spark, cli_run: SampleRun, samples_config: Path, tmp_path: Path) -> None:
    with pytest.raises(crmkpi.UsageError, match="unknown table `nope`"):
        crmkpi.spark.run(cli_run.lake, tmp_path / "out", spark=spark, config=samples_config, tables=["nope"])
    with pytest.raises(crmkpi.UsageError, match="inside the lake"):
        crmkpi.spark.run(cli_run.lake, cli_run.lake / "out", spark=spark, config=samples_config)
    spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
    try:
        with pytest.raises(crmkpi.CrmkpiError, match="timeZone=UTC"):
            crmkpi.spark.run(cli_run.lake, tmp_path / "out", spark=spark, config=samples_config)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_the_command_line_writes_what_compute_writes(cli_run: SampleRun, tmp_path: Path, samples_config: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable, "-m", "crmkpi.spark", "--lake", cli_run.lake, "--out", out, "--config", samples_config,
            "--master", "local[2]", "--buckets", "2", "--tables", "kpi_monthly", "customers",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "kpi_monthly: " in done.stdout and "customers: " in done.stdout
    for extension in ("parquet", "csv"):
        file = f"kpi_monthly.{extension}"
        assert (out / file).read_bytes() == (cli_run.out / file).read_bytes(), file
    assert csv_rows(out / "customers.csv") == csv_rows(cli_run.out / "customers.csv")


@pytest.mark.filterwarnings("ignore::crmkpi.CrmkpiWarning")
@pytest.mark.parametrize(
    "tables", [["customers"], ["tickets"], ["campaigns", "deals"], ["stage_durations", "clv_model", "kpi_monthly"]]
)
def test_spark_computes_a_selection_of_tables(
    spark, generated_run: tuple[Path, Path, Path], tables: list[str], tmp_path: Path
) -> None:
    lake, config, out = generated_run
    returned = crmkpi.spark.run(lake, tmp_path / "out", spark=spark, config=config, buckets=3, tables=tables)
    assert [table["name"] for table in json.loads((tmp_path / "out" / "manifest.json").read_text())["tables"]] == tables
    assert_same_tables(tmp_path / "out", cli_tables(out), f"{tables}", returned)


def test_spark_replaces_its_output_and_compute_replaces_it(
    spark, cli_run: SampleRun, cli: Cli, samples_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for _ in range(2):
        crmkpi.spark.run(cli_run.lake, out, spark=spark, config=samples_config, buckets=3)
    # The files are readable by others as compute's are (the umask applies), parts included.
    umask = os.umask(0)
    os.umask(umask)
    for file in [out / "kpi_monthly.parquet", *(out / "customers.parquet").iterdir(), *(out / "deals.csv").iterdir()]:
        assert file.stat().st_mode & 0o777 == 0o666 & ~umask, file
    # A file of someone else's in a part directory makes it foreign.
    (out / "deals.csv" / "notes.txt").write_text("mine")
    with pytest.raises(crmkpi.UsageError, match="deals.csv/notes.txt"):
        crmkpi.spark.run(cli_run.lake, out, spark=spark, config=samples_config, buckets=3)
    (out / "deals.csv" / "notes.txt").unlink()
    computed = cli.run("--config", samples_config, "compute", "--lake", cli_run.lake, "--out", out, "--no-report")
    assert computed.code == 0, computed.stderr
    assert (out / "customers.parquet").is_file()
    returned = crmkpi.spark.run(cli_run.lake, out, spark=spark, config=samples_config, buckets=2)
    assert_same_tables(out, cli_tables(cli_run.out), "over compute's output", returned)


def test_spark_with_large_arrow_types(spark, cli_run: SampleRun, samples_config: Path, tmp_path: Path) -> None:
    spark.conf.set("spark.sql.execution.arrow.useLargeVarTypes", "true")
    try:
        returned = crmkpi.spark.run(cli_run.lake, tmp_path / "out", spark=spark, config=samples_config, buckets=3)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.useLargeVarTypes")
    assert_same_tables(tmp_path / "out", cli_tables(cli_run.out), "large Arrow types", returned)
