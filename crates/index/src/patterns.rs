//! `detect_patterns(directory)`: test frameworks, linters, formatters, build tools, package
//! managers, naming conventions and architectural style, each with the files it was read from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::index::Index;
use crate::parse::SymbolKind;

/// One convention found in the repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Pattern {
    /// `test_framework`, `linter`, `formatter`, `build_tool`, `package_manager`, `naming` or
    /// `architecture`.
    pub category: String,
    /// What was found: `pytest`, `eslint`, `maven`, `snake_case functions (python)`, `mvc`.
    pub name: String,
    /// The files it was read from (at most 5).
    pub evidence: Vec<String>,
}

/// A rule: the pattern holds when a file named `file` exists (and contains `needle`, if set).
struct Rule {
    category: &'static str,
    name: &'static str,
    file: &'static str,
    needle: Option<&'static str>,
}

const fn rule(
    category: &'static str,
    name: &'static str,
    file: &'static str,
    needle: Option<&'static str>,
) -> Rule {
    Rule {
        category,
        name,
        file,
        needle,
    }
}

const RULES: &[Rule] = &[
    rule("test_framework", "pytest", "pytest.ini", None),
    rule("test_framework", "pytest", "conftest.py", None),
    rule(
        "test_framework",
        "pytest",
        "pyproject.toml",
        Some("[tool.pytest"),
    ),
    rule(
        "test_framework",
        "pytest",
        "setup.cfg",
        Some("[tool:pytest]"),
    ),
    rule("test_framework", "pytest", "tox.ini", Some("[pytest]")),
    rule("test_framework", "jest", "jest.config.js", None),
    rule("test_framework", "jest", "jest.config.ts", None),
    rule("test_framework", "jest", "package.json", Some("\"jest\"")),
    rule("test_framework", "vitest", "vitest.config.ts", None),
    rule(
        "test_framework",
        "vitest",
        "package.json",
        Some("\"vitest\""),
    ),
    rule("test_framework", "mocha", "package.json", Some("\"mocha\"")),
    rule("test_framework", "mocha", ".mocharc.json", None),
    rule(
        "test_framework",
        "node:test",
        "package.json",
        Some("node --test"),
    ),
    rule("test_framework", "junit", "pom.xml", Some("junit")),
    rule("test_framework", "junit", "build.gradle", Some("junit")),
    rule("test_framework", "junit", "build.gradle.kts", Some("junit")),
    rule("linter", "ruff", "ruff.toml", None),
    rule("linter", "ruff", "pyproject.toml", Some("[tool.ruff")),
    rule("linter", "flake8", ".flake8", None),
    rule("linter", "flake8", "setup.cfg", Some("[flake8]")),
    rule("linter", "pylint", ".pylintrc", None),
    rule("linter", "mypy", "mypy.ini", None),
    rule("linter", "mypy", "pyproject.toml", Some("[tool.mypy")),
    rule("linter", "eslint", ".eslintrc.json", None),
    rule("linter", "eslint", ".eslintrc.js", None),
    rule("linter", "eslint", ".eslintrc.cjs", None),
    rule("linter", "eslint", "eslint.config.js", None),
    rule("linter", "eslint", "eslint.config.mjs", None),
    rule("linter", "eslint", "package.json", Some("\"eslint\"")),
    rule("linter", "golangci-lint", ".golangci.yml", None),
    rule("linter", "golangci-lint", ".golangci.yaml", None),
    rule("linter", "checkstyle", "checkstyle.xml", None),
    rule(
        "linter",
        "checkstyle",
        "pom.xml",
        Some("maven-checkstyle-plugin"),
    ),
    rule("formatter", "black", "pyproject.toml", Some("[tool.black")),
    rule(
        "formatter",
        "ruff format",
        "pyproject.toml",
        Some("[tool.ruff.format"),
    ),
    rule("formatter", "isort", "pyproject.toml", Some("[tool.isort")),
    rule("formatter", "isort", ".isort.cfg", None),
    rule("formatter", "prettier", ".prettierrc", None),
    rule("formatter", "prettier", ".prettierrc.json", None),
    rule("formatter", "prettier", "prettier.config.js", None),
    rule(
        "formatter",
        "prettier",
        "package.json",
        Some("\"prettier\""),
    ),
    rule("formatter", "gofmt", "go.mod", None),
    rule("formatter", "spotless", "pom.xml", Some("spotless")),
    rule(
        "formatter",
        "google-java-format",
        "pom.xml",
        Some("google-java-format"),
    ),
    rule("build_tool", "maven", "pom.xml", None),
    rule("build_tool", "gradle", "build.gradle", None),
    rule("build_tool", "gradle", "build.gradle.kts", None),
    rule("build_tool", "go", "go.mod", None),
    rule("build_tool", "make", "Makefile", None),
    rule("build_tool", "tsc", "tsconfig.json", None),
    rule("build_tool", "webpack", "webpack.config.js", None),
    rule("build_tool", "vite", "vite.config.ts", None),
    rule("build_tool", "vite", "vite.config.js", None),
    rule("build_tool", "setuptools", "setup.py", None),
    rule(
        "build_tool",
        "setuptools",
        "pyproject.toml",
        Some("setuptools"),
    ),
    rule("build_tool", "hatch", "pyproject.toml", Some("hatchling")),
    rule(
        "build_tool",
        "poetry",
        "pyproject.toml",
        Some("[tool.poetry"),
    ),
    rule("package_manager", "pip", "requirements.txt", None),
    rule("package_manager", "pip", "requirements-dev.txt", None),
    rule("package_manager", "poetry", "poetry.lock", None),
    rule("package_manager", "uv", "uv.lock", None),
    rule("package_manager", "pipenv", "Pipfile", None),
    rule("package_manager", "npm", "package-lock.json", None),
    rule("package_manager", "npm", "package.json", None),
    rule("package_manager", "yarn", "yarn.lock", None),
    rule("package_manager", "pnpm", "pnpm-lock.yaml", None),
    rule("package_manager", "go modules", "go.mod", None),
    rule("package_manager", "maven", "pom.xml", None),
    rule("package_manager", "gradle", "build.gradle", None),
];

/// Directory names that show an architectural style when they appear together.
const STYLES: &[(&str, &[&[&str]])] = &[
    (
        "mvc",
        &[
            &["models", "model"],
            &["views", "view", "templates"],
            &["controllers", "controller"],
        ],
    ),
    (
        "repository/service layers",
        &[
            &["repositories", "repository", "repo", "dao"],
            &["services", "service"],
        ],
    ),
    (
        "handler/service layers",
        &[
            &["handlers", "handler", "api", "routes"],
            &["services", "service"],
        ],
    ),
    (
        "hexagonal (ports and adapters)",
        &[&["ports", "port"], &["adapters", "adapter"]],
    ),
    ("go standard layout", &[&["cmd"], &["internal", "pkg"]]),
];

const MAX_EVIDENCE: usize = 5;

/// Reads the conventions of the tree at `root` (configuration files up to four levels deep,
/// `.gitignore` honoured) and, when given, of its index (names and directories).
pub fn detect_patterns(root: &Path, index: Option<&Index>) -> Vec<Pattern> {
    let mut found: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut dirs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let walker = ignore::WalkBuilder::new(root)
        .follow_links(false)
        .require_git(false)
        .max_depth(Some(4))
        .build();
    for entry in walker.flatten() {
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if rel.is_empty() {
            continue;
        }
        let is_file = entry.file_type().is_some_and(|t| t.is_file());
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            dirs.entry(name.to_lowercase())
                .or_default()
                .insert(rel.clone());
            continue;
        }
        if !is_file {
            continue;
        }
        let mut content: Option<String> = None;
        for r in RULES.iter().filter(|r| r.file == name) {
            let holds = match r.needle {
                None => true,
                Some(needle) => {
                    let text = content.get_or_insert_with(|| {
                        // Configuration files are small; a huge one is read only in part.
                        std::fs::read(entry.path())
                            .map(|b| {
                                String::from_utf8_lossy(&b[..b.len().min(1 << 20)]).into_owned()
                            })
                            .unwrap_or_default()
                    });
                    text.contains(needle)
                }
            };
            if holds {
                found
                    .entry((r.category.to_owned(), r.name.to_owned()))
                    .or_default()
                    .insert(rel.clone());
            }
        }
        if name.ends_with("_test.go") {
            found
                .entry(("test_framework".to_owned(), "go test".to_owned()))
                .or_default()
                .insert(rel.clone());
        }
    }
    if let Some(index) = index {
        imports_to_frameworks(index, &mut found);
        naming(index, &mut found);
    }
    for (style, groups) in STYLES {
        let mut evidence = BTreeSet::new();
        let all = groups.iter().all(|names| {
            let hits: Vec<&String> = names
                .iter()
                .filter_map(|n| dirs.get(*n))
                .flatten()
                .collect();
            evidence.extend(hits.iter().map(|h| format!("{h}/")));
            !hits.is_empty()
        });
        if all {
            found.insert(("architecture".to_owned(), (*style).to_owned()), evidence);
        }
    }
    found
        .into_iter()
        .map(|((category, name), evidence)| Pattern {
            category,
            name,
            evidence: evidence.into_iter().take(MAX_EVIDENCE).collect(),
        })
        .collect()
}

/// Test frameworks shown by imports alone (`import unittest`, `org.junit`, `node:test`).
fn imports_to_frameworks(index: &Index, found: &mut BTreeMap<(String, String), BTreeSet<String>>) {
    for summary in index.summaries() {
        for import in &summary.imports {
            let m = import.module.as_str();
            let name = if m == "unittest" {
                "unittest"
            } else if m == "pytest" {
                "pytest"
            } else if m.starts_with("org.junit") {
                "junit"
            } else if m == "node:test" {
                "node:test"
            } else if m == "testing" && summary.path.ends_with("_test.go") {
                "go test"
            } else if m == "@jest/globals" {
                "jest"
            } else if m == "vitest" {
                "vitest"
            } else {
                continue;
            };
            found
                .entry(("test_framework".to_owned(), name.to_owned()))
                .or_default()
                .insert(summary.path.clone());
        }
    }
}

fn case_of(name: &str) -> Option<&'static str> {
    let body = name.trim_start_matches('_');
    if body.is_empty() || body.starts_with("__") {
        return None;
    }
    let has_upper = body.chars().any(char::is_uppercase);
    let has_lower = body.chars().any(char::is_lowercase);
    let first_upper = body.chars().next().is_some_and(char::is_uppercase);
    Some(if body.contains('_') && !has_upper {
        "snake_case"
    } else if body.contains('_') && !has_lower {
        "SCREAMING_SNAKE_CASE"
    } else if first_upper {
        "PascalCase"
    } else if has_upper {
        "camelCase"
    } else {
        // One lower-case word fits every style; it is no evidence.
        return None;
    })
}

/// Per naming case: how many names, in which files.
type Tally<'a> = BTreeMap<&'a str, (usize, BTreeSet<String>)>;

/// The dominant case of function and class names per language (at least 70% of the names
/// that show a case).
fn naming(index: &Index, found: &mut BTreeMap<(String, String), BTreeSet<String>>) {
    let mut tallies: BTreeMap<(&str, &str), Tally<'_>> = BTreeMap::new();
    for summary in index.summaries() {
        for symbol in &summary.symbols {
            let what = match symbol.kind {
                SymbolKind::Function | SymbolKind::Method => "functions",
                SymbolKind::Class | SymbolKind::Interface | SymbolKind::Enum | SymbolKind::Type => {
                    "types"
                }
            };
            // Constructors carry their class's name, not the file's style for functions.
            if symbol.parent.as_deref() == Some(symbol.name.as_str()) {
                continue;
            }
            let Some(case) = case_of(&symbol.name) else {
                continue;
            };
            let slot = tallies
                .entry((summary.language.name(), what))
                .or_default()
                .entry(case)
                .or_default();
            slot.0 += 1;
            slot.1.insert(summary.path.clone());
        }
    }
    for ((lang, what), cases) in tallies {
        let total: usize = cases.values().map(|c| c.0).sum();
        if let Some((case, (count, files))) = cases.into_iter().max_by_key(|(_, c)| c.0)
            && count * 10 >= total * 7
        {
            found.insert(
                ("naming".to_owned(), format!("{case} {what} ({lang})")),
                files,
            );
        }
    }
}
