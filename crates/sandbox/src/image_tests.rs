use pretty_assertions::assert_eq;

use super::*;

#[test]
fn detects_from_marker_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(detect_image(dir.path()), BASE_IMAGE);
    std::fs::write(dir.path().join("go.mod"), "module x\n").unwrap();
    assert_eq!(detect_image(dir.path()), "coding-assistant/go");
    std::fs::write(dir.path().join("package.json"), "{}").unwrap();
    assert_eq!(detect_image(dir.path()), "coding-assistant/node");
    std::fs::write(dir.path().join("pyproject.toml"), "").unwrap();
    assert_eq!(
        resolve_image("", dir.path()).unwrap(),
        "coding-assistant/python"
    );
}

#[test]
fn a_directory_named_like_a_marker_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pom.xml")).unwrap();
    assert_eq!(detect_image(dir.path()), BASE_IMAGE);
}

#[test]
fn explicit_images_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        resolve_image("coding-assistant/node:18", dir.path()).unwrap(),
        "coding-assistant/node:18"
    );
    assert_eq!(
        resolve_image("coding-assistant/java", dir.path()).unwrap(),
        "coding-assistant/java"
    );
    for bad in [
        "ubuntu:22.04",
        "coding-assistant/rust",
        "coding-assistant/node:",
        "coding-assistant/node:a b",
    ] {
        match resolve_image(bad, dir.path()) {
            Err(Error::UnknownImage { image, known }) => {
                assert_eq!(image, bad);
                assert!(known.contains("coding-assistant/python"), "{known}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}
