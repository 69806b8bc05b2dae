//! Detection of a repository's test runner from its own files.
//!
//! The order, first match wins:
//! 1. pytest configuration: `pytest.ini`, `[tool.pytest...]` in `pyproject.toml`,
//!    `[tool:pytest]` in `setup.cfg`, `[pytest]` in `tox.ini`, or a `conftest.py` anywhere;
//! 2. a `package.json` whose `test` script is not npm's placeholder;
//! 3. `go.mod`; 4. `pom.xml`; 5. `build.gradle(.kts)` / `settings.gradle(.kts)`;
//! 6. Python test files (`test_*.py`, `*_test.py`): unittest when the ones read all use
//!    `unittest` and none mentions pytest, pytest otherwise.
//!
//! Configuration files count at the repository root only; vendored and generated
//! directories (`node_modules`, `.venv`, `target`, ...) are ignored.

use std::collections::{BTreeSet, HashMap};

use cap_proto::sandbox::v1::{ListDirectoryRequest, ReadFileRequest};
use cap_sandbox_client::SandboxApi;

use crate::plan::{Framework, TestPlan};
use crate::{Error, Result};

/// Root files whose content decides detection.
const CONFIG_FILES: [&str; 4] = ["pyproject.toml", "setup.cfg", "tox.ini", "package.json"];

/// How many Python test files are read to tell unittest from pytest.
const PYTHON_TESTS_READ: usize = 8;

/// Directories that hold someone else's code or build output.
const IGNORED_DIRS: [&str; 14] = [
    ".git",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    "site-packages",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    "vendor",
    "target",
    "build",
    "dist",
];

/// Detects how the repository in the session's workspace is tested; `None` when it shows
/// no test runner this crate knows.
pub async fn detect(sandbox: &dyn SandboxApi, session_id: &str) -> Result<Option<TestPlan>> {
    if session_id.is_empty() {
        return Err(Error::EmptySessionId);
    }
    // The root listing first: a recursive listing may be truncated before it reaches the
    // root's configuration files.
    let mut paths = BTreeSet::new();
    for recursive in [false, true] {
        let response = sandbox
            .list_directory(ListDirectoryRequest {
                session_id: session_id.to_owned(),
                path: String::new(),
                recursive,
            })
            .await
            .map_err(|source| Error::Sandbox {
                operation: "ListDirectory",
                source,
            })?;
        if response.truncated {
            tracing::debug!(
                recursive,
                "workspace listing truncated; detecting from a part"
            );
        }
        paths.extend(
            response
                .entries
                .into_iter()
                .filter(|e| !e.is_dir)
                .map(|e| normalize(&e.path)),
        );
    }
    let paths: Vec<String> = paths.into_iter().collect();
    let mut contents = HashMap::new();
    for path in files_to_read(&paths) {
        let request = ReadFileRequest {
            session_id: session_id.to_owned(),
            path: path.clone(),
        };
        match sandbox.read_file(request).await {
            Ok(response) => {
                let text = String::from_utf8_lossy(&response.content).into_owned();
                contents.insert(path, text);
            }
            // Listed but gone (or unreadable as a file): detect without it.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) =>
            {
                tracing::debug!(%path, message = status.message(), "skipping unreadable file");
            }
            Err(source) => {
                return Err(Error::Sandbox {
                    operation: "ReadFile",
                    source,
                });
            }
        }
    }
    Ok(detect_from_files(&paths, &contents))
}

/// The files (of `paths`, the workspace's files) whose content [`detect_from_files`] looks at.
pub fn files_to_read(paths: &[String]) -> Vec<String> {
    let mut wanted: Vec<String> = CONFIG_FILES
        .iter()
        .filter(|f| paths.iter().any(|p| p == *f))
        .map(|f| f.to_string())
        .collect();
    // Python test files matter only when no build file decides before them.
    let decided = ["pytest.ini", "go.mod", "pom.xml"]
        .iter()
        .chain(GRADLE_FILES.iter())
        .any(|f| paths.iter().any(|p| p == f))
        || paths.iter().any(|p| is_conftest(p));
    if !decided {
        wanted.extend(
            python_test_files(paths)
                .into_iter()
                .take(PYTHON_TESTS_READ)
                .map(str::to_owned),
        );
    }
    wanted
}

/// The files that make a Gradle build.
const GRADLE_FILES: [&str; 4] = [
    "build.gradle",
    "build.gradle.kts",
    "settings.gradle",
    "settings.gradle.kts",
];

fn is_conftest(path: &str) -> bool {
    !ignored(path) && file_name(path) == "conftest.py"
}

/// Detects the test runner from the workspace's file paths (relative, `/`-separated) and the
/// contents of the files [`files_to_read`] names (missing ones count as absent).
pub fn detect_from_files(paths: &[String], contents: &HashMap<String, String>) -> Option<TestPlan> {
    let has_root = |name: &str| paths.iter().any(|p| p == name);
    let content = |name: &str| contents.get(name).map(String::as_str).unwrap_or_default();

    let pytest_configured = has_root("pytest.ini")
        || has_section(content("pyproject.toml"), "[tool.pytest")
        || has_section(content("setup.cfg"), "[tool:pytest]")
        || has_section(content("tox.ini"), "[pytest]")
        || paths.iter().any(|p| is_conftest(p));
    if pytest_configured {
        return Some(TestPlan::standard(Framework::Pytest));
    }
    if has_root("package.json")
        && let Some(framework) = node_framework(content("package.json"))
    {
        return Some(TestPlan::standard(framework));
    }
    if has_root("go.mod") {
        return Some(TestPlan::standard(Framework::GoTest));
    }
    if has_root("pom.xml") {
        return Some(TestPlan::standard(Framework::Maven));
    }
    if GRADLE_FILES.iter().any(|f| has_root(f)) {
        return Some(TestPlan::standard(Framework::Gradle));
    }
    let tests = python_test_files(paths);
    if tests.is_empty() {
        return None;
    }
    let read: Vec<&str> = tests
        .iter()
        .filter_map(|t| contents.get(*t))
        .map(String::as_str)
        .collect();
    let mentions_pytest = read.iter().any(|text| text.contains("pytest"));
    let all_unittest = !read.is_empty() && read.iter().all(|text| text.contains("unittest"));
    if mentions_pytest || !all_unittest {
        return Some(TestPlan::standard(Framework::Pytest));
    }
    Some(unittest_plan(paths, &tests))
}

/// `python3 -m unittest discover`, started where the tests are: discovery does not descend
/// into directories that are not packages.
fn unittest_plan(paths: &[String], tests: &[&str]) -> TestPlan {
    let mut command = String::from("python3 -m unittest discover");
    let top_dirs: BTreeSet<Option<&str>> = tests
        .iter()
        .map(|t| t.split_once('/').map(|(dir, _)| dir))
        .collect();
    if let [Some(dir)] = top_dirs.into_iter().collect::<Vec<_>>()[..] {
        let init = format!("{dir}/__init__.py");
        if !paths.contains(&init) {
            command.push_str(" -s ");
            command.push_str(&crate::plan::shell_quote(dir));
        }
    }
    if tests.iter().all(|t| !file_name(t).starts_with("test")) {
        command.push_str(" -p '*_test.py'");
    }
    TestPlan {
        framework: Framework::Unittest,
        command,
    }
}

/// Python test files as pytest finds them by default, sorted, outside ignored directories.
fn python_test_files(paths: &[String]) -> Vec<&str> {
    let mut tests: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .filter(|p| !ignored(p))
        .filter(|p| {
            let name = file_name(p);
            name.ends_with(".py") && (name.starts_with("test_") || name.ends_with("_test.py"))
        })
        .collect();
    tests.sort_unstable();
    tests
}

/// Whether an INI/TOML text has a line opening `section`.
fn has_section(text: &str, section: &str) -> bool {
    text.lines()
        .any(|line| line.trim_start().starts_with(section))
}

/// The runner a `package.json` names: Vitest, Jest or Mocha when its `test` script or its
/// dependencies name them, node's own runner when the script is `node --test`, else `npm
/// test` when there is a real `test` script (not `npm init`'s "no test specified").
fn node_framework(text: &str) -> Option<Framework> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            tracing::debug!(%error, "package.json is not valid JSON; not an npm project");
            return None;
        }
    };
    let script = value
        .get("scripts")
        .and_then(|s| s.get("test"))
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|script| !script.is_empty() && !script.contains("no test specified"));
    let depends_on = |name: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|section| value.get(section).and_then(|d| d.get(name)).is_some())
    };
    let script_runs =
        |name: &str| script.is_some_and(|s| s.split([' ', '&', ';', '|']).any(|word| word == name));
    if script_runs("vitest") || (script.is_none() && depends_on("vitest")) {
        return Some(Framework::Vitest);
    }
    if script_runs("jest") || (script.is_none() && depends_on("jest")) {
        return Some(Framework::Jest);
    }
    if script_runs("mocha") || (script.is_none() && depends_on("mocha")) {
        return Some(Framework::Mocha);
    }
    match script {
        Some(script) if script.starts_with("node --test") => Some(Framework::NodeRunner),
        Some(_) => Some(Framework::NodeTest),
        None => None,
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn ignored(path: &str) -> bool {
    path.split('/')
        .rev()
        .skip(1)
        .any(|dir| IGNORED_DIRS.contains(&dir))
}

/// Listing paths as `a/b`: no leading `./` or `/`.
fn normalize(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .to_owned()
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
