//! The entries of a directory as an error message names them, for the refusals of `--out`
//! and `--lake` directories that hold files crmkpi did not write.

use std::path::Path;

/// How many entries [`describe`] names before it says "and N more".
const NAMED_ENTRIES: usize = 5;

/// The names of the entries of `dir` that `keep` accepts, directories with a trailing `/`,
/// sorted. A missing directory has none.
pub fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            names.push(if entry.file_type()?.is_dir() { format!("{name}/") } else { name });
        }
    }
    names.sort();
    Ok(names)
}

/// "2 entries that crmkpi did not write: notes.txt, precious/", naming at most five.
pub fn describe(names: &[String]) -> String {
    let noun = if names.len() == 1 { "entry" } else { "entries" };
    let mut listed = names.iter().take(NAMED_ENTRIES).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > NAMED_ENTRIES {
        listed.push_str(&format!(" and {} more", names.len() - NAMED_ENTRIES));
    }
    format!("{} {noun} that crmkpi did not write: {listed}", names.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_at_most_five() {
        let names: Vec<String> = (1..=7).map(|index| format!("f{index}")).collect();
        assert_eq!(describe(&names[..1]), "1 entry that crmkpi did not write: f1");
        assert_eq!(describe(&names), "7 entries that crmkpi did not write: f1, f2, f3, f4, f5 and 2 more");
    }
}
