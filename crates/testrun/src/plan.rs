//! Test plans: which runner, which command, and how a run is instrumented to leave a
//! machine-readable report behind.

use serde::{Deserialize, Serialize};

/// A test runner the crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// `python3 -m pytest`, results from JUnit XML.
    Pytest,
    /// `python3 -m unittest discover`, judged by exit code.
    Unittest,
    /// `npm test` (the `test` script of `package.json`), judged by exit code.
    NodeTest,
    /// Jest, results from its `--json` report.
    Jest,
    /// Vitest, results from its `json` reporter (Jest's format).
    Vitest,
    /// Mocha, results from its `json` reporter.
    Mocha,
    /// Node's own test runner (`node --test`), results from its `junit` reporter.
    NodeRunner,
    /// `go test ./...`, results from `go test -json`.
    GoTest,
    /// `mvn -q -o test`, results from the surefire JUnit reports.
    Maven,
    /// `gradle test --offline`, results from the Gradle JUnit reports.
    Gradle,
    /// A command configured for the repository, judged by exit code.
    Custom,
}

impl Framework {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pytest => "pytest",
            Self::Unittest => "unittest",
            Self::NodeTest => "node_test",
            Self::Jest => "jest",
            Self::Vitest => "vitest",
            Self::Mocha => "mocha",
            Self::NodeRunner => "node_runner",
            Self::GoTest => "go_test",
            Self::Maven => "maven",
            Self::Gradle => "gradle",
            Self::Custom => "custom",
        }
    }
}

impl std::fmt::Display for Framework {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a repository's tests are run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPlan {
    /// The runner.
    pub framework: Framework,
    /// The command that runs the whole suite in `/workspace`, as shown to the user.
    pub command: String,
}

/// The placeholder a custom command may contain to receive the (shell-quoted) test pattern.
pub(crate) const PATTERN_PLACEHOLDER: &str = "{pattern}";

impl TestPlan {
    /// The plan for a user-given command (per-repository override).
    ///
    /// A custom command receives a test pattern only where it contains `{pattern}`; elsewhere
    /// the pattern is ignored, because the crate cannot know the command's syntax.
    pub fn custom(command: impl Into<String>) -> Self {
        Self {
            framework: Framework::Custom,
            command: command.into(),
        }
    }

    /// The plan for `framework` with its standard command.
    pub fn standard(framework: Framework) -> Self {
        let command = match framework {
            Framework::Pytest => "python3 -m pytest",
            Framework::Unittest => "python3 -m unittest discover",
            Framework::NodeTest => "npm test",
            Framework::Jest => "./node_modules/.bin/jest",
            Framework::Vitest => "./node_modules/.bin/vitest run",
            Framework::Mocha => "./node_modules/.bin/mocha",
            Framework::NodeRunner => "node --test",
            Framework::GoTest => "go test ./...",
            Framework::Maven => "mvn -q -o test",
            Framework::Gradle => "gradle test --offline",
            Framework::Custom => "",
        };
        Self {
            framework,
            command: command.to_owned(),
        }
    }

    /// The shell command to run, limited to tests matching `pattern` when given
    /// (pytest -k / file path, go test -run, mvn -Dtest=, `npm test -- <pattern>`, jest and
    /// vitest -t / file path, mocha --grep / file path, node --test --test-name-pattern= /
    /// file path).
    ///
    /// The pattern is shell-quoted; an empty pattern means no pattern.
    pub fn command_for(&self, pattern: Option<&str>) -> String {
        let command = self.command.trim();
        let Some(pattern) = pattern.filter(|p| !p.trim().is_empty()) else {
            return match self.framework {
                Framework::Custom => command.replace(PATTERN_PLACEHOLDER, ""),
                _ => command.to_owned(),
            };
        };
        let quoted = shell_quote(pattern);
        match self.framework {
            Framework::Pytest if looks_like_pytest_path(pattern) => format!("{command} {quoted}"),
            // A leading `-` would make argparse take the expression for an option.
            Framework::Pytest if pattern.starts_with('-') => {
                format!("{command} {}", shell_quote(&format!("-k{pattern}")))
            }
            Framework::Pytest | Framework::Unittest => format!("{command} -k {quoted}"),
            Framework::NodeTest if command.split_whitespace().any(|w| w == "--") => {
                format!("{command} {quoted}")
            }
            Framework::NodeTest => format!("{command} -- {quoted}"),
            Framework::Jest | Framework::Vitest if looks_like_js_path(pattern) => {
                format!("{command} {quoted}")
            }
            Framework::Jest | Framework::Vitest => {
                format!("{command} -t {}", shell_quote(pattern))
            }
            Framework::Mocha if looks_like_js_path(pattern) => format!("{command} {quoted}"),
            // `--grep=` keeps a pattern starting with `-` a value.
            Framework::Mocha => format!("{command} {}", shell_quote(&format!("--grep={pattern}"))),
            Framework::NodeRunner if looks_like_js_path(pattern) => format!("{command} {quoted}"),
            Framework::NodeRunner => format!(
                "{command} {}",
                shell_quote(&format!("--test-name-pattern={pattern}"))
            ),
            // `-run=` keeps a pattern starting with `-` a value.
            Framework::GoTest => insert_after_go_test(command, &format!("-run={quoted}")),
            Framework::Maven => {
                format!("{command} -Dtest={quoted} -Dsurefire.failIfNoSpecifiedTests=false")
            }
            Framework::Gradle => format!("{command} --tests {quoted}"),
            Framework::Custom => command.replace(PATTERN_PLACEHOLDER, &quoted),
        }
    }

    /// The script actually run: the command plus what makes the runner leave a report, and
    /// where the report is read from.
    pub(crate) fn invocation(&self, pattern: Option<&str>, nonce: &str) -> Invocation {
        let command = self.command_for(pattern);
        let marker = format!("=====cap-testrun-{nonce}=====");
        match self.framework {
            Framework::Pytest => {
                let xml = format!("/tmp/cap-testrun-{nonce}.xml");
                let run = format!(
                    "{command} -p no:cacheprovider -o junit_family=xunit1 --junitxml={xml}"
                );
                let script =
                    junit_script(&run, nonce, &marker, &format!("printf '%s\\n' {xml}"), "");
                Invocation {
                    script,
                    report: Report::Junit { marker },
                }
            }
            Framework::Maven | Framework::Gradle => {
                let find = if self.framework == Framework::Maven {
                    "find . -path '*/target/surefire-reports/*' -name 'TEST-*.xml' -type f"
                } else {
                    "find . -path '*/build/test-results/*' -name 'TEST-*.xml' -type f"
                };
                // A report left by an earlier run must not pass for this one's. (Comparing
                // modification times is not enough: they are only as fine as the kernel's
                // clock tick.)
                let clean = format!("{find} -delete 2>/dev/null\n");
                let list = format!("{find} 2>/dev/null");
                let script = junit_script(&command, nonce, &marker, &list, &clean);
                Invocation {
                    script,
                    report: Report::Junit { marker },
                }
            }
            Framework::Jest | Framework::Vitest => {
                let json = format!("/tmp/cap-testrun-{nonce}.json");
                let run = if self.framework == Framework::Jest {
                    format!("{command} --json --outputFile={json}")
                } else {
                    format!("{command} --reporter=default --reporter=json --outputFile.json={json}")
                };
                let script =
                    junit_script(&run, nonce, &marker, &format!("printf '%s\\n' {json}"), "");
                Invocation {
                    script,
                    report: Report::JestJson { marker },
                }
            }
            Framework::Mocha => {
                // Mocha takes one reporter: the JSON report replaces the console's.
                let json = format!("/tmp/cap-testrun-{nonce}.json");
                let run = format!("{command} --reporter=json --reporter-option=output={json}");
                let script =
                    junit_script(&run, nonce, &marker, &format!("printf '%s\\n' {json}"), "");
                Invocation {
                    script,
                    report: Report::MochaJson { marker },
                }
            }
            Framework::NodeRunner => {
                let xml = format!("/tmp/cap-testrun-{nonce}.xml");
                let options = format!(
                    "--test-reporter=spec --test-reporter-destination=stdout \
                     --test-reporter=junit --test-reporter-destination={xml}"
                );
                let run = insert_after_node_test(&command, &options);
                let script =
                    junit_script(&run, nonce, &marker, &format!("printf '%s\\n' {xml}"), "");
                Invocation {
                    script,
                    report: Report::Junit { marker },
                }
            }
            Framework::GoTest if is_go_test(&command) => Invocation {
                script: insert_after_go_test(&command, "-json"),
                report: Report::GoJson,
            },
            Framework::GoTest | Framework::Unittest | Framework::NodeTest | Framework::Custom => {
                Invocation {
                    script: command,
                    report: Report::ExitCode,
                }
            }
        }
    }
}

/// A command ready for `Exec` and where its results come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// The `/bin/sh -c` script.
    pub script: String,
    /// Where the results are.
    pub report: Report,
}

/// Where a run's results come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// After a line holding `marker`, each report file follows a `marker:file <path>` line.
    Junit {
        /// The per-run random marker.
        marker: String,
    },
    /// Like `Junit`, but the files are Jest-format JSON reports.
    JestJson {
        /// The per-run random marker.
        marker: String,
    },
    /// Like `Junit`, but the files are Mocha `json` reporter reports.
    MochaJson {
        /// The per-run random marker.
        marker: String,
    },
    /// `go test -json` events on stdout.
    GoJson,
    /// Nothing but the exit code.
    ExitCode,
}

/// The most console output (stdout and stderr together) a run with a report streams; the
/// rest is counted and dropped, so the report printed after it stays within the sandbox's
/// output cap (1 MiB by default) however chatty the tests are.
pub(crate) const CONSOLE_CAP: usize = 512 * 1024;

/// Runs `prelude`, then `command` (its console capped at [`CONSOLE_CAP`]), keeps its exit
/// code, then prints the marker and every report file listed by `list`, each after a
/// `marker:file <path>` line.
fn junit_script(command: &str, nonce: &str, marker: &str, list: &str, prelude: &str) -> String {
    let quoted_marker = shell_quote(marker);
    let file_marker = shell_quote(&format!("{marker}:file"));
    let rc = format!("/tmp/cap-testrun-{nonce}.rc");
    format!(
        "{prelude}{{ {{ {command}\n}} 2>&1; echo $? > {rc}; }} | \
         {{ head -c {CONSOLE_CAP}; cap_dropped=$(wc -c); [ \"$cap_dropped\" -gt 0 ] && \
         printf '\\n[%s more bytes of output dropped]\\n' $cap_dropped; }}\n\
         cap_rc=$(cat {rc} 2>/dev/null || echo 1)\n\
         printf '\\n%s\\n' {quoted_marker}\n\
         {list} | while IFS= read -r f; do [ -f \"$f\" ] || continue; \
         printf '%s %s\\n' {file_marker} \"$f\"; cat \"$f\"; printf '\\n'; done\n\
         exit $cap_rc"
    )
}

fn is_go_test(command: &str) -> bool {
    let mut words = command.split_whitespace();
    words.next() == Some("go") && words.next() == Some("test")
}

/// `go test ARGS` -> `go test EXTRA ARGS`; other commands get `EXTRA` appended.
fn insert_after_go_test(command: &str, extra: &str) -> String {
    if !is_go_test(command) {
        return format!("{command} {extra}");
    }
    // `is_go_test` saw the words `go` and `test` first.
    let rest = command
        .trim_start()
        .strip_prefix("go")
        .unwrap_or_default()
        .trim_start();
    let rest = rest.strip_prefix("test").unwrap_or_default().trim();
    if rest.is_empty() {
        format!("go test {extra}")
    } else {
        format!("go test {extra} {rest}")
    }
}

/// `node --test ARGS` -> `node --test EXTRA ARGS` (node reads options only before the
/// files); other commands get `EXTRA` appended.
fn insert_after_node_test(command: &str, extra: &str) -> String {
    let trimmed = command.trim_start();
    match trimmed.strip_prefix("node --test") {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
            format!("node --test {extra}{rest}")
        }
        _ => format!("{command} {extra}"),
    }
}

/// A Jest/Vitest/node argument naming a test file or directory rather than a test name.
fn looks_like_js_path(pattern: &str) -> bool {
    pattern.contains('/')
        || [".js", ".ts", ".mjs", ".cjs", ".jsx", ".tsx", ".mts", ".cts"]
            .iter()
            .any(|ext| pattern.ends_with(ext))
}

/// A pytest argument naming a file, directory or node id rather than a `-k` expression.
fn looks_like_pytest_path(pattern: &str) -> bool {
    pattern.contains("::") || pattern.contains('/') || pattern.ends_with(".py")
}

/// Quotes `text` as one word for `/bin/sh`.
pub(crate) fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
