use pretty_assertions::assert_eq;

use super::*;

#[test]
fn repo_urls_are_checked() {
    assert!(validate_repo_url("/srv/forge/repo.git").is_ok());
    assert!(validate_repo_url("https://example.com/a/b.git").is_ok());
    let reason = |url: &str| match validate_repo_url(url) {
        Err(Error::InvalidRepoUrl { reason, .. }) => reason,
        other => panic!("{url}: {other:?}"),
    };
    assert_eq!(reason(""), "is empty");
    assert_eq!(
        reason("--upload-pack=touch /tmp/x"),
        "must not start with `-`"
    );
    assert_eq!(
        reason("ext::sh -c touch% /tmp/pwned"),
        "transport helpers (`ext::`, `<helper>::`) are not allowed"
    );
    assert_eq!(
        reason("fd::3"),
        "transport helpers (`ext::`, `<helper>::`) are not allowed"
    );
    assert_eq!(reason("/repo\n.git"), "contains control characters");
}

#[test]
fn commit_shas_are_checked() {
    assert_eq!(validate_commit_sha("ABCDEF1").unwrap(), "abcdef1");
    for bad in ["", "abc", "xyz1234", "abcdef1 ", "--all", &"a".repeat(65)] {
        assert!(
            matches!(
                validate_commit_sha(bad),
                Err(Error::InvalidCommitSha { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn session_ids_must_be_uuids() {
    assert!(matches!(
        parse_id("../etc"),
        Err(Error::InvalidSessionId { .. })
    ));
    let id = Uuid::new_v4();
    assert_eq!(parse_id(&id.to_string()).unwrap(), id);
}

#[test]
fn unknown_sessions_are_not_found() {
    let root = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    assert!(
        matches!(lookup(root.path(), &id.to_string()), Err(Error::SessionNotFound { id: got }) if got == id)
    );
    // A directory without metadata (e.g. created by hand) is not a session either.
    std::fs::create_dir(root.path().join(id.to_string())).unwrap();
    assert!(matches!(
        lookup(root.path(), &id.to_string()),
        Err(Error::SessionNotFound { .. })
    ));
}

#[test]
fn sweep_removes_leftovers_only() {
    let root = tempfile::tempdir().unwrap();
    for name in [".staging-x", ".trash-y", "keep"] {
        std::fs::create_dir_all(root.path().join(name).join("sub")).unwrap();
    }
    sweep(root.path());
    let mut left: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["keep"]);
}
