"""Failures raise crmkpi's exceptions with the message the binary prints after `error: `, and the
exception class follows the binary's exit code: 1 CrmkpiError, 2 UsageError, 3 RejectRatioError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import crmkpi

from conftest import Cli, SampleRun


def test_bad_as_of_is_a_usage_error(cli: Cli, cli_run: SampleRun, tmp_path: Path, samples_config: Path) -> None:
    expected = cli.run("--config", samples_config, "compute", "--lake", cli_run.lake, "--out", tmp_path / "out", "--as-of", "yesterday")
    assert expected.code == 2
    with pytest.raises(crmkpi.UsageError) as raised:
        crmkpi.compute(cli_run.lake, as_of="yesterday", config=samples_config)
    assert str(raised.value) == expected.error()


def test_unknown_table_is_a_usage_error(cli: Cli, cli_run: SampleRun, tmp_path: Path, samples_config: Path) -> None:
    expected = cli.run("--config", samples_config, "compute", "--lake", cli_run.lake, "--out", tmp_path / "out", "--tables", "deals,nope")
    assert expected.code == 2
    with pytest.raises(crmkpi.UsageError) as raised:
        crmkpi.compute(cli_run.lake, tables=["deals", "nope"], config=samples_config)
    assert str(raised.value) == expected.error()


def test_a_directory_without_ingests_is_a_runtime_error(cli: Cli, tmp_path: Path, samples_config: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    expected = cli.run("--config", samples_config, "compute", "--lake", empty, "--out", tmp_path / "out")
    assert expected.code == 1
    with pytest.raises(crmkpi.CrmkpiError) as raised:
        crmkpi.compute(empty, config=samples_config)
    assert type(raised.value) is crmkpi.CrmkpiError
    assert str(raised.value) == expected.error()


def test_out_inside_the_lake_is_refused(cli: Cli, cli_run: SampleRun, samples_config: Path) -> None:
    out = cli_run.lake / "out"
    expected = cli.run("--config", samples_config, "compute", "--lake", cli_run.lake, "--out", out)
    assert expected.code == 2
    with pytest.raises(crmkpi.UsageError) as raised:
        crmkpi.compute(cli_run.lake, config=samples_config, out=out)
    assert str(raised.value) == expected.error()
    assert not out.exists()


def test_out_with_foreign_files_is_refused(cli: Cli, cli_run: SampleRun, tmp_path: Path, samples_config: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    expected = cli.run("--config", samples_config, "compute", "--lake", cli_run.lake, "--out", out)
    assert expected.code == 2
    with pytest.raises(crmkpi.UsageError) as raised:
        crmkpi.compute(cli_run.lake, config=samples_config, out=out)
    assert str(raised.value) == expected.error()
    assert (out / "notes.txt").read_text() == "keep me"


def test_ingest_into_a_foreign_directory_is_refused(cli: Cli, tmp_path: Path, samples_dumps: Path, samples_config: Path) -> None:
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "cv.pdf").write_text("")
    expected = cli.run("--config", samples_config, "ingest", samples_dumps, "--lake", documents)
    assert expected.code == 2
    with pytest.raises(crmkpi.UsageError) as raised:
        crmkpi.ingest(samples_dumps, documents, config=samples_config)
    assert str(raised.value) == expected.error()


def test_missing_input_is_a_runtime_error(cli: Cli, tmp_path: Path, samples_config: Path) -> None:
    missing = tmp_path / "missing.ndjson"
    expected = cli.run("--config", samples_config, "validate", missing)
    assert expected.code == 1
    with pytest.raises(crmkpi.CrmkpiError) as raised:
        crmkpi.validate(missing, config=samples_config)
    assert str(raised.value) == expected.error()


def test_bad_configuration_names_the_key(cli: Cli, tmp_path: Path, samples_dumps: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("churn_after_days = 0\n")
    expected = cli.run("--config", config, "validate", samples_dumps)
    assert expected.code == 1
    with pytest.raises(crmkpi.CrmkpiError) as raised:
        crmkpi.validate(samples_dumps, config=config)
    # The same error after the hint, which names the binary's flag or the keyword argument.
    cli_hint, cli_error = expected.error().split(": ", 1)
    py_hint, py_error = str(raised.value).split(": ", 1)
    assert cli_hint == "fix the configuration file or pass another with --config"
    assert py_hint == "fix the configuration file or pass another as config"
    assert py_error == cli_error
    assert "churn_after_days" in py_error


def test_too_many_rejects_raise_with_the_summary(cli: Cli, tmp_path: Path, samples_dumps: Path) -> None:
    config = tmp_path / "strict.toml"
    config.write_text("max_reject_ratio = 0.001\n[fx]\nUSD = 0.92\n")
    expected = cli.run("--config", config, "ingest", samples_dumps, "--lake", tmp_path / "cli-lake")
    assert expected.code == 3
    lake = tmp_path / "py-lake"
    with pytest.raises(crmkpi.RejectRatioError) as raised:
        crmkpi.ingest(samples_dumps, lake, config=config)
    assert raised.value.summary == expected.summary()
    # The messages differ only in the lake's path and the run's id.
    run_id = re.compile(r"ingest_run = [^)]+")
    assert run_id.sub("", str(raised.value)).replace(str(lake), "LAKE") == run_id.sub("", expected.error()).replace(
        str(tmp_path / "cli-lake"), "LAKE"
    )
    validated = cli.run("--config", config, "validate", samples_dumps)
    assert validated.code == 3
    with pytest.raises(crmkpi.RejectRatioError) as raised:
        crmkpi.validate(samples_dumps, config=config)
    assert raised.value.summary == validated.summary()
    assert str(raised.value).endswith(", more than max_reject_ratio = 0.001")
