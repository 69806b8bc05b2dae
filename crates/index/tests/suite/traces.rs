//! Stack traces captured by running the fixtures' failing code with each language's own
//! runtime, mapped onto the index.

use pretty_assertions::assert_eq;

use super::{copy_fixture, fixture, index, run_failing};

fn top(analysis: &cap_index::TraceAnalysis) -> Vec<(&str, Vec<String>)> {
    analysis
        .ranked
        .iter()
        .map(|r| (r.path.as_str(), r.symbols.clone()))
        .collect()
}

#[test]
fn python_traceback() -> anyhow::Result<()> {
    let root = fixture("python-shop");
    let trace = run_failing(&root, "python3", &["-B", "-m", "shop.cli"], &[])?;
    assert!(trace.contains("ZeroDivisionError"), "{trace}");
    let analysis = cap_index::analyze_trace(&index(&root)?, &trace);
    assert_eq!(
        top(&analysis),
        [
            ("shop/pricing.py", vec!["average_price".to_owned()]),
            ("shop/cli.py", vec!["main".to_owned()]),
        ]
    );
    // `runpy`'s own frames are in the trace but not in the repository.
    assert!(analysis.frames.iter().any(|f| f.path.is_none()));
    assert_eq!(analysis.frames[0].line, 6);
    Ok(())
}

#[test]
fn node_stack() -> anyhow::Result<()> {
    let root = fixture("javascript-cli");
    let trace = run_failing(&root, "node", &["src/index.js"], &[])?;
    assert!(
        trace.contains("RangeError: mean of an empty list"),
        "{trace}"
    );
    let analysis = cap_index::analyze_trace(&index(&root)?, &trace);
    assert_eq!(
        top(&analysis),
        [
            (
                "src/lib/stats.js",
                vec!["mean".to_owned(), "Summary.describe".to_owned()]
            ),
            ("src/index.js", vec!["run".to_owned()]),
        ]
    );
    assert_eq!(analysis.ranked[0].lines, [5, 21]);
    Ok(())
}

#[test]
fn go_panic() -> anyhow::Result<()> {
    let root = copy_fixture("go-store")?;
    let cache = tempfile::tempdir()?;
    let env = [
        ("GOCACHE", cache.path()),
        ("GOPATH", cache.path()),
        ("HOME", cache.path()),
    ];
    let trace = run_failing(root.path(), "go", &["run", "./cmd/app"], &env)?;
    assert!(trace.contains("index out of range"), "{trace}");
    let analysis = cap_index::analyze_trace(&index(root.path())?, &trace);
    assert_eq!(
        top(&analysis),
        [
            ("store/store.go", vec!["Store.Get".to_owned()]),
            (
                "cmd/app/main.go",
                vec!["lookup".to_owned(), "main".to_owned()]
            ),
        ]
    );
    assert_eq!(
        analysis.frames[0].function.as_deref(),
        Some("example.com/store/store.(*Store).Get")
    );
    Ok(())
}

#[test]
fn go_test_failure() -> anyhow::Result<()> {
    let root = copy_fixture("go-store")?;
    let cache = tempfile::tempdir()?;
    let env = [
        ("GOCACHE", cache.path()),
        ("GOPATH", cache.path()),
        ("HOME", cache.path()),
    ];
    let trace = run_failing(root.path(), "go", &["test", "./store"], &env)?;
    let analysis = cap_index::analyze_trace(&index(root.path())?, &trace);
    // `go test` names the file without its directory; it is still found.
    assert_eq!(
        top(&analysis),
        [("store/store_test.go", vec!["TestGet".to_owned()])]
    );
    Ok(())
}

#[test]
fn java_exception() -> anyhow::Result<()> {
    let root = fixture("java-bank");
    let classes = tempfile::tempdir()?;
    let out = classes.path().to_string_lossy().into_owned();
    let status = std::process::Command::new("javac")
        .args(["-d", &out])
        .args([
            "src/main/java/com/acme/bank/Main.java",
            "src/main/java/com/acme/bank/Bank.java",
            "src/main/java/com/acme/bank/model/Account.java",
        ])
        .current_dir(&root)
        .status()?;
    assert!(status.success());
    let trace = run_failing(&root, "java", &["-cp", &out, "com.acme.bank.Main"], &[])?;
    assert!(
        trace.contains("IllegalStateException: insufficient funds for ann"),
        "{trace}"
    );
    let analysis = cap_index::analyze_trace(&index(&root)?, &trace);
    assert_eq!(
        top(&analysis),
        [
            (
                "src/main/java/com/acme/bank/model/Account.java",
                vec!["Account.withdraw".to_owned()]
            ),
            (
                "src/main/java/com/acme/bank/Bank.java",
                vec!["Bank.transfer".to_owned()]
            ),
            (
                "src/main/java/com/acme/bank/Main.java",
                vec!["Main.main".to_owned()]
            ),
        ]
    );
    Ok(())
}

#[test]
fn text_without_frames_maps_to_nothing() -> anyhow::Result<()> {
    let analysis = cap_index::analyze_trace(
        &index(&fixture("python-shop"))?,
        "error: something failed\n\0\u{fffd}",
    );
    assert!(analysis.frames.is_empty() && analysis.ranked.is_empty());
    Ok(())
}
