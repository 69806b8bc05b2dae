//! The hard disk limit: each workspace on its own loop-mounted filesystem (the tests run as
//! root, as the service does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cap_sandbox::{DiskLimit, LimitHit, Sandbox, SandboxConfig};
use pretty_assertions::assert_eq;

use super::support::{fixture_with, run, spec, spec_timeout};

const LIMIT: u64 = 64 << 20;

/// Mount points (as the kernel lists them) at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(str::to_owned))
        .filter(|mount_point| mount_point.starts_with(&prefix))
        .collect()
}

/// Loop devices whose backing file is at or below `dir`.
fn loops_under(dir: &Path) -> Vec<String> {
    let prefix = dir.canonicalize().unwrap().display().to_string();
    let output = Command::new("losetup")
        .args(["--list", "--noheadings", "--output", "NAME,BACK-FILE"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&prefix))
        .map(str::to_owned)
        .collect()
}

/// The filesystem directory (`<root>/.volumes/<name>`) a session's workspace lives on.
fn volume_of(root: &Path, id: &str) -> PathBuf {
    let target = std::fs::read_link(root.join(id).join("workspace")).unwrap();
    target.parent().unwrap().to_path_buf()
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn many_small_files_written_fast_end_with_enospc_at_the_limit() {
    let fx = fixture_with(|config| config.limits.disk_bytes = LIMIT).await;
    let id = fx.session().await;
    // 100 KB files, as fast as the shell goes, up to twice the limit; then one large file.
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            "mkdir fill && i=0; while [ $i -lt 1400 ]; do head -c 100000 /dev/zero > fill/f$i || break; i=$((i+1)); done; \
             echo files=$i; head -c 100000000 /dev/zero > /workspace/big; echo big=$?",
            120,
        ),
    )
    .await;
    let files: u64 = ran
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("files="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(files < 1400 && files * 100_000 < LIMIT, "{ran:?}");
    assert!(ran.stdout.contains("big=1"), "{ran:?}");
    assert!(
        ran.stderr.contains("No space left on device"),
        "{}",
        ran.stderr
    );
    // The command ended by itself (no kill), and the note says why its writes failed.
    assert_eq!(ran.exit.exit_code, 0, "{ran:?}");
    assert_eq!(ran.exit.limits_hit, vec![LimitHit::Disk]);
    assert!(
        ran.stderr.contains("no space left on device"),
        "{}",
        ran.stderr
    );
    // What the workspace holds, as the host sees it, never exceeded the limit.
    let used = Command::new("du")
        .args(["-s", "--block-size=1"])
        .arg(fx.root().join(&id).join("workspace/"))
        .output()
        .unwrap();
    let used: u64 = String::from_utf8_lossy(&used.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(used <= LIMIT, "{used}");
    // Freeing space makes the workspace writable again.
    let ran = run(
        &fx.sandbox,
        &id,
        spec("rm -rf fill big && echo ok > after && cat after"),
    )
    .await;
    assert_eq!(ran.stdout, "ok\n", "{ran:?}");
    assert_eq!(ran.exit.limits_hit, Vec::<LimitHit>::new());
}

#[tokio::test]
async fn destroy_leaves_nothing_of_the_session_and_the_sandbox_nothing_mounted() {
    let fx = fixture_with(|config| {
        config.limits.disk_bytes = LIMIT;
        config.warm_volumes = 1;
    })
    .await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec("head -c 1000000 /dev/urandom > secret"),
    )
    .await;
    assert_eq!(ran.exit.exit_code, 0, "{ran:?}");
    let volume = volume_of(&fx.root(), &id);
    let image = volume.with_extension("img");
    assert!(mounts_under(&fx.root()).contains(&volume.display().to_string()));
    fx.sandbox.destroy_session(&id).await.unwrap();
    // Either the filesystem is gone (unmounted, detached, deleted) or, the pool being short,
    // emptied for reuse; never does the session's data stay.
    let ws = volume.join("ws");
    wait_until(|| {
        !image.exists() || std::fs::read_dir(&ws).is_ok_and(|mut dir| dir.next().is_none())
    })
    .await;
    if !image.exists() {
        let volume_text = volume.display().to_string();
        assert!(!mounts_under(&fx.root()).contains(&volume_text));
        assert!(!volume.exists());
        assert!(
            loops_under(&fx.root())
                .iter()
                .all(|line| !line.contains(&volume_text))
        );
    }
    // Dropping the sandbox unmounts and deletes the ready filesystems (once the destroy's
    // background work, which holds them too, is done).
    let root = fx.root();
    let Fixture { sandbox, dir, .. } = fx;
    drop(sandbox);
    wait_until(|| mounts_under(&root).is_empty()).await;
    assert_eq!(loops_under(&root), Vec::<String>::new());
    let images: Vec<_> = std::fs::read_dir(root.join(".volumes"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(images, Vec::<std::ffi::OsString>::new());
    drop(dir);
}

use super::support::Fixture;

#[tokio::test]
async fn a_restart_sweeps_a_crashed_instances_filesystems_and_remounts_live_sessions() {
    let fx = fixture_with(|config| config.limits.disk_bytes = LIMIT).await;
    let id = fx.session().await;
    let ran = run(&fx.sandbox, &id, spec("echo kept > note")).await;
    assert_eq!(ran.exit.exit_code, 0);
    let session_volume = volume_of(&fx.root(), &id);
    // What a crashed instance (a pid that is gone) left: a mounted ready filesystem and an
    // image attached to a loop device without a mount.
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let volumes = fx.root().join(".volumes");
    let leftover = volumes.join(format!("{dead_pid}-crashed-1"));
    let attached = volumes.join(format!("{dead_pid}-crashed-2"));
    for volume in [&leftover, &attached] {
        let image = volume.with_extension("img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(LIMIT)
            .unwrap();
        let status = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "^has_journal"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::create_dir(volume).unwrap();
    }
    let status = Command::new("mount")
        .args(["-o", "loop"])
        .arg(leftover.with_extension("img"))
        .arg(&leftover)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("losetup")
        .args(["--find"])
        .arg(attached.with_extension("img"))
        .status()
        .unwrap();
    assert!(status.success());
    // The instance goes (as at a shutdown: its session's filesystem is unmounted, its image
    // kept) and a new one starts over the same root.
    let root = fx.root();
    let Fixture { sandbox, dir, .. } = fx;
    drop(sandbox);
    assert!(!mounts_under(&root).contains(&session_volume.display().to_string()));
    let mut config = SandboxConfig::new(&root);
    config.limits.disk_bytes = LIMIT;
    config.disk_limit = DiskLimit::Loop;
    let restarted = Sandbox::new(config).await.unwrap();
    for volume in [&leftover, &attached] {
        let text = volume.display().to_string();
        assert!(
            !volume.exists() && !volume.with_extension("img").exists(),
            "{text}"
        );
        assert!(!mounts_under(&root).contains(&text));
        assert!(loops_under(&root).iter().all(|line| !line.contains(&text)));
    }
    // The live session's filesystem is kept and mounted again on use.
    let ran = run(&restarted, &id, spec("cat note")).await;
    assert_eq!(ran.stdout, "kept\n", "{ran:?}");
    assert!(mounts_under(&root).contains(&session_volume.display().to_string()));
    drop(restarted);
    assert_eq!(mounts_under(&root), Vec::<String>::new());
    drop(dir);
}

#[tokio::test]
async fn poll_mode_keeps_the_workspace_a_plain_directory() {
    let fx = fixture_with(|config| config.disk_limit = DiskLimit::Poll).await;
    let id = fx.session().await;
    let workspace = fx.root().join(&id).join("workspace");
    assert!(workspace.symlink_metadata().unwrap().is_dir());
    assert!(!fx.root().join(".volumes").exists());
    let ran = run(&fx.sandbox, &id, spec("echo hi > made && cat made")).await;
    assert_eq!(ran.stdout, "hi\n");
}
