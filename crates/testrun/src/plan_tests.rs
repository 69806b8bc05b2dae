use pretty_assertions::assert_eq;

use super::*;

fn plan(framework: Framework) -> TestPlan {
    TestPlan::standard(framework)
}

#[test]
fn without_a_pattern_the_command_is_the_plans() {
    for framework in [
        Framework::Pytest,
        Framework::Unittest,
        Framework::NodeTest,
        Framework::GoTest,
        Framework::Maven,
        Framework::Gradle,
    ] {
        let plan = plan(framework);
        assert_eq!(plan.command_for(None), plan.command);
        assert_eq!(
            plan.command_for(Some("")),
            plan.command,
            "empty pattern is no pattern"
        );
        assert_eq!(
            plan.command_for(Some("   ")),
            plan.command,
            "blank pattern is no pattern"
        );
    }
}

#[test]
fn pytest_takes_expressions_with_k_and_paths_positionally() {
    let pytest = plan(Framework::Pytest);
    assert_eq!(
        pytest.command_for(Some("test_add")),
        "python3 -m pytest -k test_add"
    );
    assert_eq!(
        pytest.command_for(Some("add and not slow")),
        "python3 -m pytest -k 'add and not slow'"
    );
    assert_eq!(
        pytest.command_for(Some("tests/test_calc.py")),
        "python3 -m pytest tests/test_calc.py"
    );
    assert_eq!(
        pytest.command_for(Some("test_calc.py::test_add")),
        "python3 -m pytest test_calc.py::test_add"
    );
    // argparse would read `-k -slow` as two options.
    assert_eq!(
        pytest.command_for(Some("-slow")),
        "python3 -m pytest -k-slow"
    );
    assert_eq!(
        pytest.command_for(Some("not x")),
        "python3 -m pytest -k 'not x'"
    );
}

#[test]
fn other_runners_get_their_own_filter_syntax() {
    assert_eq!(
        plan(Framework::GoTest).command_for(Some("TestAdd")),
        "go test -run=TestAdd ./..."
    );
    assert_eq!(
        plan(Framework::GoTest).command_for(Some("TestAdd|TestSub")),
        "go test -run='TestAdd|TestSub' ./..."
    );
    assert_eq!(
        plan(Framework::Maven).command_for(Some("CalcTest#add")),
        "mvn -q -o test -Dtest='CalcTest#add' -Dsurefire.failIfNoSpecifiedTests=false"
    );
    assert_eq!(
        plan(Framework::NodeTest).command_for(Some("calc")),
        "npm test -- calc"
    );
    assert_eq!(
        plan(Framework::Gradle).command_for(Some("*CalcTest")),
        "gradle test --offline --tests '*CalcTest'"
    );
    assert_eq!(
        plan(Framework::Unittest).command_for(Some("test_add")),
        "python3 -m unittest discover -k test_add"
    );
    let npm_with_args = TestPlan {
        framework: Framework::NodeTest,
        command: "npm test -- --ci".into(),
    };
    assert_eq!(
        npm_with_args.command_for(Some("calc")),
        "npm test -- --ci calc"
    );
}

#[test]
fn patterns_are_quoted_for_the_shell() {
    let pytest = plan(Framework::Pytest);
    assert_eq!(
        pytest.command_for(Some("x'; reboot #")),
        r"python3 -m pytest -k 'x'\''; reboot #'"
    );
    assert_eq!(
        pytest.command_for(Some("$(reboot)")),
        "python3 -m pytest -k '$(reboot)'"
    );
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
}

#[test]
fn custom_commands_take_the_pattern_only_through_the_placeholder() {
    let make = TestPlan::custom("make test");
    assert_eq!(make.framework, Framework::Custom);
    assert_eq!(make.command_for(Some("calc")), "make test");
    let with_slot = TestPlan::custom("./run-tests.sh {pattern}");
    assert_eq!(
        with_slot.command_for(Some("calc add")),
        "./run-tests.sh 'calc add'"
    );
    assert_eq!(with_slot.command_for(None), "./run-tests.sh ");
}

#[test]
fn go_test_gets_json_after_go_test_only() {
    let go = plan(Framework::GoTest);
    let invocation = go.invocation(Some("TestAdd"), "n1");
    assert_eq!(invocation.script, "go test -json -run=TestAdd ./...");
    assert_eq!(invocation.report, Report::GoJson);
    let bare = TestPlan {
        framework: Framework::GoTest,
        command: "go test".into(),
    };
    assert_eq!(bare.invocation(None, "n1").script, "go test -json");
    // Not `go test`: no machine format to ask for.
    let wrapped = TestPlan {
        framework: Framework::GoTest,
        command: "gotest ./...".into(),
    };
    assert_eq!(wrapped.invocation(None, "n1").report, Report::ExitCode);
    assert_eq!(
        insert_after_go_test("gotest ./...", "-json"),
        "gotest ./... -json"
    );
}

#[test]
fn pytest_invocation_writes_junit_and_prints_it_after_the_marker() {
    let invocation = plan(Framework::Pytest).invocation(Some("add"), "abc");
    let marker = "=====cap-testrun-abc=====";
    assert_eq!(
        invocation.report,
        Report::Junit {
            marker: marker.to_owned()
        }
    );
    assert!(invocation.script.starts_with(
        "{ { python3 -m pytest -k add -p no:cacheprovider -o junit_family=xunit1 \
         --junitxml=/tmp/cap-testrun-abc.xml\n} 2>&1; echo $? > /tmp/cap-testrun-abc.rc; } | "
    ));
    assert!(invocation.script.contains(marker));
    assert!(invocation.script.ends_with("exit $cap_rc"));
}

#[test]
fn maven_and_gradle_collect_only_this_runs_reports() {
    let maven = plan(Framework::Maven).invocation(None, "n2");
    assert!(maven.script.starts_with(
        "find . -path '*/target/surefire-reports/*' -name 'TEST-*.xml' -type f -delete \
         2>/dev/null\n{ { mvn -q -o test\n} 2>&1;"
    ));
    let gradle = plan(Framework::Gradle).invocation(None, "n3");
    assert!(gradle.script.contains("-path '*/build/test-results/*'"));
}

#[test]
fn the_script_runs_in_sh_and_keeps_the_runners_exit_code() {
    // The script is shell: run it for real with a stand-in runner that writes a report.
    let dir = tempfile::tempdir().unwrap();
    let plan = TestPlan {
        framework: Framework::Maven,
        command: "sh make-report.sh".into(),
    };
    std::fs::write(
        dir.path().join("make-report.sh"),
        "mkdir -p target/surefire-reports\n\
         echo '<testsuite/>' > target/surefire-reports/TEST-a.xml\n\
         echo console; echo problem >&2\nexit 3\n",
    )
    .unwrap();
    // A report from an earlier run is not this run's.
    std::fs::create_dir_all(dir.path().join("target/surefire-reports")).unwrap();
    std::fs::write(
        dir.path().join("target/surefire-reports/TEST-old.xml"),
        "<old/>",
    )
    .unwrap();
    let invocation = plan.invocation(None, &uuid::Uuid::new_v4().simple().to_string());
    let output = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&invocation.script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let Report::Junit { marker } = &invocation.report else {
        panic!("junit expected")
    };
    let expected = format!(
        "console\nproblem\n\n{marker}\n{marker}:file ./target/surefire-reports/TEST-a.xml\n<testsuite/>\n\n"
    );
    assert_eq!(stdout, expected);
}

#[test]
fn frameworks_serialize_snake_case() {
    assert_eq!(
        serde_json::to_string(&Framework::NodeTest).unwrap(),
        "\"node_test\""
    );
    assert_eq!(Framework::GoTest.to_string(), "go_test");
    let plan: TestPlan =
        serde_json::from_str(r#"{"framework":"pytest","command":"pytest"}"#).unwrap();
    assert_eq!(plan.framework, Framework::Pytest);
}

#[test]
fn chatty_runs_are_capped_so_the_report_survives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("chatty.sh"),
        "mkdir -p target/surefire-reports\n\
         echo '<testsuite><testcase name=\"t\"/></testsuite>' > target/surefire-reports/TEST-t.xml\n\
         head -c 2000000 /dev/zero | tr '\\0' x\nexit 0\n",
    )
    .unwrap();
    let plan = TestPlan {
        framework: Framework::Maven,
        command: "sh chatty.sh".into(),
    };
    let invocation = plan.invocation(None, "chatty");
    let output = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&invocation.script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.len() < CONSOLE_CAP + 1000, "{}", stdout.len());
    let dropped = 2_000_000 - CONSOLE_CAP;
    assert!(stdout.contains(&format!("\n[{dropped} more bytes of output dropped]\n")));
    assert!(stdout.ends_with(
        "=====cap-testrun-chatty=====:file ./target/surefire-reports/TEST-t.xml\n\
         <testsuite><testcase name=\"t\"/></testsuite>\n\n"
    ));
}

#[test]
fn javascript_runners_take_names_with_t_and_files_positionally() {
    assert_eq!(
        plan(Framework::Vitest).command_for(Some("calc subtracts")),
        "./node_modules/.bin/vitest run -t 'calc subtracts'"
    );
    assert_eq!(
        plan(Framework::Vitest).command_for(Some("src/calc.test.ts")),
        "./node_modules/.bin/vitest run src/calc.test.ts"
    );
    assert_eq!(
        plan(Framework::Jest).command_for(Some("-adds")),
        "./node_modules/.bin/jest -t -adds"
    );
    assert_eq!(
        plan(Framework::Mocha).command_for(Some("calc adds")),
        "./node_modules/.bin/mocha '--grep=calc adds'"
    );
    assert_eq!(
        plan(Framework::Mocha).command_for(Some("-adds")),
        "./node_modules/.bin/mocha --grep=-adds"
    );
    assert_eq!(
        plan(Framework::Mocha).command_for(Some("test/calc.test.js")),
        "./node_modules/.bin/mocha test/calc.test.js"
    );
    assert_eq!(
        plan(Framework::NodeRunner).command_for(Some("adds it")),
        "node --test '--test-name-pattern=adds it'"
    );
    assert_eq!(
        plan(Framework::NodeRunner).command_for(Some("test/a.test.js")),
        "node --test test/a.test.js"
    );
}

#[test]
fn javascript_invocations_leave_reports_behind() {
    let vitest = plan(Framework::Vitest).invocation(None, "n1");
    assert!(
        vitest
            .script
            .contains("vitest run --reporter=default --reporter=json --outputFile.json=/tmp/cap-testrun-n1.json"),
        "{}",
        vitest.script
    );
    assert!(matches!(vitest.report, Report::JestJson { .. }));
    let jest = plan(Framework::Jest).invocation(None, "n2");
    assert!(
        jest.script
            .contains("jest --json --outputFile=/tmp/cap-testrun-n2.json"),
        "{}",
        jest.script
    );
    let node = plan(Framework::NodeRunner).invocation(Some("a.test.js"), "n3");
    assert!(
        node.script.contains(
            "node --test --test-reporter=spec --test-reporter-destination=stdout \
             --test-reporter=junit --test-reporter-destination=/tmp/cap-testrun-n3.xml a.test.js"
        ),
        "{}",
        node.script
    );
    assert!(matches!(node.report, Report::Junit { .. }));
    let mocha = plan(Framework::Mocha).invocation(Some("adds"), "n4");
    assert!(
        mocha.script.contains(
            "mocha --grep=adds --reporter=json --reporter-option=output=/tmp/cap-testrun-n4.json"
        ),
        "{}",
        mocha.script
    );
    assert!(matches!(mocha.report, Report::MochaJson { .. }));
}
