use pretty_assertions::assert_eq;

use super::support::{fixture, run, spec};

#[tokio::test]
async fn there_is_no_network() {
    let fx = fixture().await;
    let id = fx.session().await;
    // A listener on the host's loopback: reachable from the host, not from the sandbox.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let command = format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')\""
    );
    let ran = run(&fx.sandbox, &id, spec(&command)).await;
    assert_ne!(ran.exit.exit_code, 0, "stdout: {}", ran.stdout);
    assert!(!ran.stdout.contains("connected"));
    assert!(
        ran.stderr.contains("ConnectionRefusedError")
            || ran.stderr.contains("Network is unreachable"),
        "{}",
        ran.stderr
    );
    // Only a loopback interface exists.
    let ran = run(
        &fx.sandbox,
        &id,
        spec("ls /sys/class/net 2>/dev/null || cat /proc/net/dev"),
    )
    .await;
    assert!(!ran.stdout.contains("eth"), "{}", ran.stdout);
}

#[tokio::test]
async fn the_repository_and_the_system_are_read_only() {
    let fx = fixture().await;
    let id = fx.session().await;
    let ran = run(&fx.sandbox, &id, spec("cat /repo/README.md; touch /repo/new 2>&1; { echo x >> /repo/README.md; } 2>&1; touch /usr/new 2>&1; exit 0")).await;
    assert!(ran.stdout.starts_with("# Demo\n"), "{}", ran.stdout);
    assert_eq!(
        ran.stdout.matches("Read-only file system").count(),
        3,
        "{}",
        ran.stdout
    );
    let source = fx.root().join(&id).join("source");
    assert!(!source.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(source.join("README.md")).unwrap(),
        "# Demo\n\nA tiny project.\n"
    );
    // The workspace is writable and the write is visible on the host.
    let ran = run(&fx.sandbox, &id, spec("echo made > /workspace/made.txt")).await;
    assert_eq!(ran.exit.exit_code, 0, "{}", ran.stderr);
    assert_eq!(
        std::fs::read_to_string(fx.root().join(&id).join("workspace/made.txt")).unwrap(),
        "made\n"
    );
}

#[tokio::test]
async fn the_host_is_not_visible_and_no_privileges_are_left() {
    let fx = fixture().await;
    let id = fx.session().await;
    let host_dir = fx.dir.path().display().to_string();
    let command = format!(
        "test -e /etc/shadow && echo shadow; test -e /root && echo root; test -e '{host_dir}' && echo host; \
         grep CapEff /proc/self/status; cat /proc/sys/kernel/hostname"
    );
    let ran = run(&fx.sandbox, &id, spec(&command)).await;
    assert_eq!(
        ran.stdout, "CapEff:\t0000000000000000\nsandbox\n",
        "stderr: {}",
        ran.stderr
    );
}

#[tokio::test]
async fn repository_symlinks_stay_inside_the_sandbox_view() {
    let fx = fixture().await;
    let id = fx.session().await;
    // `escape` points at /etc/passwd: inside the sandbox that is the read-only, minimal /etc.
    let ran = run(&fx.sandbox, &id, spec("echo pwned > escape; echo $?")).await;
    assert_ne!(ran.stdout.trim(), "0", "{ran:?}");
}
