use pretty_assertions::assert_eq;

use super::*;

#[test]
fn modes_parse_and_unknown_ones_are_named() {
    assert_eq!("auto".parse::<DiskLimit>().unwrap(), DiskLimit::Auto);
    assert_eq!("loop".parse::<DiskLimit>().unwrap(), DiskLimit::Loop);
    assert_eq!("poll".parse::<DiskLimit>().unwrap(), DiskLimit::Poll);
    let error = "quota".parse::<DiskLimit>().unwrap_err().to_string();
    assert!(
        error.contains("\"quota\"") && error.contains("auto, loop or poll"),
        "{error}"
    );
}

#[test]
fn only_dead_instances_and_foreign_names_count_as_not_live() {
    let ours = format!("{}-{}-0", std::process::id(), "not-registered");
    assert!(!is_live(&ours));
    live_instances().insert("registered".to_owned());
    assert!(is_live(&format!("{}-registered-0", std::process::id())));
    live_instances().remove("registered");
    // pid 1 always runs.
    assert!(is_live("1-any-0"));
    assert!(!is_live("not-a-pid"));
}

/// A maker of 16 MiB filesystems under a fresh directory (the tests run as root).
fn maker(dir: &Path) -> Maker {
    let dir = dir.join(VOLUMES_DIR);
    fs::create_dir(&dir).unwrap();
    Maker {
        dir,
        tools: Tools::find().unwrap(),
        bytes: 16 << 20,
        instance: "test".to_owned(),
        fresh_inodes: Arc::default(),
    }
}

#[test]
fn a_wiped_filesystem_is_reused_only_when_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let maker = maker(dir.path());
    let name = maker.make().unwrap();
    let ws = maker.dir.join(&name).join(WORKSPACE_DIR);
    fs::create_dir_all(ws.join("a/b")).unwrap();
    fs::write(ws.join("a/b/secret"), vec![7u8; 1 << 20]).unwrap();
    assert!(maker.wipe(&name));
    assert_eq!(fs::read_dir(&ws).unwrap().count(), 0);
    // A file a command still holds open keeps its inode: not fresh, not reused.
    let held = fs::File::create(ws.join("held")).unwrap();
    assert!(!maker.wipe(&name));
    drop(held);
    assert!(maker.wipe(&name));
    maker.remove(&name);
    assert!(!maker.dir.join(&name).exists());
    assert!(!maker.image(&name).exists());
    // Not mounted (gone): never reused.
    assert!(!maker.wipe(&name));
}
