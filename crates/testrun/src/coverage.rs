//! Coverage before and after a change: measuring it in the sandbox (coverage.py for pytest,
//! `go test -coverprofile` for Go, Vitest's and Jest's lcov, the JaCoCo agent for Maven),
//! parsing the tools' machine formats, the per-file and overall delta, and the repository's
//! threshold (FR-006).
//!
//! "Before" is measured on a copy of the session's base checkout (`/repo`, read-only),
//! "after" in `/workspace`, so both come from the same sandbox session.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use cap_proto::sandbox::v1::exec_output::Output;
use cap_proto::sandbox::v1::{ExecRequest, ExitStatus, ReadFileRequest};
use cap_sandbox_client::SandboxApi;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::plan::{Framework, TestPlan, shell_quote};
use crate::run::runner_env;
use crate::{Error, Result};

/// Lines (statements for Go and coverage.py) of one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCoverage {
    /// Lines the tests executed.
    pub covered: u64,
    /// Lines that could be executed.
    pub total: u64,
}

impl FileCoverage {
    /// Covered lines in percent of all; 100 for a file without executable lines.
    pub fn percent(self) -> f64 {
        percent(self.covered, self.total)
    }
}

/// Coverage of a whole run, per file (workspace-relative path, or the Go import path).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Each measured file.
    pub files: BTreeMap<String, FileCoverage>,
}

impl Coverage {
    /// All files together.
    pub fn total(&self) -> FileCoverage {
        self.files
            .values()
            .fold(FileCoverage::default(), |sum, f| FileCoverage {
                covered: sum.covered + f.covered,
                total: sum.total + f.total,
            })
    }

    /// Overall coverage in percent.
    pub fn percent(&self) -> f64 {
        self.total().percent()
    }
}

fn percent(covered: u64, total: u64) -> f64 {
    if total == 0 {
        return 100.0;
    }
    // Lines counts are far below 2^52: exact as f64.
    let value = covered as f64 * 100.0 / total as f64;
    (value * 100.0).round() / 100.0
}

/// How one file's coverage changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDelta {
    /// The file.
    pub path: String,
    /// Percent before the change; `None` for a new file.
    pub before: Option<f64>,
    /// Percent after the change; `None` for a deleted file.
    pub after: Option<f64>,
    /// `after - before` in percentage points (a new file counts from 0, a deleted one to 0).
    pub delta: f64,
}

/// Coverage before and after a change, and whether it passes the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageDelta {
    /// Overall percent before.
    pub before: f64,
    /// Overall percent after.
    pub after: f64,
    /// `after - before`, percentage points.
    pub delta: f64,
    /// Files whose coverage changed, by path.
    pub files: Vec<FileDelta>,
    /// The repository's minimum overall percent, when it sets one.
    pub threshold: Option<f64>,
    /// The change took coverage below the threshold.
    pub below_threshold: bool,
}

impl CoverageDelta {
    /// One paragraph with the numbers, for the coding agent and the user.
    pub fn summary(&self) -> String {
        let Self {
            before,
            after,
            delta,
            ..
        } = self;
        let mut text = format!("coverage {before:.2}% -> {after:.2}% ({delta:+.2} points)");
        if let Some(threshold) = self.threshold {
            if self.below_threshold {
                text.push_str(&format!(
                    ", below the repository's threshold of {threshold:.2}%"
                ));
            } else {
                text.push_str(&format!(", threshold {threshold:.2}% met"));
            }
        }
        for file in &self.files {
            let show = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.2}%"));
            text.push_str(&format!(
                "\n  {}: {} -> {} ({:+.2})",
                file.path,
                show(file.before),
                show(file.after),
                file.delta
            ));
        }
        text
    }
}

/// Compares coverage before and after a change against `threshold` (overall percent).
///
/// The change fails the threshold when the coverage after it is below the threshold; a
/// repository already below it fails only when the change lowers coverage further.
pub fn compare(before: &Coverage, after: &Coverage, threshold: Option<f64>) -> CoverageDelta {
    let (before_pct, after_pct) = (before.percent(), after.percent());
    let delta = round2(after_pct - before_pct);
    let paths: BTreeSet<&String> = before.files.keys().chain(after.files.keys()).collect();
    let files = paths
        .into_iter()
        .filter_map(|path| {
            let b = before.files.get(path).map(|f| f.percent());
            let a = after.files.get(path).map(|f| f.percent());
            let delta = round2(a.unwrap_or(0.0) - b.unwrap_or(0.0));
            let unchanged = before.files.get(path) == after.files.get(path);
            (!unchanged).then(|| FileDelta {
                path: path.clone(),
                before: b,
                after: a,
                delta,
            })
        })
        .collect();
    let below_threshold =
        threshold.is_some_and(|t| after_pct < t && (before_pct >= t || after_pct < before_pct));
    CoverageDelta {
        before: before_pct,
        after: after_pct,
        delta,
        files,
        threshold,
        below_threshold,
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[derive(Deserialize)]
struct PyReport {
    files: BTreeMap<String, PyFile>,
}

#[derive(Deserialize)]
struct PyFile {
    summary: PySummary,
}

#[derive(Deserialize)]
struct PySummary {
    covered_lines: u64,
    num_statements: u64,
}

/// Parses coverage.py's `coverage json` report (only the per-file summaries are read).
pub fn parse_coverage_py_json(json: &str) -> Result<Coverage> {
    let report: PyReport =
        serde_json::from_str(json).map_err(|source| Error::MalformedCoverage {
            format: "coverage.py JSON",
            reason: source.to_string(),
        })?;
    Ok(Coverage {
        files: report
            .files
            .into_iter()
            .map(|(path, file)| {
                let coverage = FileCoverage {
                    covered: file.summary.covered_lines.min(file.summary.num_statements),
                    total: file.summary.num_statements,
                };
                (path, coverage)
            })
            .collect(),
    })
}

/// Parses a Go cover profile (`go test -coverprofile`): `mode: ...` then
/// `file:l.c,l.c statements count` per block. Blocks repeated across packages are merged.
pub fn parse_go_coverprofile(text: &str) -> Result<Coverage> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let malformed = |reason: String| Error::MalformedCoverage {
        format: "Go cover profile",
        reason,
    };
    match lines.next() {
        Some(first) if first.starts_with("mode: ") => {}
        other => {
            return Err(malformed(format!(
                "the first line is {:?}, not `mode: ...`",
                other.unwrap_or_default()
            )));
        }
    }
    // block -> (statements, covered)
    let mut blocks: HashMap<(String, String), (u64, bool)> = HashMap::new();
    for line in lines {
        let parsed = (|| {
            let (location, rest) = line.rsplit_once(' ')?;
            let count: u64 = rest.parse().ok()?;
            let (location, statements) = location.rsplit_once(' ')?;
            let statements: u64 = statements.parse().ok()?;
            let (file, range) = location.rsplit_once(':')?;
            Some((file.to_owned(), range.to_owned(), statements, count > 0))
        })();
        let Some((file, range, statements, hit)) = parsed else {
            return Err(malformed(format!("unreadable line {line:?}")));
        };
        let entry = blocks.entry((file, range)).or_insert((statements, false));
        entry.1 |= hit;
    }
    let mut files: BTreeMap<String, FileCoverage> = BTreeMap::new();
    for ((file, _), (statements, hit)) in blocks {
        let f = files.entry(file).or_default();
        f.total += statements;
        if hit {
            f.covered += statements;
        }
    }
    Ok(Coverage { files })
}

/// Parses an lcov tracefile (`SF:`, `LH:`, `LF:`, `end_of_record`), as istanbul and c8
/// write it. Paths under `/workspace/` or the base copy are made relative.
pub fn parse_lcov(text: &str) -> Result<Coverage> {
    let malformed = |reason: String| Error::MalformedCoverage {
        format: "lcov",
        reason,
    };
    let mut files = BTreeMap::new();
    let mut current: Option<(String, FileCoverage)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(path) = line.strip_prefix("SF:") {
            current = Some((relative(path), FileCoverage::default()));
        } else if let Some(value) = line.strip_prefix("LF:") {
            let (_, f) = current
                .as_mut()
                .ok_or_else(|| malformed("LF before SF".to_owned()))?;
            f.total = value
                .parse()
                .map_err(|_| malformed(format!("unreadable {line:?}")))?;
        } else if let Some(value) = line.strip_prefix("LH:") {
            let (_, f) = current
                .as_mut()
                .ok_or_else(|| malformed("LH before SF".to_owned()))?;
            f.covered = value
                .parse()
                .map_err(|_| malformed(format!("unreadable {line:?}")))?;
        } else if line == "end_of_record" {
            let (path, f) = current
                .take()
                .ok_or_else(|| malformed("end_of_record before SF".to_owned()))?;
            files.insert(
                path,
                FileCoverage {
                    covered: f.covered.min(f.total),
                    total: f.total,
                },
            );
        }
    }
    if current.is_some() {
        return Err(malformed("the last record has no end_of_record".to_owned()));
    }
    if files.is_empty() && !text.trim().is_empty() {
        return Err(malformed("no SF records".to_owned()));
    }
    Ok(Coverage { files })
}

/// Where Maven keeps a module's main sources, relative to the module.
const MAVEN_SOURCES: &str = "src/main/java";

/// Parses JaCoCo's XML report: the `LINE` counter of each `<sourcefile>`. A file's path is
/// `<module>/src/main/java/<package>/<file>`, the module being the name of the `<group>` it
/// is in (this crate's report names groups by module directory; `.` and no group mean the
/// repository's root).
pub fn parse_jacoco_xml(xml: &str) -> Result<Coverage> {
    let malformed = |reason: String| Error::MalformedCoverage {
        format: "JaCoCo XML",
        reason,
    };
    // JaCoCo always writes a DOCTYPE naming its DTD; roxmltree never loads external DTDs
    // and bounds entity expansion.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|source| malformed(source.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name("report") {
        return Err(malformed(format!(
            "the root element is <{}>, not <report>",
            root.tag_name().name()
        )));
    }
    let mut files = BTreeMap::new();
    for source in root.descendants().filter(|n| n.has_tag_name("sourcefile")) {
        let name = source
            .attribute("name")
            .ok_or_else(|| malformed("a <sourcefile> without a name".to_owned()))?;
        let package = source
            .parent_element()
            .filter(|p| p.has_tag_name("package"))
            .and_then(|p| p.attribute("name"))
            .ok_or_else(|| malformed(format!("<sourcefile name={name:?}> outside a <package>")))?;
        let module = source
            .ancestors()
            .find(|n| n.has_tag_name("group"))
            .and_then(|g| g.attribute("name"))
            .map(|m| m.trim_start_matches("./").trim_end_matches('/'))
            .filter(|m| !m.is_empty() && *m != ".");
        let Some(lines) = source
            .children()
            .find(|c| c.has_tag_name("counter") && c.attribute("type") == Some("LINE"))
        else {
            // A source file without executable lines (an interface of constants).
            continue;
        };
        let count = |attribute: &str| -> Result<u64> {
            lines
                .attribute(attribute)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| malformed(format!("{name}: unreadable LINE {attribute}")))
        };
        let (missed, covered) = (count("missed")?, count("covered")?);
        let mut path = module.map_or_else(String::new, |m| format!("{m}/"));
        path.push_str(MAVEN_SOURCES);
        path.push('/');
        if !package.is_empty() {
            path.push_str(package);
            path.push('/');
        }
        path.push_str(name);
        files.insert(
            path,
            FileCoverage {
                covered,
                total: covered.saturating_add(missed),
            },
        );
    }
    Ok(Coverage { files })
}

fn relative(path: &str) -> String {
    let path = path
        .strip_prefix("/workspace/")
        .or_else(|| path.strip_prefix(&format!("{BASE_COPY}/")))
        .unwrap_or(path);
    path.to_owned()
}

/// The repository's coverage threshold (overall percent) from its files: coverage.py's
/// `fail_under` (`pyproject.toml`, `.coveragerc`, `setup.cfg`, `tox.ini`), Jest's
/// `coverageThreshold.global.lines` in `package.json`, `lines` of c8's or nyc's
/// configuration (`.c8rc.json`, `.nycrc.json`, `.nycrc`), the `LINE` `COVEREDRATIO` minimum
/// of the jacoco-maven-plugin in `pom.xml`, or `threshold: total:` of `.testcoverage.yml`
/// (Go). `contents` maps root file names to their text.
pub fn threshold_from_files(contents: &HashMap<String, String>) -> Option<f64> {
    for name in ["pyproject.toml", ".coveragerc", "setup.cfg", "tox.ini"] {
        let Some(text) = contents.get(name) else {
            continue;
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.trim() == "fail_under"
                && let Some(value) = parse_percent(value)
            {
                return Some(value);
            }
        }
    }
    if let Some(text) = contents.get("package.json")
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(lines) = value
            .pointer("/jest/coverageThreshold/global/lines")
            .and_then(serde_json::Value::as_f64)
        && (0.0..=100.0).contains(&lines)
    {
        return Some(lines);
    }
    for name in [".c8rc.json", ".nycrc.json", ".nycrc"] {
        if let Some(text) = contents.get(name)
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(lines) = value.get("lines").and_then(serde_json::Value::as_f64)
            && (0.0..=100.0).contains(&lines)
        {
            return Some(lines);
        }
    }
    if let Some(value) = contents.get("pom.xml").and_then(|pom| jacoco_minimum(pom)) {
        return Some(value);
    }
    if let Some(text) = contents.get(".testcoverage.yml") {
        let mut in_threshold = false;
        for line in text.lines() {
            if !line.starts_with(' ') && !line.trim().is_empty() {
                in_threshold = line.trim() == "threshold:";
                continue;
            }
            if in_threshold
                && let Some(value) = line.trim().strip_prefix("total:")
                && let Some(value) = parse_percent(value)
            {
                return Some(value);
            }
        }
    }
    None
}

/// The `LINE` `COVEREDRATIO` minimum of the jacoco-maven-plugin's rules in a `pom.xml`,
/// in percent (`0.80` and `80%` are both 80).
fn jacoco_minimum(pom: &str) -> Option<f64> {
    let doc = roxmltree::Document::parse(pom).ok()?;
    let text = |node: roxmltree::Node<'_, '_>, tag: &str| {
        node.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(str::trim)
            .map(str::to_owned)
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("plugin"))
        .filter(|plugin| text(*plugin, "artifactId").as_deref() == Some("jacoco-maven-plugin"))
        .flat_map(|plugin| plugin.descendants().filter(|n| n.has_tag_name("limit")))
        .find_map(|limit| {
            if text(limit, "counter").as_deref() != Some("LINE")
                || text(limit, "value").as_deref() != Some("COVEREDRATIO")
            {
                return None;
            }
            let minimum = text(limit, "minimum")?;
            if let Some(percent) = minimum.strip_suffix('%') {
                return parse_percent(percent);
            }
            let percent = round2(minimum.parse::<f64>().ok()? * 100.0);
            (0.0..=100.0).contains(&percent).then_some(percent)
        })
}

fn parse_percent(text: &str) -> Option<f64> {
    let value: f64 = text
        .split('#')
        .next()?
        .trim()
        .trim_matches('"')
        .parse()
        .ok()?;
    (0.0..=100.0).contains(&value).then_some(value)
}

/// The root files [`threshold_from_files`] reads.
pub const THRESHOLD_FILES: [&str; 10] = [
    "pyproject.toml",
    ".coveragerc",
    "setup.cfg",
    "tox.ini",
    "package.json",
    ".c8rc.json",
    ".nycrc.json",
    ".nycrc",
    "pom.xml",
    ".testcoverage.yml",
];

/// The repository's coverage threshold, from the workspace's root files (see
/// [`threshold_from_files`]); files that are not there are skipped.
pub async fn threshold(sandbox: &dyn SandboxApi, session_id: &str) -> Result<Option<f64>> {
    if session_id.is_empty() {
        return Err(Error::EmptySessionId);
    }
    let mut contents = HashMap::new();
    for name in THRESHOLD_FILES {
        let request = ReadFileRequest {
            session_id: session_id.to_owned(),
            path: name.to_owned(),
        };
        match sandbox.read_file(request).await {
            Ok(response) => {
                let text = String::from_utf8_lossy(&response.content).into_owned();
                contents.insert(name.to_owned(), text);
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) => {}
            Err(source) => {
                return Err(Error::Sandbox {
                    operation: "ReadFile",
                    source,
                });
            }
        }
    }
    Ok(threshold_from_files(&contents))
}

/// Which tree coverage is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// The session's base checkout (`/repo`), copied to a scratch directory first: before.
    Base,
    /// The workspace with the change: after.
    Workspace,
}

/// Where the base checkout is copied to be measured.
const BASE_COPY: &str = "/tmp/cap-coverage-base";

/// The coverage command of `framework` writing its report to `report`, or `None` when the
/// crate cannot measure that runner's coverage.
fn coverage_command(framework: Framework, report: &str) -> Option<String> {
    let report = shell_quote(report);
    Some(match framework {
        Framework::Pytest => format!(
            "python3 -m coverage run --data-file=/tmp/cap-coverage.data -m pytest -q \
             -p no:cacheprovider >/dev/null 2>&1; python3 -m coverage json \
             --data-file=/tmp/cap-coverage.data -o {report} >/dev/null 2>&1"
        ),
        Framework::GoTest => format!("go test -coverprofile={report} ./... >/dev/null 2>&1"),
        Framework::Vitest => format!(
            "rm -rf /tmp/cap-coverage-lcov; ./node_modules/.bin/vitest run \
             --coverage.enabled=true --coverage.provider=v8 --coverage.reporter=lcov \
             --coverage.reportOnFailure=true --coverage.reportsDirectory=/tmp/cap-coverage-lcov \
             >/dev/null 2>&1; cp /tmp/cap-coverage-lcov/lcov.info {report} 2>/dev/null"
        ),
        Framework::Jest => format!(
            "rm -rf /tmp/cap-coverage-lcov; ./node_modules/.bin/jest --coverage \
             --coverageReporters=lcov --coverageDirectory=/tmp/cap-coverage-lcov \
             >/dev/null 2>&1; cp /tmp/cap-coverage-lcov/lcov.info {report} 2>/dev/null"
        ),
        // The agent comes in through surefire's `argLine`, which replaces a pom's own for the
        // measurement.
        Framework::Maven => format!(
            "rm -rf {JACOCO_DIR} && mkdir -p {JACOCO_DIR} && \
             (cd {JACOCO_DIR} && jar xf /usr/share/java/org.jacoco.agent.jar jacocoagent.jar) \
             && cat > {JACOCO_DIR}/CapJacocoReport.java <<'CAP_JACOCO_EOF'\n\
             {JACOCO_REPORT_JAVA}CAP_JACOCO_EOF\n\
             mvn -q -o test -Dmaven.test.failure.ignore=true \
             -DargLine=-javaagent:{JACOCO_DIR}/jacocoagent.jar=destfile={JACOCO_DIR}/jacoco.exec \
             >/dev/null 2>&1; java -cp {JACOCO_CLASSPATH} {JACOCO_DIR}/CapJacocoReport.java \
             {JACOCO_DIR}/jacoco.exec {report} $(find . -path '*/target/classes' -type d \
             -prune | sed 's#/target/classes$##') >/dev/null 2>&1"
        ),
        _ => return None,
    })
}

/// Scratch directory of a JaCoCo measurement.
const JACOCO_DIR: &str = "/tmp/cap-jacoco";

/// The system's JaCoCo (Debian's `libjacoco-java`) and the ASM it is built on.
const JACOCO_CLASSPATH: &str = "/usr/share/java/org.jacoco.core.jar:\
    /usr/share/java/org.jacoco.report.jar:/usr/share/java/asm.jar:\
    /usr/share/java/asm-commons.jar:/usr/share/java/asm-tree.jar";

/// Writes the XML report of JaCoCo's execution data, run by `java` as a single source file.
const JACOCO_REPORT_JAVA: &str = include_str!("CapJacocoReport.java");

/// Measures the coverage of `plan`'s tests on `tree`. `Ok(None)` when the crate has no way
/// to measure coverage for that runner; an error when the measurement left no readable
/// report (the tool is not installed, the tests could not run).
pub async fn measure(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    plan: &TestPlan,
    tree: Tree,
    timeout: Duration,
) -> Result<Option<Coverage>> {
    if session_id.is_empty() {
        return Err(Error::EmptySessionId);
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let report = format!("/tmp/cap-coverage-{nonce}.out");
    let Some(command) = coverage_command(plan.framework, &report) else {
        return Ok(None);
    };
    let marker = format!("=====cap-coverage-{nonce}=====");
    let enter = match tree {
        Tree::Workspace => "cd /workspace".to_owned(),
        // `cp -a` keeps the checkout's modes; the copy is writable for caches and reports.
        // Installed dependencies live in the workspace only (`node_modules` is not checked
        // in): the base copy borrows them.
        Tree::Base => format!(
            "rm -rf {BASE_COPY} && cp -a /repo {BASE_COPY} && chmod -R u+w {BASE_COPY} && \
             cd {BASE_COPY} && {{ [ -e node_modules ] || [ ! -d /workspace/node_modules ] || \
             ln -s /workspace/node_modules node_modules; }}"
        ),
    };
    // Only the summaries: the full reports list every line and can outgrow the output cap.
    let reduce = match plan.framework {
        Framework::Pytest => {
            " | python3 -c 'import json,sys; d=json.load(sys.stdin); \
             print(json.dumps({\"files\": {p: {\"summary\": f[\"summary\"]} \
             for p, f in d[\"files\"].items()}}))'"
        }
        Framework::Maven => {
            " | sed -e 's#<line [^>]*/>##g' \
             -e 's#<method [^>]*>\\(<counter [^>]*/>\\)*</method>##g' \
             -e 's#<class [^>]*>\\(<counter [^>]*/>\\)*</class>##g'"
        }
        _ => "",
    };
    let script = format!(
        "{enter} || exit 3\n{command}\nprintf '\\n%s\\n' {marker}\n\
         [ -f {report} ] || exit 4\ncat {report}{reduce}\n"
    );
    let timeout_seconds = u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX);
    let env = runner_env(plan.framework);
    let request = ExecRequest {
        session_id: session_id.to_owned(),
        command: script,
        cwd: String::new(),
        timeout_seconds,
        env,
    };
    let (exit, stdout) = exec_collect(sandbox, request).await?;
    let stdout = String::from_utf8_lossy(&stdout);
    let unmeasured = |reason: String| Error::CoverageUnavailable {
        framework: plan.framework,
        reason,
    };
    if exit.timed_out {
        return Err(unmeasured(
            "the measurement was killed at its timeout".to_owned(),
        ));
    }
    match exit.exit_code {
        3 => {
            return Err(unmeasured(
                "the base checkout could not be copied".to_owned(),
            ));
        }
        4 => {
            return Err(unmeasured(
                "the coverage tool left no report (is it installed? do the tests run?)".to_owned(),
            ));
        }
        _ => {}
    }
    let Some((_, text)) = stdout.split_once(&format!("\n{marker}\n")) else {
        return Err(unmeasured("the measurement printed no report".to_owned()));
    };
    let mut coverage = match plan.framework {
        Framework::Pytest => parse_coverage_py_json(text)?,
        Framework::GoTest => parse_go_coverprofile(text)?,
        Framework::Maven => parse_jacoco_xml(text)?,
        _ => parse_lcov(text)?,
    };
    // Files outside the tree (the runner's own code, when the repository does not limit
    // coverage.py's `source`) are not the repository's coverage.
    coverage.files.retain(|path, _| !path.starts_with('/'));
    Ok(Some(coverage))
}

/// Runs one `Exec` to its end; stdout and how it exited.
async fn exec_collect(
    sandbox: &dyn SandboxApi,
    request: ExecRequest,
) -> Result<(ExitStatus, Vec<u8>)> {
    let sandbox_error = |source| Error::Sandbox {
        operation: "Exec",
        source,
    };
    let mut stream = sandbox.exec(request).await.map_err(sandbox_error)?;
    let mut stdout = Vec::new();
    while let Some(message) = stream.next().await.transpose().map_err(sandbox_error)? {
        match message.output {
            Some(Output::Stdout(bytes)) => stdout.extend_from_slice(&bytes),
            Some(Output::Stderr(_)) | None => {}
            Some(Output::Exit(exit)) => return Ok((exit, stdout)),
        }
    }
    Err(Error::MissingExitStatus)
}

#[cfg(test)]
#[path = "coverage_tests.rs"]
mod tests;
