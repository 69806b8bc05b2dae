//! A tiny repository in a bare remote, and a sandbox over a temporary root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use cap_sandbox::{ExecEvent, ExecSpec, ExitInfo, Sandbox, SandboxConfig};
use futures::StreamExt;

pub use cap_testkit::git::git;

/// Fields drop in order: the sandbox (unmounting its workspace filesystems) before the
/// directory holding them.
pub struct Fixture {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
    pub bare: PathBuf,
    pub commit: String,
    /// A first commit whose tree differs from `commit`.
    pub first_commit: String,
}

impl Fixture {
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("sessions")
    }

    pub fn url(&self) -> String {
        self.bare.display().to_string()
    }

    /// A new session at the fixture's commit.
    pub async fn session(&self) -> String {
        let info = self
            .sandbox
            .create_session(&self.url(), &self.commit, "")
            .await
            .unwrap();
        info.session_id.to_string()
    }
}

pub async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

/// A repository with Python code and tests, a `.gitignore`, an executable script, a binary
/// file and symlinks pointing outside, cloned bare; then a sandbox over a fresh root.
pub async fn fixture_with(configure: impl FnOnce(&mut SandboxConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "--quiet"]);
    std::fs::write(work.join("README.md"), "# Demo\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let first_commit = git(&work, &["rev-parse", "HEAD"]);

    std::fs::write(work.join("README.md"), "# Demo\n\nA tiny project.\n").unwrap();
    std::fs::write(work.join("requirements.txt"), "").unwrap();
    std::fs::write(work.join(".gitignore"), "ignored.txt\n*.log\n").unwrap();
    std::fs::create_dir(work.join("src")).unwrap();
    std::fs::write(
        work.join("src/app.py"),
        "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
    )
    .unwrap();
    std::fs::write(work.join("src/__init__.py"), "").unwrap();
    std::fs::write(
        work.join("test_app.py"),
        "from src.app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    )
    .unwrap();
    std::fs::write(work.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    std::fs::write(work.join("data.bin"), [0u8, 1, 2, 3, 255]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc", work.join("escape_dir")).unwrap();
    std::os::unix::fs::symlink("src/app.py", work.join("app_link")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "second"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);

    let bare = dir.path().join("remote.git");
    git(
        dir.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    // A hook in the remote must never run on the host.
    let hook = bare.join("hooks/post-checkout");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ntouch {}\n",
            dir.path().join("HOOK_RAN").display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut config = SandboxConfig::new(dir.path().join("sessions"));
    configure(&mut config);
    let sandbox = Sandbox::new(config).await.unwrap();
    Fixture {
        sandbox,
        dir,
        bare,
        commit,
        first_commit,
    }
}

/// What a finished command produced.
#[derive(Debug)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub exit: ExitInfo,
}

pub fn spec(command: &str) -> ExecSpec {
    ExecSpec {
        command: command.to_owned(),
        ..Default::default()
    }
}

pub fn spec_timeout(command: &str, seconds: u64) -> ExecSpec {
    ExecSpec {
        command: command.to_owned(),
        timeout: Some(Duration::from_secs(seconds)),
        ..Default::default()
    }
}

/// Runs a command to its end.
pub async fn run(sandbox: &Sandbox, session: &str, spec: ExecSpec) -> Ran {
    let mut events = sandbox.exec(session, spec).await.unwrap();
    let (mut stdout, mut stderr) = (BytesMut::new(), BytesMut::new());
    while let Some(event) = events.next().await {
        match event {
            ExecEvent::Stdout(bytes) => {
                stdout.extend_from_slice(&bytes);
            }
            ExecEvent::Stderr(bytes) => {
                stderr.extend_from_slice(&bytes);
            }
            ExecEvent::Exit(exit) => {
                assert!(events.next().await.is_none(), "exit must be the last event");
                return Ran {
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                    exit,
                };
            }
        }
    }
    panic!("stream ended without an exit event");
}

/// The sessions under a session root, and sessions being made (`.staging-`) or removed
/// (`.trash-`): everything but the sandbox's own files (checkout cache, seccomp program).
pub fn session_entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".cache" && name != ".volumes" && !name.starts_with(".seccomp-"))
        .collect();
    names.sort();
    names
}

/// Waits until the sessions destroyed under `root` are removed (that happens in the background).
pub async fn wait_removed(root: &Path) {
    while session_entries(root)
        .iter()
        .any(|name| name.starts_with(".trash-"))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Host processes whose command line contains `needle` (zombies have none).
pub fn host_processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // Skip bubblewrap itself, whose arguments contain the whole command.
        if cmdline.contains(needle) && !cmdline.contains("bwrap") && !cmdline.contains("/bin/sh -c")
        {
            found.push(pid);
        }
    }
    found
}
