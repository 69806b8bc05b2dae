use super::*;

#[test]
fn accepts_repository_ids() {
    assert_eq!(repository_id("acme/web-app").unwrap(), ("acme", "web-app"));
    assert_eq!(
        repository_id("A.b_c/.github").unwrap(),
        ("A.b_c", ".github")
    );
}

#[test]
fn refuses_bad_repository_ids() {
    for bad in [
        "", "acme", "/x", "x/", "a/b/c", "../x", "a/..", "a/.", "a/b..c", "a b/c", "a/b\n", "a/ü",
        "a\\b/c",
    ] {
        let err = repository_id(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidRepositoryId { .. }),
            "{bad:?} gave {err:?}"
        );
        assert!(err.to_string().contains("invalid repository id"), "{err}");
    }
    let long = format!("a/{}", "x".repeat(101));
    assert!(repository_id(&long).is_err());
}

#[test]
fn accepts_branch_names() {
    for good in [
        "main",
        "coding-assistant/20240101-add-login",
        "feature/x.y",
        "v1.0",
        "a@b",
    ] {
        branch(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
}

#[test]
fn refuses_bad_branch_names() {
    for bad in [
        "",
        "-x",
        "@",
        "HEAD",
        "a..b",
        "a@{1}",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a\u{7f}",
        "a\tb",
        "a.",
        "/a",
        "a/",
        "a//b",
        ".a",
        "a/.b",
        "a.lock",
        "a/b.lock/c",
        &"x".repeat(256),
    ] {
        let err = branch(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidBranch { .. }),
            "{bad:?} gave {err:?}"
        );
    }
    assert_eq!(
        branch("a b").unwrap_err().to_string(),
        "invalid branch name \"a b\": must not contain spaces"
    );
}

#[test]
fn accepts_paths() {
    for good in [
        "a.txt",
        "src/lib.rs",
        ".github/workflows/ci.yml",
        "a/.gitignore",
        "x..y",
    ] {
        path(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
}

#[test]
fn refuses_bad_paths() {
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/./b",
        ".",
        "a//b",
        "a/",
        ".git/config",
        "sub/.GIT/hooks/x",
        ".Git",
        "a\nb",
        "a\0b",
        "a\\b",
    ] {
        let err = path(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidPath { .. }),
            "{bad:?} gave {err:?}"
        );
    }
    assert_eq!(
        path("../x").unwrap_err().to_string(),
        "invalid path \"../x\": must not contain `.` or `..` parts"
    );
}

#[test]
fn checks_shas_and_text() {
    sha("abcd").unwrap();
    sha(&"0123456789abcdef".repeat(4)).unwrap();
    for bad in ["", "abc", "xyz0", "HEAD", "--all", &"a".repeat(65)] {
        assert!(matches!(sha(bad), Err(Error::InvalidSha { .. })), "{bad:?}");
    }
    text("title", "ok").unwrap();
    assert_eq!(
        text("title", "  ").unwrap_err().to_string(),
        "invalid title: must not be empty"
    );
    assert!(text("title", "a\0").is_err());
}
