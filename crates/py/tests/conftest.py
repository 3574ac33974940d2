"""Shared fixtures: the crmkpi binary, the bundled samples, and one run of the binary over them
(ingest into a lake, compute into an output directory) that the Python API is compared with."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import math

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "data-samples"

ALL_TABLES = [
    "kpi_monthly",
    "cohort_retention",
    "customers",
    "clv_model",
    "deals",
    "deal_stage_visits",
    "stage_durations",
    "pipeline_forecast",
    "rep_performance",
    "lost_reasons",
    "tickets",
    "campaigns",
]

# Manifest fields that differ between any two runs: ids, clock times, durations, memory, paths.
RUN_FIELDS = {"run_id", "started_at", "finished_at", "stage_seconds", "peak_memory_bytes"}


def normalised(table: pa.Table) -> pa.Table:
    """Strings as large_string whichever Arrow string type a reader chose."""
    fields = [
        pa.field(field.name, pa.large_string()) if pa.types.is_string(field.type) or pa.types.is_string_view(field.type) else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields))


def assert_same_rows(actual: pa.Table, expected: pa.Table, name: str) -> None:
    """Equal names, types and rows; floats equal or within 1e-9 relative."""
    actual, expected = normalised(actual), normalised(expected)
    assert actual.schema.names == expected.schema.names, name
    assert actual.schema.types == expected.schema.types, name
    assert actual.num_rows == expected.num_rows, name
    for column in expected.schema.names:
        got, want = actual[column].to_pylist(), expected[column].to_pylist()
        if pa.types.is_floating(expected.schema.field(column).type):
            for row, (a, b) in enumerate(zip(got, want)):
                same = a == b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))
                same = same or (a is not None and b is not None and math.isnan(a) and math.isnan(b))
                assert same, f"{name}.{column} row {row}: {a} != {b}"
        else:
            assert got == want, f"{name}.{column} differs"


@dataclass
class CliResult:
    """A finished run of the binary."""

    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict:
        """The JSON summary: the last line on stdout with --log-format json."""
        return json.loads(self.stdout.strip().splitlines()[-1])

    def error(self) -> str:
        """The message after `error: ` on stderr."""
        lines = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        assert lines, f"no error on stderr: {self.stderr!r}"
        return lines[-1].removeprefix("error: ")


@dataclass
class Cli:
    """The crmkpi binary, run in a working directory without a crmkpi.toml."""

    binary: Path
    workdir: Path

    def run(self, *args: str | os.PathLike) -> CliResult:
        done = subprocess.run(
            [self.binary, "--log-format", "json", *map(os.fspath, args)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    binary = Path(os.environ.get("CRMKPI_BIN", REPO / "target" / "debug" / "crmkpi"))
    if not binary.exists():
        pytest.fail(f"the crmkpi binary {binary} does not exist: build it (cargo build -p crmkpi) or set CRMKPI_BIN")
    return Cli(binary, tmp_path_factory.mktemp("cli-workdir"))


@pytest.fixture(scope="session")
def samples_config() -> Path:
    return SAMPLES / "crmkpi.toml"


@pytest.fixture(scope="session")
def samples_dumps() -> Path:
    return SAMPLES / "dumps"


@dataclass
class SampleRun:
    """The binary's ingest of the samples and its compute of every table."""

    lake: Path
    out: Path
    ingest_summary: dict


@pytest.fixture(scope="session")
def cli_run(cli: Cli, tmp_path_factory: pytest.TempPathFactory, samples_config: Path, samples_dumps: Path) -> SampleRun:
    root = tmp_path_factory.mktemp("cli-run")
    lake, out = root / "lake", root / "out"
    ingested = cli.run("--config", samples_config, "ingest", samples_dumps, "--lake", lake)
    assert ingested.code == 0, ingested.stderr
    computed = cli.run("--config", samples_config, "compute", "--lake", lake, "--out", out)
    assert computed.code == 0, computed.stderr
    return SampleRun(lake, out, ingested.summary())
