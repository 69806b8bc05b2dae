use pretty_assertions::assert_eq;

use super::*;

fn v(file: &str, line: u32, column: u32, code: &str, message: &str) -> Violation {
    Violation {
        file: file.into(),
        line,
        column,
        code: code.into(),
        message: message.into(),
    }
}

fn paths(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn detection_from_the_repositorys_files() {
    let contents = HashMap::from([
        (
            "pyproject.toml".to_owned(),
            "[tool.ruff.lint]\nselect = [\"F\"]\n[tool.black]\n[tool.pylint.main]\n".to_owned(),
        ),
        (
            "setup.cfg".to_owned(),
            "[flake8]\nmax-line-length = 99\n[mypy]\n".to_owned(),
        ),
    ]);
    assert_eq!(
        detect_linters(&paths(&["pyproject.toml", "setup.cfg"]), &contents),
        [
            LintTool::Ruff,
            LintTool::Black,
            LintTool::Pylint,
            LintTool::Mypy,
            LintTool::Flake8
        ]
    );
    let package = r#"{"devDependencies": {"eslint": "9", "prettier": "3", "typescript": "5"}}"#;
    let contents = HashMap::from([("package.json".to_owned(), package.to_owned())]);
    assert_eq!(
        detect_linters(
            &paths(&[
                "package.json",
                "eslint.config.js",
                ".prettierrc",
                "tsconfig.json"
            ]),
            &contents
        ),
        [LintTool::Eslint, LintTool::Prettier, LintTool::Tsc]
    );
    // A configuration without the tool installed as a dependency is not enough for npm tools.
    assert_eq!(
        detect_linters(&paths(&["package.json", ".eslintrc.json"]), &HashMap::new()),
        []
    );
    assert_eq!(
        detect_linters(&paths(&["go.mod", ".golangci.yml"]), &HashMap::new()),
        [LintTool::Gofmt, LintTool::GoVet, LintTool::GolangciLint]
    );
    assert_eq!(
        detect_linters(&paths(&["pom.xml", "checkstyle.xml"]), &HashMap::new()),
        [LintTool::Checkstyle]
    );
    assert_eq!(detect_linters(&paths(&["README.md"]), &HashMap::new()), []);
}

#[test]
fn machine_formats_parse() {
    let ruff = r#"[{"code": "F401", "message": "`os` imported but unused", "filename": "/workspace/calc.py",
        "location": {"row": 1, "column": 8}}]"#;
    assert_eq!(
        parse(Format::RuffJson, ruff).unwrap(),
        [v("calc.py", 1, 8, "F401", "`os` imported but unused")]
    );
    let pylint = r#"[{"type": "warning", "path": "calc.py", "line": 3, "column": 0,
        "symbol": "unused-import", "message": "Unused import os", "message-id": "W0611"}]"#;
    assert_eq!(
        parse(Format::PylintJson, pylint).unwrap(),
        [v("calc.py", 3, 1, "unused-import", "Unused import os")]
    );
    let eslint = r#"[{"filePath": "/workspace/src/a.ts", "messages": [
        {"ruleId": "no-unused-vars", "line": 2, "column": 7, "message": "'x' is unused"}]},
        {"filePath": "/workspace/src/b.ts", "messages": []}]"#;
    assert_eq!(
        parse(Format::EslintJson, eslint).unwrap(),
        [v("src/a.ts", 2, 7, "no-unused-vars", "'x' is unused")]
    );
    let checkstyle = r#"<?xml version="1.0"?><checkstyle version="8.36">
        <file name="src/main/java/calc/Calculator.java">
        <error line="9" column="5" severity="error" message="Missing a Javadoc comment."
         source="com.puppycrawl.tools.checkstyle.checks.javadoc.MissingJavadocMethodCheck"/>
        </file></checkstyle>"#;
    assert_eq!(
        parse(Format::CheckstyleXml, checkstyle).unwrap(),
        [v(
            "src/main/java/calc/Calculator.java",
            9,
            5,
            "MissingJavadocMethod",
            "Missing a Javadoc comment."
        )]
    );
    let lines = "./calc.go:12:2: unreachable code\n\
                 # example.com/calc\n\
                 calc.py:4:1: F401 'os' imported but unused\n\
                 calc.py:7: error: Incompatible return value  [return-value]\n\
                 src/a.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.\n\
                 not a location line\n";
    assert_eq!(
        parse(Format::Lines, lines).unwrap(),
        [
            v("calc.go", 12, 2, "", "unreachable code"),
            v("calc.py", 4, 1, "F401", "'os' imported but unused"),
            v("calc.py", 7, 0, "return-value", "Incompatible return value"),
            v(
                "src/a.ts",
                3,
                7,
                "TS2322",
                "Type 'string' is not assignable to type 'number'."
            ),
        ]
    );
    assert_eq!(
        parse(Format::FileList, "calc.go\n\n").unwrap(),
        [v("calc.go", 0, 0, "format", "the file is not formatted")]
    );
    assert_eq!(
        parse(
            Format::WouldReformat,
            "would reformat calc.py\nOh no! 1 file would be reformatted.\n"
        )
        .unwrap(),
        [v("calc.py", 0, 0, "format", "the file is not formatted")]
    );
    assert_eq!(parse(Format::RuffJson, "").unwrap(), []);
}

#[test]
fn malformed_output_is_a_problem_not_a_panic() {
    for (format, out) in [
        (Format::RuffJson, "{"),
        (Format::PylintJson, "{\"a\": 1}"),
        (Format::EslintJson, "<html>"),
        (Format::CheckstyleXml, "<checkstyle"),
        (Format::CheckstyleXml, "<other/>"),
    ] {
        assert!(parse(format, out).is_err(), "{format:?} {out:?}");
    }
    let run = assemble(
        LintTool::Ruff,
        "ruff".into(),
        Format::RuffJson,
        1,
        false,
        "{",
        "{",
    );
    assert_eq!(
        run.problem
            .as_deref()
            .map(|p| p.starts_with("unreadable ruff output")),
        Some(true)
    );
    let run = assemble(
        LintTool::Ruff,
        "ruff".into(),
        Format::RuffJson,
        127,
        false,
        "",
        "",
    );
    assert_eq!(
        run.problem.as_deref(),
        Some("ruff is not installed in the sandbox")
    );
    let run = assemble(
        LintTool::GoVet,
        "go vet".into(),
        Format::Lines,
        -1,
        true,
        "",
        "",
    );
    assert_eq!(
        run.problem.as_deref(),
        Some("the tool was killed at its timeout")
    );
    assert!(!run.clean());
}

#[test]
fn file_names_are_checked_and_quoted() {
    let files = paths(&["calc.py", "dir/it's.py", "README.md"]);
    assert_eq!(
        quoted_files(LintTool::Black, &files).unwrap().as_deref(),
        Some("calc.py 'dir/it'\\''s.py'")
    );
    assert_eq!(quoted_files(LintTool::Gofmt, &files).unwrap(), None);
    for bad in [
        "/etc/passwd",
        "../x.py",
        "a/../../x.py",
        "-rf.py",
        "",
        "a\nb.py",
    ] {
        let error = quoted_files(LintTool::Black, &paths(&[bad])).unwrap_err();
        assert!(matches!(error, Error::InvalidPath { .. }), "{bad:?}");
    }
}
