use super::*;

#[test]
fn normalize_accepts_relative_paths() {
    assert_eq!(normalize("src/main.py", false).unwrap(), "src/main.py");
    assert_eq!(normalize("./src//a/./b.py ", false).unwrap(), "src/a/b.py");
    assert_eq!(normalize("", true).unwrap(), "");
    assert_eq!(normalize(".", true).unwrap(), "");
    assert_eq!(normalize("dir/", true).unwrap(), "dir");
    assert_eq!(normalize(".gitignore", false).unwrap(), ".gitignore");
}

#[test]
fn normalize_refuses_escapes() {
    for (path, reason) in [
        ("/etc/passwd", "absolute"),
        ("../x", "`..`"),
        ("a/../../x", "`..`"),
        (".git/config", "`.git`"),
        ("sub/.git/hooks/pre-commit", "`.git`"),
        ("a\0b", "NUL"),
        ("", "workspace root"),
        ("./", "workspace root"),
    ] {
        let err = normalize(path, false).unwrap_err();
        assert!(err.contains(reason), "{path:?}: {err}");
        assert!(err.starts_with("invalid path"), "{err}");
    }
}

#[test]
fn within_and_parent() {
    assert!(is_within("src/a.py", ""));
    assert!(is_within("src/a.py", "src"));
    assert!(is_within("src", "src"));
    assert!(!is_within("srcx/a.py", "src"));
    assert_eq!(parent("src/a/b.py"), "src/a");
    assert_eq!(parent("b.py"), "");
}
