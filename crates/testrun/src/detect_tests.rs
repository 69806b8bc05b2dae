use std::collections::HashMap;

use pretty_assertions::assert_eq;

use super::*;

/// A repository given as `(path, content)`; detection reads only what `files_to_read` names.
fn detect_in(files: &[(&str, &str)]) -> Option<TestPlan> {
    let paths: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
    let wanted = files_to_read(&paths);
    let contents: HashMap<String, String> = files
        .iter()
        .filter(|(p, _)| wanted.iter().any(|w| w == p))
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    detect_from_files(&paths, &contents)
}

fn framework_of(files: &[(&str, &str)]) -> Option<Framework> {
    detect_in(files).map(|plan| plan.framework)
}

#[test]
fn pytest_from_its_configuration() {
    assert_eq!(
        framework_of(&[("pytest.ini", "[pytest]\n")]),
        Some(Framework::Pytest)
    );
    assert_eq!(
        framework_of(&[(
            "pyproject.toml",
            "[project]\nname='x'\n\n[tool.pytest.ini_options]\n"
        )]),
        Some(Framework::Pytest)
    );
    assert_eq!(
        framework_of(&[("setup.cfg", "[metadata]\n[tool:pytest]\naddopts = -q\n")]),
        Some(Framework::Pytest)
    );
    assert_eq!(
        framework_of(&[("tox.ini", "[tox]\n[pytest]\n")]),
        Some(Framework::Pytest)
    );
    assert_eq!(
        framework_of(&[("tests/conftest.py", "")]),
        Some(Framework::Pytest)
    );
    let plan = detect_in(&[("pytest.ini", "")]).unwrap();
    assert_eq!(plan.command, "python3 -m pytest");
}

#[test]
fn python_config_without_pytest_sections_is_not_enough() {
    assert_eq!(
        framework_of(&[("pyproject.toml", "[project]\nname = 'x'\n")]),
        None
    );
    assert_eq!(
        framework_of(&[("setup.cfg", "[metadata]\nname = x\n")]),
        None
    );
}

#[test]
fn pytest_or_unittest_from_python_test_files() {
    assert_eq!(
        framework_of(&[(
            "tests/test_calc.py",
            "import pytest\n\ndef test_add(): pass\n"
        )]),
        Some(Framework::Pytest)
    );
    // Plain test functions need pytest.
    assert_eq!(
        framework_of(&[("test_calc.py", "def test_add():\n    assert 1 + 1 == 2\n")]),
        Some(Framework::Pytest)
    );
    assert_eq!(
        framework_of(&[("pkg/calc_test.py", "def test_x(): pass\n")]),
        Some(Framework::Pytest)
    );
    let unittest = detect_in(&[
        ("calc.py", ""),
        (
            "tests/test_calc.py",
            "import unittest\nclass T(unittest.TestCase): pass\n",
        ),
    ])
    .unwrap();
    assert_eq!(unittest.framework, Framework::Unittest);
    // `tests/` is not a package: discovery must start inside it.
    assert_eq!(unittest.command, "python3 -m unittest discover -s tests");
}

#[test]
fn unittest_starts_at_the_root_when_tests_are_a_package_or_spread_out() {
    let package = detect_in(&[
        ("tests/__init__.py", ""),
        ("tests/test_calc.py", "import unittest\n"),
    ])
    .unwrap();
    assert_eq!(package.command, "python3 -m unittest discover");
    let root = detect_in(&[("test_calc.py", "import unittest\n")]).unwrap();
    assert_eq!(root.command, "python3 -m unittest discover");
    let suffix = detect_in(&[("calc_test.py", "import unittest\n")]).unwrap();
    assert_eq!(
        suffix.command,
        "python3 -m unittest discover -p '*_test.py'"
    );
}

#[test]
fn a_single_pytest_mention_makes_it_pytest() {
    assert_eq!(
        framework_of(&[
            ("tests/test_a.py", "import unittest\n"),
            ("tests/test_b.py", "import unittest\nimport pytest\n"),
        ]),
        Some(Framework::Pytest)
    );
}

#[test]
fn npm_needs_a_real_test_script() {
    assert_eq!(
        framework_of(&[(
            "package.json",
            r#"{"name":"x","scripts":{"test":"node --test"}}"#
        )]),
        Some(Framework::NodeRunner)
    );
    assert_eq!(
        framework_of(&[(
            "package.json",
            r#"{"scripts":{"test":"echo \"Error: no test specified\" && exit 1"}}"#
        )]),
        None
    );
    assert_eq!(
        framework_of(&[("package.json", r#"{"scripts":{"build":"tsc"}}"#)]),
        None
    );
    assert_eq!(
        framework_of(&[("package.json", r#"{"scripts":{"test":""}}"#)]),
        None
    );
    // Malformed JSON is not a crash, just not npm.
    assert_eq!(framework_of(&[("package.json", "{not json")]), None);
    assert_eq!(
        framework_of(&[("package.json", r#"{"scripts":{"test":42}}"#)]),
        None
    );
    // A nested package.json is some other project's.
    assert_eq!(
        framework_of(&[("web/package.json", r#"{"scripts":{"test":"jest"}}"#)]),
        None
    );
}

#[test]
fn go_maven_gradle_from_their_build_files() {
    assert_eq!(
        framework_of(&[("go.mod", "module x\n")]),
        Some(Framework::GoTest)
    );
    assert_eq!(
        framework_of(&[("pom.xml", "<project/>")]),
        Some(Framework::Maven)
    );
    assert_eq!(
        framework_of(&[("build.gradle", "")]),
        Some(Framework::Gradle)
    );
    assert_eq!(
        framework_of(&[("build.gradle.kts", "")]),
        Some(Framework::Gradle)
    );
    assert_eq!(
        framework_of(&[("settings.gradle", "")]),
        Some(Framework::Gradle)
    );
    assert_eq!(
        detect_in(&[("go.mod", "")]).unwrap().command,
        "go test ./..."
    );
    assert_eq!(
        detect_in(&[("pom.xml", "")]).unwrap().command,
        "mvn -q -o test"
    );
    assert_eq!(
        detect_in(&[("build.gradle", "")]).unwrap().command,
        "gradle test --offline"
    );
}

#[test]
fn precedence_is_pytest_config_then_npm_go_maven_gradle_then_python_files() {
    let npm = r#"{"scripts":{"test":"jest"}}"#;
    assert_eq!(
        framework_of(&[("pytest.ini", ""), ("package.json", npm), ("go.mod", "")]),
        Some(Framework::Pytest)
    );
    assert_eq!(
        framework_of(&[("package.json", npm), ("go.mod", "")]),
        Some(Framework::Jest)
    );
    assert_eq!(
        framework_of(&[
            ("go.mod", ""),
            ("scripts/test_release.py", "def test(): pass")
        ]),
        Some(Framework::GoTest)
    );
    assert_eq!(
        framework_of(&[("pom.xml", ""), ("build.gradle", "")]),
        Some(Framework::Maven)
    );
}

#[test]
fn vendored_and_generated_directories_do_not_count() {
    assert_eq!(framework_of(&[("node_modules/x/conftest.py", "")]), None);
    assert_eq!(
        framework_of(&[(".venv/lib/site-packages/y/test_y.py", "import pytest")]),
        None
    );
    assert_eq!(framework_of(&[("build/lib/test_z.py", "")]), None);
    // ...but a file merely named like one is fine.
    assert_eq!(
        framework_of(&[("vendor_tools/test_v.py", "")]),
        Some(Framework::Pytest)
    );
}

#[test]
fn nothing_to_detect() {
    assert_eq!(framework_of(&[]), None);
    assert_eq!(
        framework_of(&[("README.md", "# x"), ("src/main.rs", "fn main() {}")]),
        None
    );
}

#[test]
fn only_the_deciding_files_are_read() {
    let paths: Vec<String> = [
        "README.md",
        "package.json",
        "pyproject.toml",
        "a/b/test_x.py",
        "src/x.py",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    assert_eq!(
        files_to_read(&paths),
        vec!["pyproject.toml", "package.json", "a/b/test_x.py"]
    );
    let mut many: Vec<String> = (0..30).map(|i| format!("tests/test_{i:02}.py")).collect();
    assert_eq!(files_to_read(&many).len(), PYTHON_TESTS_READ);
    // A build file decides before Python test files: they are not read.
    many.push("go.mod".to_owned());
    assert_eq!(files_to_read(&many), Vec::<String>::new());
    many.pop();
    many.push("tests/conftest.py".to_owned());
    assert_eq!(files_to_read(&many), Vec::<String>::new());
}

#[test]
fn listing_paths_are_normalized() {
    assert_eq!(normalize("./a/b.py"), "a/b.py");
    assert_eq!(normalize("/a"), "a");
    assert_eq!(normalize("a"), "a");
}

#[test]
fn node_runners_come_from_the_script_or_the_dependencies() {
    let cases = [
        (
            r#"{"scripts":{"test":"vitest run"}}"#,
            Some(Framework::Vitest),
        ),
        (
            r#"{"scripts":{"test":"tsc && vitest --run"},"devDependencies":{"jest":"1"}}"#,
            Some(Framework::Vitest),
        ),
        (r#"{"scripts":{"test":"jest --ci"}}"#, Some(Framework::Jest)),
        (
            r#"{"devDependencies":{"vitest":"1.6.0"}}"#,
            Some(Framework::Vitest),
        ),
        (r#"{"dependencies":{"jest":"29"}}"#, Some(Framework::Jest)),
        (
            r#"{"scripts":{"test":"node --test test/"}}"#,
            Some(Framework::NodeRunner),
        ),
        (r#"{"scripts":{"test":"mocha"}}"#, Some(Framework::Mocha)),
        (
            r#"{"scripts":{"test":"nyc mocha --recursive"}}"#,
            Some(Framework::Mocha),
        ),
        (
            r#"{"devDependencies":{"mocha":"10"}}"#,
            Some(Framework::Mocha),
        ),
        (
            r#"{"scripts":{"test":"make check"},"devDependencies":{"mocha":"10"}}"#,
            Some(Framework::NodeTest),
        ),
        (
            r#"{"scripts":{"test":"echo \"Error: no test specified\" && exit 1"}}"#,
            None,
        ),
        (
            r#"{"scripts":{"test":"jestify"}}"#,
            Some(Framework::NodeTest),
        ),
        ("not json", None),
    ];
    for (package, expected) in cases {
        assert_eq!(
            framework_of(&[("package.json", package)]),
            expected,
            "{package}"
        );
    }
    assert_eq!(
        detect_in(&[("package.json", r#"{"scripts":{"test":"vitest"}}"#)])
            .unwrap()
            .command,
        "./node_modules/.bin/vitest run"
    );
}
