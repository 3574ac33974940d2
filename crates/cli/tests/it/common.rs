//! Running the `crmkpi` binary in a temporary working directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A scratch directory to run crmkpi in.
pub struct Workdir {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Workdir {
    /// A new working directory whose `crmkpi.toml` knows the generator's USD rate.
    pub fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("crmkpi.toml"), "[fx]\nUSD = 0.92\n").expect("config");
        Workdir { dir }
    }

    /// A path inside it.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// A crmkpi command running in this directory, with no pause point set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crmkpi"));
        command.current_dir(self.dir.path()).args(args).env_remove("CRMKPI_PAUSE_AT");
        command
    }

    /// Runs crmkpi to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("crmkpi runs")
    }

    /// Writes a generated dump into `dump/` of the given size and dirty rate.
    pub fn generate(&self, events: u64, dirty_rate: f64) {
        let events = events.to_string();
        let dirty = dirty_rate.to_string();
        let output = self.run(&[
            "generate",
            "--events",
            &events,
            "--seed",
            "3",
            "--out",
            "dump",
            "--format",
            "ndjson,csv",
            "--compress",
            "none,gz,zst",
            "--events-per-file",
            "700",
            "--dirty-rate",
            &dirty,
        ]);
        assert_success(&output);
    }
}

/// Asserts exit code 0, showing stderr otherwise.
pub fn assert_success(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
}

/// Every file under `dir` with its contents, sorted by path: a snapshot to compare.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|name| name != "_lock") {
                files.push((path.strip_prefix(dir).expect("inside").to_owned(), std::fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

/// Starts crmkpi paused at `point` and waits until it says it got there.
pub fn start_paused(workdir: &Workdir, point: &str, args: &[&str]) -> Child {
    let mut child = workdir
        .command(args)
        .env("CRMKPI_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let announced = lines.any(|line| line.is_ok_and(|line| line.contains(&format!("paused at {point}"))));
    assert!(announced, "crmkpi did not reach {point}");
    child
}
