use pretty_assertions::assert_eq;

use super::*;

fn cov(files: &[(&str, u64, u64)]) -> Coverage {
    Coverage {
        files: files
            .iter()
            .map(|(p, covered, total)| {
                (
                    (*p).to_owned(),
                    FileCoverage {
                        covered: *covered,
                        total: *total,
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn coverage_py_summaries() {
    let json = r#"{"meta": {"version": "6.5.0"}, "files": {
        "calc.py": {"executed_lines": [1, 2], "summary": {"covered_lines": 6, "num_statements": 8,
            "percent_covered": 75.0, "missing_lines": 2, "excluded_lines": 0}},
        "util.py": {"summary": {"covered_lines": 0, "num_statements": 0}}},
        "totals": {"covered_lines": 6, "num_statements": 8}}"#;
    let coverage = parse_coverage_py_json(json).unwrap();
    assert_eq!(coverage, cov(&[("calc.py", 6, 8), ("util.py", 0, 0)]));
    assert_eq!(coverage.percent(), 75.0);
    assert_eq!(coverage.files["util.py"].percent(), 100.0);
}

#[test]
fn go_profiles_merge_repeated_blocks() {
    let profile = "mode: set\n\
                   example.com/calc/calc.go:4.24,6.2 1 1\n\
                   example.com/calc/calc.go:9.24,11.2 1 0\n\
                   example.com/calc/calc.go:9.24,11.2 1 1\n\
                   example.com/calc/more.go:3.20,8.2 3 0\n";
    let coverage = parse_go_coverprofile(profile).unwrap();
    assert_eq!(
        coverage,
        cov(&[
            ("example.com/calc/calc.go", 2, 2),
            ("example.com/calc/more.go", 0, 3)
        ])
    );
    assert_eq!(coverage.percent(), 40.0);
    assert_eq!(parse_go_coverprofile("mode: count\n").unwrap(), cov(&[]));
}

#[test]
fn lcov_records() {
    let lcov = "TN:\nSF:/workspace/src/calc.ts\nDA:1,1\nLF:10\nLH:7\nend_of_record\n\
                SF:src/other.ts\nLF:3\nLH:9\nend_of_record\n";
    assert_eq!(
        parse_lcov(lcov).unwrap(),
        cov(&[("src/calc.ts", 7, 10), ("src/other.ts", 3, 3)])
    );
}

#[test]
fn malformed_reports_are_categorised_errors() {
    type Parse = fn(&str) -> Result<Coverage>;
    let cases: [(&str, Parse); 7] = [
        ("{", parse_coverage_py_json),
        ("{\"files\": {\"a.py\": {}}}", parse_coverage_py_json),
        ("", parse_go_coverprofile),
        ("mode: set\nnot a block\n", parse_go_coverprofile),
        ("mode: set\nx.go:1.1,2.2 one 1\n", parse_go_coverprofile),
        ("LF:3\n", parse_lcov),
        ("SF:a.ts\nLF:3\n", parse_lcov),
    ];
    for (text, parse) in cases {
        let error = parse(text).unwrap_err();
        assert!(
            matches!(error, Error::MalformedCoverage { .. }),
            "{text:?}: {error:?}"
        );
    }
    assert!(matches!(
        parse_lcov("garbage\n"),
        Err(Error::MalformedCoverage { .. })
    ));
}

#[test]
fn deltas_per_file_and_overall_with_the_threshold() {
    let before = cov(&[("a.py", 8, 10), ("b.py", 10, 10), ("gone.py", 1, 2)]);
    let after = cov(&[("a.py", 8, 10), ("b.py", 10, 20), ("new.py", 0, 5)]);
    let delta = compare(&before, &after, Some(80.0));
    assert_eq!(
        delta,
        CoverageDelta {
            before: 86.36,
            after: 51.43,
            delta: -34.93,
            files: vec![
                FileDelta {
                    path: "b.py".into(),
                    before: Some(100.0),
                    after: Some(50.0),
                    delta: -50.0
                },
                FileDelta {
                    path: "gone.py".into(),
                    before: Some(50.0),
                    after: None,
                    delta: -50.0
                },
                FileDelta {
                    path: "new.py".into(),
                    before: None,
                    after: Some(0.0),
                    delta: 0.0
                },
            ],
            threshold: Some(80.0),
            below_threshold: true,
        }
    );
    assert_eq!(
        delta.summary(),
        "coverage 86.36% -> 51.43% (-34.93 points), below the repository's threshold of 80.00%\n  \
         b.py: 100.00% -> 50.00% (-50.00)\n  gone.py: 50.00% -> - (-50.00)\n  new.py: - -> 0.00% (+0.00)"
    );
    // Without a threshold nothing fails; a repository already below its threshold fails
    // only when the change lowers coverage further.
    assert!(!compare(&before, &after, None).below_threshold);
    let low = cov(&[("a.py", 5, 10)]);
    let better = cov(&[("a.py", 6, 10)]);
    assert!(!compare(&low, &better, Some(80.0)).below_threshold);
    assert!(compare(&better, &low, Some(80.0)).below_threshold);
    assert!(!compare(&low, &low, Some(80.0)).below_threshold);
}

#[test]
fn thresholds_from_the_repositorys_files() {
    let of = |name: &str, text: &str| {
        threshold_from_files(&HashMap::from([(name.to_owned(), text.to_owned())]))
    };
    assert_eq!(
        of(
            "pyproject.toml",
            "[tool.coverage.report]\nfail_under = 80\n"
        ),
        Some(80.0)
    );
    assert_eq!(
        of(".coveragerc", "[report]\nfail_under=92.5 # ok\n"),
        Some(92.5)
    );
    assert_eq!(
        of(
            "package.json",
            r#"{"jest": {"coverageThreshold": {"global": {"lines": 70}}}}"#
        ),
        Some(70.0)
    );
    assert_eq!(
        of(
            ".testcoverage.yml",
            "profile: cover.out\nthreshold:\n  file: 50\n  total: 75\n"
        ),
        Some(75.0)
    );
    assert_eq!(
        of(".c8rc.json", r#"{"check-coverage": true, "lines": 85}"#),
        Some(85.0)
    );
    let pom = |limit: &str| {
        format!(
            "<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><build><plugins><plugin>\
             <groupId>org.jacoco</groupId><artifactId>jacoco-maven-plugin</artifactId>\
             <executions><execution><configuration><rules><rule><limits>{limit}</limits>\
             </rule></rules></configuration></execution></executions></plugin></plugins>\
             </build></project>"
        )
    };
    let limit = |counter: &str, value: &str, minimum: &str| {
        format!(
            "<limit><counter>{counter}</counter><value>{value}</value>\
             <minimum>{minimum}</minimum></limit>"
        )
    };
    let line_ratio = limit("LINE", "COVEREDRATIO", " 0.80 ");
    assert_eq!(of("pom.xml", &pom(&line_ratio)), Some(80.0));
    let percent = limit("LINE", "COVEREDRATIO", "75%");
    assert_eq!(of("pom.xml", &pom(&percent)), Some(75.0));
    // Other counters and values are not the overall line coverage.
    let branches = limit("BRANCH", "COVEREDRATIO", "0.9");
    assert_eq!(of("pom.xml", &pom(&branches)), None);
    let missed = limit("LINE", "MISSEDCOUNT", "3");
    assert_eq!(
        of("pom.xml", &pom(&format!("{missed}{line_ratio}"))),
        Some(80.0)
    );
    assert_eq!(
        of("pom.xml", &pom(&limit("LINE", "COVEREDRATIO", "1.5"))),
        None
    );
    assert_eq!(
        of(
            "pom.xml",
            &pom(&line_ratio).replace("jacoco-maven-plugin", "other-plugin")
        ),
        None
    );
    assert_eq!(of("pom.xml", "<project>"), None);
    assert_eq!(of("pyproject.toml", "fail_under = 180\n"), None);
    assert_eq!(of("pyproject.toml", "fail_under = lots\n"), None);
    assert_eq!(of("package.json", "not json"), None);
    assert_eq!(of("README.md", "fail_under = 80"), None);
}

/// JaCoCo's report as `CapJacocoReport.java` writes it (one group per module), with the
/// per-line, per-method and per-class elements the measurement strips.
const JACOCO_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">
<report name="modules"><sessioninfo id="vm" start="1" dump="2"/>
  <group name="."><package name="calc">
    <sourcefile name="Calculator.java">
      <counter type="INSTRUCTION" missed="9" covered="8"/>
      <counter type="LINE" missed="3" covered="2"/>
    </sourcefile>
    <sourcefile name="Constants.java"><counter type="CLASS" missed="0" covered="1"/></sourcefile>
    <counter type="LINE" missed="3" covered="2"/>
  </package></group>
  <group name="./core"><package name="">
    <sourcefile name="Main.java"><counter type="LINE" missed="0" covered="4"/></sourcefile>
  </package></group>
</report>"#;

#[test]
fn jacoco_line_counters_per_source_file() {
    let coverage = parse_jacoco_xml(JACOCO_XML).unwrap();
    assert_eq!(
        coverage,
        cov(&[
            ("core/src/main/java/Main.java", 4, 4),
            ("src/main/java/calc/Calculator.java", 2, 5),
        ])
    );
    // The plugin's own report: no groups, the root module.
    let plugin = r#"<report name="calculator"><package name="a/b"><sourcefile name="C.java">
        <counter type="LINE" missed="1" covered="1"/></sourcefile></package></report>"#;
    assert_eq!(
        parse_jacoco_xml(plugin).unwrap(),
        cov(&[("src/main/java/a/b/C.java", 1, 2)])
    );
}

#[test]
fn malformed_jacoco_reports_are_categorised_errors() {
    let reason = |xml: &str| match parse_jacoco_xml(xml) {
        Err(Error::MalformedCoverage { format, reason }) => {
            assert_eq!(format, "JaCoCo XML");
            reason
        }
        other => panic!("{other:?}"),
    };
    // Not XML at all: roxmltree's reason.
    assert!(!reason("<report><package").is_empty());
    assert_eq!(
        reason("<testsuite/>"),
        "the root element is <testsuite>, not <report>"
    );
    assert_eq!(
        reason(r#"<report><sourcefile name="A.java"/></report>"#),
        r#"<sourcefile name="A.java"> outside a <package>"#
    );
    assert_eq!(
        reason(
            r#"<report><package name="p"><sourcefile name="A.java">
            <counter type="LINE" missed="x" covered="1"/></sourcefile></package></report>"#
        ),
        "A.java: unreadable LINE missed"
    );
}
