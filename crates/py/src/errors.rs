//! The Python exceptions and how the engine's errors map to them: a usage error of the binary
//! (exit code 2: a bad `as_of` or table name, a directory that is not a lake or not crmkpi's
//! to replace) raises `UsageError`, any other failure (exit code 1) `CrmkpiError`. The message
//! is the one the binary prints after `error: `: the error and its causes joined by `: `.

use crmkpi_compute::ComputeError;
use crmkpi_export::ExportError;
use crmkpi_export::distributed::DistributedError;
use crmkpi_ingest::IngestError;
use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    crmkpi,
    CrmkpiError,
    PyException,
    "A crmkpi run failed: unreadable input, I/O, corrupt file or bad configuration (the binary's exit code 1)."
);
create_exception!(
    crmkpi,
    UsageError,
    CrmkpiError,
    "crmkpi refused the arguments before any work: a bad as_of or table name, a directory that is not a \
     lake, or an output directory crmkpi may not replace (the binary's exit code 2)."
);
create_exception!(
    crmkpi,
    RejectRatioError,
    CrmkpiError,
    "More records were rejected than max_reject_ratio allows (the binary's exit code 3); `summary` holds the \
     run's summary."
);

/// An engine failure on its way to Python: which exception, and the binary's message. Built
/// without the GIL, raised with it.
#[derive(Debug)]
pub struct EngineError {
    usage: bool,
    message: String,
}

impl EngineError {
    /// A runtime failure with what was being done, as the binary's `context` prints it.
    pub fn runtime_with_context(context: &str, error: &dyn std::error::Error) -> EngineError {
        EngineError { usage: false, message: format!("{context}: {}", chain(error)) }
    }

    /// A refused argument (`UsageError`).
    pub fn usage(error: &dyn std::error::Error) -> EngineError {
        EngineError { usage: true, message: chain(error) }
    }

    /// A compute failure: a bad `as_of` or table name is a usage error.
    pub fn from_compute(error: &ComputeError) -> EngineError {
        let usage = matches!(
            error,
            ComputeError::BadAsOf { .. } | ComputeError::UnknownTable { .. } | ComputeError::MemoryLimit { .. }
        );
        EngineError { usage, message: chain(error) }
    }

    /// A failure of the Spark job's driver or of a task.
    pub fn from_distributed(error: &DistributedError) -> EngineError {
        match error {
            DistributedError::Compute(error) => EngineError::from_compute(error),
            DistributedError::Export(error) => EngineError::from_export("writing the outputs", error),
            other => EngineError { usage: false, message: chain(other) },
        }
    }

    /// An ingest or validate failure: a directory that is not a lake is a usage error.
    pub fn from_ingest(context: &str, error: &IngestError) -> EngineError {
        let usage = matches!(error, IngestError::NotALake { .. });
        EngineError { usage, message: format!("{context}: {}", chain(error)) }
    }

    /// An export failure: an output directory that crmkpi may not replace is a usage error.
    pub fn from_export(context: &str, error: &ExportError) -> EngineError {
        let usage = matches!(error, ExportError::OutDir(_));
        EngineError { usage, message: format!("{context}: {}", chain(error)) }
    }

    /// The Python exception.
    pub fn into_py(self) -> PyErr {
        if self.usage { UsageError::new_err(self.message) } else { CrmkpiError::new_err(self.message) }
    }
}

/// The error and its causes joined by `: `, as the binary prints them (anyhow's `{:#}`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
