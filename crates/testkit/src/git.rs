//! Test repositories: `git` with a fixed identity and none of the host's configuration, and
//! one-commit repositories cloned bare, as the forge and the sandbox read them.

// Only tests call these: a test cannot go on without its repository, and the panic says why.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git args` in `dir` and returns its standard output, trimmed; panics with git's
/// standard error when it fails. The host's configuration and hooks are ignored, so a test
/// sees the same git on every machine.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("git {args:?} did not start: {err}"));
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("git printed UTF-8")
        .trim()
        .to_owned()
}

/// A repository made under `dir` with one commit on `main` holding `files` (path, content),
/// then cloned bare to `dir/remote.git`.
#[derive(Debug, Clone)]
pub struct BareRepo {
    /// The bare repository.
    pub path: PathBuf,
    /// The working repository it was cloned from.
    pub work: PathBuf,
    /// The commit's id.
    pub commit: String,
}

impl BareRepo {
    /// Writes `files` into `dir/work` and makes the repository of them; panics on any failure
    /// (a test cannot go on without it).
    pub fn new(dir: &Path, files: &[(&str, &str)]) -> Self {
        let work = dir.join("work");
        for (path, content) in files {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().expect("a file has a parent"))
                .expect("create a fixture directory");
            std::fs::write(path, content).expect("write a fixture file");
        }
        Self::of_tree(dir, &work)
    }

    /// Makes the repository of everything in `work` (ignored files too), which becomes its
    /// working repository; the bare clone goes to `dir/remote.git`.
    pub fn of_tree(dir: &Path, work: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create the repository's directory");
        std::fs::create_dir_all(work).expect("create the work tree");
        git(work, &["init", "--quiet"]);
        git(work, &["add", "--all", "--force"]);
        git(work, &["commit", "--quiet", "--allow-empty", "-m", "init"]);
        let commit = git(work, &["rev-parse", "HEAD"]);
        let path = dir.join("remote.git");
        let (work_arg, bare_arg) = (work.to_string_lossy(), path.to_string_lossy());
        git(dir, &["clone", "--quiet", "--bare", &work_arg, &bare_arg]);
        Self {
            path,
            work: work.to_owned(),
            commit,
        }
    }

    /// The bare repository's path as a string, as the sandbox's `CreateSession` takes it.
    pub fn url(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
#[path = "git_tests.rs"]
mod tests;
