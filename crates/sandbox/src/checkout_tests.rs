use pretty_assertions::assert_eq;

use super::*;

#[test]
fn keys_are_stable_and_distinct() {
    assert_eq!(key(b"/srv/a.git"), key(b"/srv/a.git"));
    assert_ne!(key(b"/srv/a.git"), key(b"/srv/b.git"));
    assert_eq!(key(b"").len(), 32);
}

#[tokio::test]
async fn eviction_keeps_linked_and_recent_checkouts() {
    let root = tempfile::tempdir().unwrap();
    let checkouts = Checkouts::open(root.path()).unwrap();
    let cache = root.path().join(CACHE_DIR);
    let count = CAPACITY + 4;
    let start = SystemTime::now() - std::time::Duration::from_secs(1000);
    for index in 0..count {
        let entry = cache.join(format!("repo-{index:02}"));
        std::fs::create_dir_all(entry.join("source")).unwrap();
        let modified = start + std::time::Duration::from_secs(index as u64);
        fs::File::open(&entry)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }
    // A session links to the oldest.
    std::fs::create_dir(root.path().join("session")).unwrap();
    std::os::unix::fs::symlink(
        cache.join("repo-00/source"),
        root.path().join("session/source"),
    )
    .unwrap();
    checkouts.evict();
    let mut left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    left.sort();
    let mut expected = vec!["repo-00".to_owned()];
    expected.extend((4..count).map(|index| format!("repo-{index:02}")));
    assert_eq!(left, expected);
}
