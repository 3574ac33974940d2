//! Golden outputs of the bundled sample run: every table's CSV of `crmkpi pipeline` on
//! `data-samples/dumps` with `data-samples/crmkpi.toml`, and the manifest's warnings, against
//! `tests/golden/`. Numbers are compared to 1e-9 relative, everything else exactly. This is a
//! regression net: that the values are right is what the fixtures and differential tests of
//! each KPI establish. After an intended change, rewrite the files with
//! `CRMKPI_UPDATE_GOLDEN=1 cargo test -p crmkpi --test it golden` and review the diff.

use std::path::{Path, PathBuf};

use crate::common::{Workdir, assert_success};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Whether two CSV cells agree: equal text, or numbers within 1e-9 relative.
fn same_cell(got: &str, want: &str) -> bool {
    if got == want {
        return true;
    }
    match (got.parse::<f64>(), want.parse::<f64>()) {
        (Ok(got), Ok(want)) => (got - want).abs() <= 1e-9 * got.abs().max(want.abs()).max(1.0),
        _ => false,
    }
}

/// The first difference between two CSV texts, cell by cell, if any.
fn first_difference(got: &str, want: &str) -> Option<String> {
    let (got_lines, want_lines): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    if got_lines.len() != want_lines.len() {
        return Some(format!("{} lines, golden {}", got_lines.len(), want_lines.len()));
    }
    got_lines.iter().zip(&want_lines).enumerate().find_map(|(number, (got_line, want_line))| {
        let (got_cells, want_cells): (Vec<&str>, Vec<&str>) =
            (got_line.split(',').collect(), want_line.split(',').collect());
        let same = got_cells.len() == want_cells.len()
            && got_cells.iter().zip(&want_cells).all(|(got_cell, want_cell)| same_cell(got_cell, want_cell));
        (!same).then(|| format!("line {}:\n  got    {got_line}\n  golden {want_line}", number + 1))
    })
}

#[test]
fn golden_sample_outputs() {
    let workdir = Workdir::new();
    let samples = repository().join("data-samples");
    let config = samples.join("crmkpi.toml");
    let dumps = samples.join("dumps");
    let output = workdir.run(&[
        "--config",
        &config.to_string_lossy(),
        "pipeline",
        &dumps.to_string_lossy(),
        "--lake",
        "lake",
        "--out",
        "out",
    ]);
    assert_success(&output);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workdir.path("out/manifest.json")).expect("manifest"))
            .expect("json");
    let warnings: Vec<String> = manifest["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|warning| warning.as_str().expect("text").to_owned())
        .collect();
    let mut outputs: Vec<(String, String)> = manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|table| {
            let name = table["name"].as_str().expect("name");
            let csv = std::fs::read_to_string(workdir.path(&format!("out/{name}.csv"))).expect("csv");
            (format!("{name}.csv"), csv)
        })
        .collect();
    outputs.push(("warnings.txt".to_owned(), warnings.iter().map(|warning| format!("{warning}\n")).collect()));
    assert_eq!(outputs.len(), 13, "12 tables and the warnings");
    if std::env::var_os("CRMKPI_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        for (file, text) in &outputs {
            std::fs::write(golden_dir().join(file), text).expect("write golden");
        }
        return;
    }
    let differences: Vec<String> = outputs
        .iter()
        .filter_map(|(file, text)| {
            let path = golden_dir().join(file);
            let golden = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            first_difference(text, &golden).map(|difference| format!("{file}: {difference}"))
        })
        .collect();
    assert!(
        differences.is_empty(),
        "outputs differ from tests/golden (CRMKPI_UPDATE_GOLDEN=1 rewrites them after an intended change):\n{}",
        differences.join("\n")
    );
}
