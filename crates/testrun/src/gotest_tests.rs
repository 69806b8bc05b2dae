use pretty_assertions::assert_eq;

use super::*;

/// `go test -json ./...` on a module with a failing test, a skipped subtest and a package
/// without tests (the event shapes of Go 1.22's test2json).
const RUN: &str = r#"{"Time":"2024-05-01T10:00:00.000001Z","Action":"start","Package":"example.com/calc"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"run","Package":"example.com/calc","Test":"TestAdd"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestAdd","Output":"=== RUN   TestAdd\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestAdd","Output":"--- PASS: TestAdd (0.00s)\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"pass","Package":"example.com/calc","Test":"TestAdd","Elapsed":0}
{"Time":"2024-05-01T10:00:00.1Z","Action":"run","Package":"example.com/calc","Test":"TestSub"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestSub","Output":"=== RUN   TestSub\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestSub","Output":"    calc_test.go:12: got 1, want 2\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestSub","Output":"--- FAIL: TestSub (0.25s)\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"fail","Package":"example.com/calc","Test":"TestSub","Elapsed":0.25}
{"Time":"2024-05-01T10:00:00.1Z","Action":"run","Package":"example.com/calc","Test":"TestDiv"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"run","Package":"example.com/calc","Test":"TestDiv/by_zero"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestDiv/by_zero","Output":"=== RUN   TestDiv/by_zero\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestDiv/by_zero","Output":"    calc_test.go:20: not on this platform\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestDiv/by_zero","Output":"--- SKIP: TestDiv/by_zero (0.00s)\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"skip","Package":"example.com/calc","Test":"TestDiv/by_zero","Elapsed":0}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Test":"TestDiv","Output":"--- PASS: TestDiv (0.00s)\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"pass","Package":"example.com/calc","Test":"TestDiv","Elapsed":0.001}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Output":"FAIL\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc","Output":"FAIL\texample.com/calc\t0.012s\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"fail","Package":"example.com/calc","Elapsed":0.012}
{"Time":"2024-05-01T10:00:00.1Z","Action":"start","Package":"example.com/calc/internal/util"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"output","Package":"example.com/calc/internal/util","Output":"?   \texample.com/calc/internal/util\t[no test files]\n"}
{"Time":"2024-05-01T10:00:00.1Z","Action":"skip","Package":"example.com/calc/internal/util","Elapsed":0}
"#;

#[test]
fn tests_subtests_and_package_results() {
    let cases = parse_go_test_json(RUN);
    assert_eq!(
        cases,
        vec![
            TestCase {
                name: "TestAdd".into(),
                file: "example.com/calc".into(),
                outcome: "passed".into(),
                duration_ms: 0,
                message: String::new(),
            },
            TestCase {
                name: "TestSub".into(),
                file: "example.com/calc".into(),
                outcome: "failed".into(),
                duration_ms: 250,
                message: "=== RUN   TestSub\n    calc_test.go:12: got 1, want 2\n--- FAIL: TestSub (0.25s)"
                    .into(),
            },
            TestCase {
                name: "TestDiv/by_zero".into(),
                file: "example.com/calc".into(),
                outcome: "skipped".into(),
                duration_ms: 0,
                message: "=== RUN   TestDiv/by_zero\n    calc_test.go:20: not on this platform\n\
                          --- SKIP: TestDiv/by_zero (0.00s)"
                    .into(),
            },
            TestCase {
                name: "TestDiv".into(),
                file: "example.com/calc".into(),
                outcome: "passed".into(),
                duration_ms: 1,
                message: String::new(),
            },
        ],
        "the package's own fail is covered by TestSub; no-test-files packages are no cases"
    );
}

#[test]
fn build_failures_are_one_error_per_package() {
    // Go 1.24+: build output as events.
    let new = r##"{"ImportPath":"example.com/broken [example.com/broken.test]","Action":"build-output","Output":"# example.com/broken [example.com/broken.test]\n"}
{"ImportPath":"example.com/broken [example.com/broken.test]","Action":"build-output","Output":"./broken_test.go:5:2: undefined: Foo\n"}
{"ImportPath":"example.com/broken [example.com/broken.test]","Action":"build-fail"}
{"Time":"2025-01-01T00:00:00Z","Action":"start","Package":"example.com/broken"}
{"Time":"2025-01-01T00:00:00Z","Action":"output","Package":"example.com/broken","Output":"FAIL\texample.com/broken [build failed]\n"}
{"Time":"2025-01-01T00:00:00Z","Action":"fail","Package":"example.com/broken","Elapsed":0,"FailedBuild":"example.com/broken [example.com/broken.test]"}
"##;
    let cases = parse_go_test_json(new);
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].name, "example.com/broken");
    assert_eq!(cases[0].outcome, "error");
    assert_eq!(
        cases[0].message,
        "# example.com/broken [example.com/broken.test]\n./broken_test.go:5:2: undefined: Foo"
    );

    // Older Go: the compiler's errors went to stderr; only the package's verdict is an event.
    let old = r#"{"Action":"output","Package":"example.com/broken","Output":"FAIL\texample.com/broken [build failed]\n"}
{"Action":"fail","Package":"example.com/broken","Elapsed":0}
"#;
    let cases = parse_go_test_json(old);
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].outcome, "error");
    assert_eq!(cases[0].message, "FAIL\texample.com/broken [build failed]");
}

#[test]
fn garbage_lines_are_skipped() {
    let text = "go: downloading example.com/x v1.0.0\n{not json\n{\"Action\":42}\n\
                {\"Action\":\"pass\",\"Package\":\"p\",\"Test\":\"TestOk\",\"Elapsed\":-3}\n\u{0}\n";
    let cases = parse_go_test_json(text);
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].name, "TestOk");
    assert_eq!(cases[0].duration_ms, 0);
    assert_eq!(parse_go_test_json(""), vec![]);
}

#[test]
fn console_is_rendered_from_the_events() {
    let rendered = render_console(RUN);
    assert!(
        rendered.starts_with("=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n=== RUN   TestSub\n")
    );
    assert!(rendered.ends_with(
        "FAIL\texample.com/calc\t0.012s\n?   \texample.com/calc/internal/util\t[no test files]\n"
    ));
    assert_eq!(
        render_console("# pkg\n./x.go:1: bad\n"),
        "# pkg\n./x.go:1: bad\n"
    );
}

#[test]
fn tails_are_char_safe() {
    assert_eq!(tail_chars("abcdé", 2), "...dé");
    assert_eq!(tail_chars("ab", 2), "ab");
    let mut buffer = String::new();
    for _ in 0..10_000 {
        push_capped(&mut buffer, "é");
    }
    assert!(buffer.len() <= 8 * MESSAGE_CAP);
}
