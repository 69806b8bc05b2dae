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

/// The one instance directory under a controller's `cap-sandbox`.
fn instance_dir(root: &std::path::Path, controller: &str) -> String {
    let names: Vec<String> = std::fs::read_dir(root.join(controller).join(PARENT))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

#[test]
fn a_root_without_cgroups_is_refused_with_the_cause() {
    let root = tempfile::tempdir().unwrap();
    let error = Hierarchy::detect(root.path(), "0123456789abcdef0123456789abcdef").unwrap_err();
    assert!(matches!(error, Error::CgroupsUnavailable { .. }), "{error}");
    assert!(error.to_string().contains("memory"), "{error}");
}

#[test]
fn a_v1_group_gets_every_limit_written() {
    let root = fake_v1();
    let hierarchy = Hierarchy::detect(root.path(), "0123456789abcdef0123456789abcdef").unwrap();
    let instance = instance_dir(root.path(), "memory");
    let limits = Limits {
        cpu_millis: 1500,
        memory_bytes: 1 << 20,
        max_processes: 7,
        disk_bytes: 1 << 30,
    };
    let group = hierarchy.create("one", &limits).unwrap();
    let read = |path: &str| std::fs::read_to_string(root.path().join(path)).unwrap();
    assert_eq!(
        read(&format!(
            "memory/cap-sandbox/{instance}/one/memory.limit_in_bytes"
        )),
        "1048576"
    );
    assert_eq!(
        read(&format!("pids/cap-sandbox/{instance}/one/pids.max")),
        "7"
    );
    assert_eq!(
        read(&format!(
            "cpu,cpuacct/cap-sandbox/{instance}/one/cpu.cfs_quota_us"
        )),
        "150000"
    );
    assert_eq!(
        read(&format!(
            "cpu,cpuacct/cap-sandbox/{instance}/one/cpu.cfs_period_us"
        )),
        "100000"
    );
    assert_eq!(
        group.join_files(),
        ["pids", "memory", "cpu,cpuacct"].map(|controller| root
            .path()
            .join(format!("{controller}/cap-sandbox/{instance}/one/tasks")))
    );
    assert_eq!(group.limit_hits(), vec![]);
    // The kernel's counters, as it writes them.
    std::fs::write(
        root.path().join(format!(
            "memory/cap-sandbox/{instance}/one/memory.oom_control"
        )),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )
    .unwrap();
    std::fs::write(
        root.path()
            .join(format!("pids/cap-sandbox/{instance}/one/pids.events")),
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

#[test]
fn instances_are_named_by_root_and_process() {
    let key = "0123456789abcdef0123456789abcdef";
    let name = instance_name(key);
    let pid = std::process::id().to_string();
    assert!(name.starts_with(&format!("{key}-{pid}-")), "{name}");
    // Ours, a live process's and unrelated names are not stale.
    assert!(!is_stale_instance(&name));
    assert!(!is_stale_instance(&format!("{key}-1-x")));
    assert!(!is_stale_instance(&format!("{key}-notapid-x")));
    assert!(!is_stale_instance("short-99999999-x"));
    assert!(!is_stale_instance(&format!("{key}-99999999")));
    // A process that no longer exists (beyond any pid_max), whatever its root.
    assert!(is_stale_instance(&format!("{key}-99999999-x")));
    assert!(is_stale_instance(
        "fedcba9876543210fedcba9876543210-99999999-y"
    ));
}

#[test]
fn starting_sweeps_only_the_instances_of_processes_that_are_gone() {
    let root = fake_v1();
    let top = root.path().join("memory").join(PARENT);
    let key = "0123456789abcdef0123456789abcdef";
    let dead = format!("{key}-99999999-dead");
    let alive = format!("{key}-1-alive");
    for name in [dead.as_str(), alive.as_str(), "unrelated"] {
        std::fs::create_dir_all(top.join(name).join("group")).unwrap();
    }
    let hierarchy = Hierarchy::detect(root.path(), key).unwrap();
    let ours = format!("{key}-{}-", std::process::id());
    let mut left: Vec<String> = std::fs::read_dir(&top)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with(&ours))
        .collect();
    left.sort();
    assert_eq!(left, [alive.as_str(), "unrelated"]);
    // The instance's own parents go when it is done.
    hierarchy.remove_instance();
    assert!(std::fs::read_dir(&top).unwrap().all(|entry| {
        !entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(&ours)
    }));
}
