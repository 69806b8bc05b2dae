use pretty_assertions::assert_eq;

use super::*;

fn reason(path: &str, allow_root: bool) -> &'static str {
    match RelPath::parse(path, allow_root) {
        Err(Error::InvalidPath {
            reason,
            path: given,
        }) => {
            assert_eq!(given, path);
            reason
        }
        other => panic!("expected InvalidPath for {path:?}, got {other:?}"),
    }
}

#[test]
fn normal_paths_are_normalised() {
    let path = RelPath::parse("src//./lib.rs", false).unwrap();
    assert_eq!(path.components(), ["src", "lib.rs"]);
    assert_eq!(path.as_string(), "src/lib.rs");
    assert_eq!(path.split_last(), Some((&["src".to_owned()][..], "lib.rs")));
}

#[test]
fn root_only_when_allowed() {
    assert!(RelPath::parse("", true).unwrap().is_root());
    assert!(RelPath::parse(".", true).unwrap().is_root());
    assert_eq!(RelPath::parse(".", true).unwrap().as_string(), ".");
    assert_eq!(reason("", false), "names the workspace root, not a file");
    assert_eq!(reason("./", false), "names the workspace root, not a file");
}

#[test]
fn escapes_are_refused() {
    assert_eq!(reason("../etc/passwd", false), "`..` is not allowed");
    assert_eq!(reason("a/../../b", false), "`..` is not allowed");
    assert_eq!(
        reason("/etc/passwd", false),
        "absolute paths are not allowed; give a path relative to the workspace"
    );
    assert_eq!(reason("a\0b", false), "contains a NUL byte");
    assert_eq!(reason(&"a".repeat(5000), false), "longer than 4096 bytes");
}

#[test]
fn git_dir_is_refused_in_any_case() {
    let expected = "`.git` and everything under it is not accessible";
    assert_eq!(reason(".git", false), expected);
    assert_eq!(reason(".git/hooks/pre-commit", false), expected);
    assert_eq!(reason("sub/.GIT/config", true), expected);
    // A file merely named like it is fine.
    assert!(RelPath::parse(".gitignore", false).is_ok());
    assert!(RelPath::parse("a/.github/ci.yml", false).is_ok());
}
