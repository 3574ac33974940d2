"""Type stubs of the extension module ``crmkpi._crmkpi`` (use the functions of ``crmkpi``)."""

from typing import Any

__version__: str

class CrmkpiError(Exception):
    """A crmkpi run failed (the command line's exit code 1)."""

class UsageError(CrmkpiError):
    """crmkpi refused the arguments before any work (the command line's exit code 2)."""

class RejectRatioError(CrmkpiError):
    """More records were rejected than ``max_reject_ratio`` allows (exit code 3)."""

    summary: dict[str, Any]

class Table:
    """A computed table, readable by any Arrow consumer (Arrow PyCapsule interface)."""

    @property
    def name(self) -> str: ...
    @property
    def as_of(self) -> str: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def column_names(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

def ingest(inputs: list[str], lake: str, config: str | None = None) -> tuple[str, str | None]: ...
def validate(inputs: list[str], config: str | None = None) -> tuple[str, str | None]: ...
def compute(
    lake: str,
    as_of: str | None = None,
    tables: list[str] = ...,
    config: str | None = None,
    out: str | None = None,
    report: bool = True,
    memory_limit: str | None = None,
    buckets: int | None = None,
) -> tuple[list[Table], list[str]]: ...
