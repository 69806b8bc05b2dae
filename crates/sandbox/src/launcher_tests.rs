use pretty_assertions::assert_eq;

use super::*;

/// Launchers that start `printf '%s|'` instead of bubblewrap: the command line they exec is
/// printed, one argument per `|`.
fn printing(dir: &std::path::Path, size: usize) -> Arc<Launchers> {
    let seccomp_file = dir.join("seccomp");
    std::fs::write(&seccomp_file, b"").unwrap();
    Launchers::new(
        LaunchSpec {
            bwrap: "/usr/bin/printf".into(),
            base: vec!["%s|".into(), "base arg".into()],
            seccomp_file,
            cgroups: None,
            limits: Limits::default(),
        },
        size,
    )
}

async fn output(child: Child) -> (Option<i32>, String) {
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_arguments_arrive_whole_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let launchers = printing(dir.path(), 0);
    let extra: Vec<OsString> = ["two words", "", "line\nbreak", "$HOME", "'quoted'"]
        .map(OsString::from)
        .into();
    let (child, group) = launchers.take().await.unwrap().start(&extra).await.unwrap();
    assert!(group.is_none());
    assert_eq!(
        output(child).await,
        (
            Some(0),
            "base arg|two words||line\nbreak|$HOME|'quoted'|".to_owned()
        )
    );
}

#[tokio::test]
async fn a_launcher_whose_arguments_end_early_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let launchers = printing(dir.path(), 0);
    let mut launcher = launchers.take().await.unwrap();
    let parts = launcher.parts.as_mut().unwrap();
    // Three arguments announced, one sent, then the end.
    parts.stdin.write_all(b"3\0only one\0").await.unwrap();
    let parts = launcher.parts.take().unwrap();
    drop(parts.stdin);
    assert_eq!(output(parts.child).await, (Some(125), String::new()));
    // A count that is not a number.
    let mut launcher = launchers.take().await.unwrap();
    let parts = launcher.parts.as_mut().unwrap();
    parts.stdin.write_all(b"x\0").await.unwrap();
    let parts = launcher.parts.take().unwrap();
    drop(parts.stdin);
    assert_eq!(output(parts.child).await, (Some(125), String::new()));
}

#[tokio::test]
async fn ready_launchers_are_used_and_dead_ones_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let launchers = printing(dir.path(), 2);
    launchers.refill();
    while launchers.pool().ready.len() < 2 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // One of them dies while waiting.
    let mut dying = launchers.pool().ready.pop().unwrap();
    let parts = dying.parts.as_mut().unwrap();
    parts.child.start_kill().unwrap();
    parts.child.wait().await.unwrap();
    launchers.pool().ready.push(dying);
    let (child, _) = launchers
        .take()
        .await
        .unwrap()
        .start(&["ok".into()])
        .await
        .unwrap();
    assert_eq!(output(child).await, (Some(0), "base arg|ok|".to_owned()));
}
