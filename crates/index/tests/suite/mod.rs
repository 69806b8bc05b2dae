//! The suites, and what they share.

mod edge_cases;
mod hybrid;
mod patterns;
mod python;
mod search;
mod semantic;
mod traces;
mod typescript_go_java;

use std::path::{Path, PathBuf};

use cap_index::{Index, IndexOptions};

/// The fixture repository `name` under `tests/fixtures/context`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/context")
        .join(name)
}

/// A private copy of a fixture, for tests that add or change files.
pub fn copy_fixture(name: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    copy_dir(&fixture(name), dir.path())?;
    Ok(dir)
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Indexes `root` with default options.
pub fn index(root: &Path) -> anyhow::Result<Index> {
    Ok(Index::build(root, IndexOptions::default())?)
}

/// `(from, to)` of every edge.
pub fn edges(index: &Index) -> Vec<(String, String)> {
    index
        .edges()
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect()
}

/// `(kind, parent, name)` of every symbol of a file, as `kind parent.name` strings.
pub fn symbols(index: &Index, path: &str) -> anyhow::Result<Vec<String>> {
    let summary = index.file_summary(path)?;
    Ok(summary
        .symbols
        .iter()
        .map(|s| {
            let kind = serde_json::to_value(s.kind)
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .unwrap_or_default();
            match &s.parent {
                Some(p) => format!("{kind} {p}.{}", s.name),
                None => format!("{kind} {}", s.name),
            }
        })
        .collect())
}

/// Runs a command in `dir` and returns its combined output; the command is expected to fail.
pub fn run_failing(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> anyhow::Result<String> {
    let mut command = std::process::Command::new(program);
    command.args(args).current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output()?;
    anyhow::ensure!(
        !output.status.success(),
        "{program} {args:?} was expected to fail"
    );
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
