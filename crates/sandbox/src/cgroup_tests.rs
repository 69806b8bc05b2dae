use pretty_assertions::assert_eq;

use super::*;

fn fake_v1() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for controller in ["memory", "pids", "cpu,cpuacct"] {
        std::fs::create_dir(root.path().join(controller)).unwrap();
        std::fs::write(root.path().join(controller).join("cgroup.procs"), "").unwrap();
    }
    root
}

#[test]
fn a_root_without_cgroups_is_refused_with_the_cause() {
    let root = tempfile::tempdir().unwrap();
    let error = Hierarchy::detect(root.path()).unwrap_err();
    assert!(matches!(error, Error::CgroupsUnavailable { .. }), "{error}");
    assert!(error.to_string().contains("memory"), "{error}");
}

#[test]
fn a_v1_group_gets_every_limit_written() {
    let root = fake_v1();
    let hierarchy = Hierarchy::detect(root.path()).unwrap();
    let limits = Limits {
        cpu_millis: 1500,
        memory_bytes: 1 << 20,
        max_processes: 7,
        disk_bytes: 1 << 30,
    };
    let group = hierarchy.create("one", &limits).unwrap();
    let read = |path: &str| std::fs::read_to_string(root.path().join(path)).unwrap();
    assert_eq!(
        read("memory/cap-sandbox/one/memory.limit_in_bytes"),
        "1048576"
    );
    assert_eq!(read("pids/cap-sandbox/one/pids.max"), "7");
    assert_eq!(
        read("cpu,cpuacct/cap-sandbox/one/cpu.cfs_quota_us"),
        "150000"
    );
    assert_eq!(
        read("cpu,cpuacct/cap-sandbox/one/cpu.cfs_period_us"),
        "100000"
    );
    assert_eq!(group.procs_files().len(), 3);
    assert_eq!(group.limit_hits(), vec![]);
    // The kernel's counters, as it writes them.
    std::fs::write(
        root.path()
            .join("memory/cap-sandbox/one/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("pids/cap-sandbox/one/pids.events"),
        "max 5\n",
    )
    .unwrap();
    assert_eq!(
        group.limit_hits(),
        vec![LimitHit::Memory, LimitHit::Processes]
    );
    // The same name twice is refused, not shared.
    assert!(hierarchy.create("one", &limits).is_err());
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let limits = Limits::default();
    assert_eq!(limits.cpu_millis, 2000);
    assert_eq!(limits.memory_bytes, 4 * 1024 * 1024 * 1024);
    assert_eq!(limits.disk_bytes, 10 * 1024 * 1024 * 1024);
}
