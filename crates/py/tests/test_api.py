"""The Python API on the bundled samples gives what the crmkpi binary gives: the same ingest and
validate summaries, the same tables row by row, the same files with out=DIR."""

from __future__ import annotations

import json
import math
import pydoc
from pathlib import Path

import duckdb
import polars
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import crmkpi

from conftest import ALL_TABLES, RUN_FIELDS, Cli, SampleRun, assert_same_rows

@pytest.fixture(scope="session")
def py_lake(tmp_path_factory: pytest.TempPathFactory, samples_dumps: Path, samples_config: Path) -> tuple[Path, dict]:
    lake = tmp_path_factory.mktemp("py-run") / "lake"
    summary = crmkpi.ingest(samples_dumps, lake, config=samples_config)
    return lake, summary


def test_ingest_summary_equals_the_cli_json(cli_run: SampleRun, py_lake: tuple[Path, dict]) -> None:
    _, summary = py_lake
    assert summary == cli_run.ingest_summary
    assert summary["read"] == summary["accepted"] + summary["duplicates"] + sum(summary["rejected"].values())


def test_validate_summary_equals_the_cli_json(cli: Cli, samples_dumps: Path, samples_config: Path) -> None:
    expected = cli.run("--config", samples_config, "validate", samples_dumps)
    assert expected.code == 0, expected.stderr
    assert crmkpi.validate([samples_dumps], config=samples_config) == expected.summary()


def test_compute_equals_the_cli_tables(cli_run: SampleRun, py_lake: tuple[Path, dict], samples_config: Path) -> None:
    lake, _ = py_lake
    tables = crmkpi.compute(lake, config=samples_config)
    assert list(tables) == ALL_TABLES
    manifest = json.loads((cli_run.out / "manifest.json").read_text())
    for name, table in tables.items():
        assert table.name == name
        assert table.as_of == manifest["as_of"]
        assert_same_rows(pa.table(table), pq.read_table(cli_run.out / f"{name}.parquet"), name)


def test_bucket_counts_give_the_same_tables(cli_run: SampleRun, samples_config: Path) -> None:
    one = crmkpi.compute(cli_run.lake, config=samples_config, buckets=1)
    for buckets in (3, 16):
        split = crmkpi.compute(cli_run.lake, config=samples_config, buckets=buckets)
        for name, table in one.items():
            assert pa.table(split[name]).equals(pa.table(table)), f"{name} with {buckets} buckets"
    with pytest.raises(crmkpi.UsageError, match="memory limit `lots`"):
        crmkpi.compute(cli_run.lake, config=samples_config, memory_limit="lots")


def test_compute_with_out_writes_what_the_cli_writes(
    cli_run: SampleRun, tmp_path: Path, samples_config: Path
) -> None:
    out = tmp_path / "out"
    tables = crmkpi.compute(cli_run.lake, config=samples_config, out=out)
    expected = json.loads((cli_run.out / "manifest.json").read_text())
    written = json.loads((out / "manifest.json").read_text())
    for key in RUN_FIELDS:
        expected.pop(key), written.pop(key)
    assert written == expected
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in cli_run.out.iterdir())
    for path in cli_run.out.iterdir():
        if path.name != "manifest.json":
            assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    for name, table in tables.items():
        assert_same_rows(pa.table(table), pq.read_table(out / f"{name}.parquet"), name)


def test_selected_tables_and_as_of(cli: Cli, cli_run: SampleRun, tmp_path: Path, samples_config: Path) -> None:
    out = tmp_path / "out"
    expected = cli.run(
        "--config", samples_config, "compute", "--lake", cli_run.lake, "--out", out,
        "--tables", "deals,campaigns", "--as-of", "2025-03-31",
    )
    assert expected.code == 0, expected.stderr
    tables = crmkpi.compute(cli_run.lake, as_of="2025-03-31", tables=["deals", "campaigns"], config=samples_config)
    assert list(tables) == ["deals", "campaigns"]
    assert tables["deals"].as_of == expected.summary()["as_of"]
    for name, table in tables.items():
        assert_same_rows(pa.table(table), pq.read_table(out / f"{name}.parquet"), name)


def test_arrow_consumers_read_the_tables(cli_run: SampleRun, samples_config: Path) -> None:
    tables = crmkpi.compute(cli_run.lake, config=samples_config, tables=["customers", "kpi_monthly"])
    customers = tables["customers"]
    arrow = pa.table(customers)
    assert arrow.num_rows == customers.num_rows == len(customers) > 0
    assert arrow.schema.names == customers.column_names
    assert arrow.schema.field("first_order_at").type == pa.timestamp("us", tz="UTC")
    frame = polars.DataFrame(customers)
    assert frame.shape == (arrow.num_rows, arrow.num_columns)
    assert frame["customer_id"].to_list() == arrow["customer_id"].to_pylist()
    pandas_frame = arrow.to_pandas()
    assert list(pandas_frame.columns) == customers.column_names
    kpi_monthly = tables["kpi_monthly"]
    [(revenue,)] = duckdb.sql("select sum(value) from kpi_monthly where metric = 'revenue' and segment = 'all'").fetchall()
    expected = sum(
        row["value"]
        for row in pa.table(kpi_monthly).to_pylist()
        if row["metric"] == "revenue" and row["segment"] == "all"
    )
    assert math.isclose(revenue, expected, rel_tol=1e-9)
    # Each call hands out a new stream: a table can be read any number of times.
    assert pa.table(kpi_monthly).equals(pa.table(kpi_monthly))


def test_help_documents_the_api() -> None:
    text = pydoc.render_doc(crmkpi)
    for name in ("ingest(", "validate(", "compute(", "Table", "__arrow_c_stream__", "CrmkpiError"):
        assert name in text, name
    assert "Arrow PyCapsule interface" in (crmkpi.compute.__doc__ or "") + (crmkpi.__doc__ or "")


def test_data_warnings_are_python_warnings(
    cli: Cli, tmp_path: Path, samples_dumps: Path, samples_config: Path
) -> None:
    orphan = tmp_path / "orphan.ndjson"
    orphan.write_text(
        '{"occurred_at": "2025-06-05T02:14:53Z", "event_type": "ticket_agent_replied", '
        '"event_id": "ev-orphan-1", "ticket_id": "t-orphan", "owner_id": "u11"}\n'
    )
    lake = tmp_path / "lake"
    crmkpi.ingest([samples_dumps, orphan], lake, config=samples_config)
    expected = cli.run("--config", samples_config, "compute", "--lake", lake, "--out", tmp_path / "out", "--tables", "tickets")
    assert expected.code == 0, expected.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["warnings"] == ["1 tickets have events but no ticket_opened and are left out of the service KPIs"]
    with pytest.warns(crmkpi.CrmkpiWarning) as caught:
        crmkpi.compute(lake, tables=["tickets"], config=samples_config)
    assert [str(warning.message) for warning in caught] == manifest["warnings"]
