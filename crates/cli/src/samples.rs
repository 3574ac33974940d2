//! The bundled sample dumps that `crmkpi pipeline` runs on when given no input: the
//! `data-samples/` directory of the working directory, else the one of the source tree the
//! binary was built from.

use std::path::{Path, PathBuf};

/// Where the bundled samples are.
#[derive(Debug, Clone)]
pub struct Samples {
    /// The directory of dump files.
    pub dumps: PathBuf,
    /// Their configuration file.
    pub config: PathBuf,
}

/// Finds the bundled samples.
pub fn bundled_samples() -> anyhow::Result<Samples> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-samples");
    [PathBuf::from("data-samples"), built_from]
        .into_iter()
        .find(|dir| dir.join("dumps").is_dir())
        .map(|dir| Samples { dumps: dir.join("dumps"), config: dir.join("crmkpi.toml") })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no input given and no data-samples/ directory here; pass the dumps to read: crmkpi pipeline <INPUT>..."
            )
        })
}
