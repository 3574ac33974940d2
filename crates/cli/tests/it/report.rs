//! `report.html` of the bundled sample run: every section is there, every number marked with
//! `data-table`/`data-key`/`data-column`/`data-value` equals the cell of the table's CSV (and
//! the text shown is that value rounded), the page references nothing outside itself, two
//! renders are byte-identical, `--no-report` skips it and `crmkpi report` refuses a directory
//! that is not a crmkpi output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{Workdir, assert_success};

/// The report's sections, by anchor id.
const SECTIONS: [&str; 8] =
    ["headline", "trends", "cohorts", "pipeline", "reps", "campaigns", "customers", "data-quality"];

/// The key columns of each table the report shows numbers of.
const KEYS: [(&str, &[&str]); 8] = [
    ("kpi_monthly", &["period", "metric", "segment"]),
    ("cohort_retention", &["segment", "cohort_month", "months_since"]),
    ("clv_model", &["model", "parameter"]),
    ("stage_durations", &["stage"]),
    ("pipeline_forecast", &["stage"]),
    ("rep_performance", &["period", "owner_id"]),
    ("lost_reasons", &["period", "reason"]),
    ("campaigns", &["campaign_id"]),
];

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-samples")
}

fn run_samples(workdir: &Workdir, extra: &[&str]) {
    let config = samples().join("crmkpi.toml");
    let dumps = samples().join("dumps");
    let mut args = vec!["--config", config.to_str().expect("utf-8"), "pipeline", dumps.to_str().expect("utf-8")];
    args.extend_from_slice(&["--lake", "lake", "--out", "out"]);
    args.extend_from_slice(extra);
    assert_success(&workdir.run(&args));
}

/// The fields of one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut characters = line.chars().peekable();
    while let Some(character) = characters.next() {
        match (character, quoted) {
            ('"', true) if characters.peek() == Some(&'"') => {
                characters.next();
                fields.last_mut().expect("field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (other, _) => fields.last_mut().expect("field").push(other),
        }
    }
    fields
}

/// A table's CSV as key (the key columns joined by `|`) → column → cell text.
fn table_cells(out: &Path, table: &str, keys: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(out.join(format!("{table}.csv"))).expect("csv");
    let mut lines = text.lines();
    let header = csv_fields(lines.next().expect("header"));
    lines
        .map(|line| {
            let row: BTreeMap<String, String> = header.iter().cloned().zip(csv_fields(line)).collect();
            let key = keys.iter().map(|column| row[*column].clone()).collect::<Vec<_>>().join("|");
            (key, row)
        })
        .collect()
}

/// HTML text as shown: the entities our escaping and minijinja's write, decoded.
fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

/// One marked number of the page: its attributes and, for HTML elements, the text right after the tag.
struct Marked {
    table: String,
    key: String,
    column: String,
    value: String,
    text: Option<String>,
}

fn marked_numbers(html: &str) -> Vec<Marked> {
    let mut marked = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let Some(length) = rest[start..].find('>') else { break };
        let tag = &rest[start..start + length + 1];
        let after = &rest[start + length + 1..];
        rest = after;
        let Some(table) = attribute(tag, "data-table") else { continue };
        let element = tag[1..].split([' ', '>']).next().unwrap_or_default();
        let text = matches!(element, "td" | "div" | "span" | "tspan")
            .then(|| unescape(&after[..after.find('<').unwrap_or(after.len())]));
        marked.push(Marked {
            table,
            key: attribute(tag, "data-key").expect("data-key"),
            column: attribute(tag, "data-column").expect("data-column"),
            value: attribute(tag, "data-value").expect("data-value"),
            text,
        });
    }
    marked
}

fn same_number(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * got.abs().max(want.abs()).max(1.0)
}

/// Whether `text` shows `value` rounded to the decimals it prints (`%` texts show value × 100).
fn shows(text: &str, value: &str, column: &str) -> bool {
    if text == "–" {
        return value.is_empty();
    }
    if column == "value" && (text == "yes" || text == "no") {
        return (value == "1") == (text == "yes");
    }
    let Ok(value) = value.parse::<f64>() else { return false };
    let number = text.trim_end_matches(['%', '×', ' ']).replace(',', "");
    let Ok(shown) = number.parse::<f64>() else { return false };
    let decimals = number.split_once('.').map_or(0, |(_, fraction)| fraction.len());
    let expected = if text.ends_with('%') && column != "csat" { value * 100.0 } else { value };
    (shown - expected).abs() <= 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9 * expected.abs()
}

#[test]
fn the_sample_report_shows_every_section_with_the_tables_numbers() {
    let workdir = Workdir::new();
    run_samples(&workdir, &[]);
    let out = workdir.path("out");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.len() < 1_000_000, "report is {} bytes", html.len());
    for external in ["http", "//", "<script", "src=", "@import", "url(http"] {
        assert!(!html.contains(external), "the report references something outside itself: {external}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).expect("manifest")).expect("json");
    let as_of = manifest["as_of"].as_str().expect("as_of");
    let context = format!("as of {as_of} · reporting zone Europe/Berlin · currency EUR");
    assert_eq!(
        unescape(&html).matches(&context).count(),
        SECTIONS.len(),
        "every section carries as_of, zone and currency"
    );
    for id in SECTIONS {
        let start = html.find(&format!("<section id=\"{id}\">")).unwrap_or_else(|| panic!("section {id} missing"));
        let body = &html[start..start + html[start..].find("</section>").expect("section end")];
        assert!(body.contains("<h2>"), "section {id} has no title");
        assert!(!body.contains("class=\"empty\""), "section {id} is empty in the sample run");
    }
    assert!(html.contains("Headline numbers of June 2025, the last complete month"));
    assert!(html.contains("Rejects of the latest ingest"), "the pipeline shows its ingest's rejects");

    let tables: BTreeMap<&str, _> = KEYS.iter().map(|(table, keys)| (*table, table_cells(&out, table, keys))).collect();
    let marked = marked_numbers(&html);
    let mut per_table: BTreeMap<&str, usize> = BTreeMap::new();
    for number in &marked {
        let table = number.table.as_str();
        let cells =
            tables.get(table).unwrap_or_else(|| panic!("the report marks a number of an unknown table {table}"));
        *per_table.entry(table).or_default() += 1;
        let row = cells.get(&number.key).unwrap_or_else(|| panic!("{table} has no row {}", number.key));
        let cell = &row[&number.column];
        let equal = match (cell.parse::<f64>(), number.value.parse::<f64>()) {
            (Ok(want), Ok(got)) => same_number(got, want),
            _ => cell.is_empty() && number.value.is_empty(),
        };
        assert!(equal, "{table} {} {}: report {:?}, table {cell:?}", number.key, number.column, number.value);
        if let Some(text) = &number.text {
            assert!(
                shows(text, &number.value, &number.column),
                "{table} {} {}: shows {text:?} for {}",
                number.key,
                number.column,
                number.value
            );
        }
    }
    for (table, _) in KEYS {
        assert!(per_table.get(table).copied().unwrap_or(0) > 0, "no number of {table} in the report");
    }
    // The headline's revenue is June 2025's row of kpi_monthly.
    assert!(marked.iter().any(|number| number.key == "2025-06-01|revenue|all" && number.text.is_some()));
}

#[test]
fn report_renders_byte_identical_and_no_report_skips_it() {
    let workdir = Workdir::new();
    run_samples(&workdir, &[]);
    let first = std::fs::read(workdir.path("out/report.html")).expect("report");
    for _ in 0..2 {
        assert_success(&workdir.run(&["report", "--out", "out", "--lake", "lake"]));
        assert!(std::fs::read(workdir.path("out/report.html")).expect("report") == first, "a re-render differs");
    }
    let leftovers: Vec<_> = std::fs::read_dir(workdir.path("out"))
        .expect("out")
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with(".crmkpi-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let compute = workdir.run(&["compute", "--lake", "lake", "--out", "out2", "--no-report"]);
    assert_success(&compute);
    assert!(!workdir.path("out2/report.html").exists(), "--no-report wrote a report");
    assert!(workdir.path("out2/manifest.json").exists());
    assert_success(&workdir.run(&["report", "--out", "out2"]));
    let without_lake = std::fs::read_to_string(workdir.path("out2/report.html")).expect("report");
    assert!(without_lake.contains("rendered without the lake"));
}

#[test]
fn report_refuses_a_directory_crmkpi_did_not_write() {
    let workdir = Workdir::new();
    std::fs::create_dir(workdir.path("mine")).expect("dir");
    std::fs::write(workdir.path("mine/notes.txt"), "keep").expect("write");
    for dir in ["mine", "missing"] {
        let output = workdir.run(&["report", "--out", dir]);
        assert_eq!(output.status.code(), Some(2), "{dir}: {}", String::from_utf8_lossy(&output.stderr));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(dir) && stderr.contains("not a crmkpi output directory"), "{stderr}");
    }
    assert!(!workdir.path("mine/report.html").exists());
    assert_eq!(std::fs::read_dir(workdir.path("mine")).expect("dir").count(), 1);
}
