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

#[test]
fn dockerfile_bases_name_the_toolchain() {
    let cases = [
        ("FROM python:3.12-slim\n", Some("coding-assistant/python")),
        (
            "FROM docker.io/library/node:20-alpine\n",
            Some("coding-assistant/node"),
        ),
        (
            "FROM golang:1.22 AS build\nRUN go build\nFROM gcr.io/distroless/base\n",
            Some("coding-assistant/go"),
        ),
        (
            "from --platform=linux/amd64 openjdk:17\n",
            Some("coding-assistant/java"),
        ),
        (
            "FROM eclipse-temurin:21-jdk@sha256:abc\n",
            Some("coding-assistant/java"),
        ),
        (
            "FROM maven:3-eclipse-temurin-17 AS b\n",
            Some("coding-assistant/java"),
        ),
        (
            "FROM localhost:5000/team/gradle:8\n",
            Some("coding-assistant/java"),
        ),
        // A continuation line, a comment, and a later stage that wins.
        (
            "# FROM golang\nFROM \\\n  node:20 AS web\nFROM python:3 AS app\n",
            Some("coding-assistant/python"),
        ),
        // A stage built from an earlier one counts as nothing new.
        (
            "FROM node:20 AS deps\nFROM deps\n",
            Some("coding-assistant/node"),
        ),
        ("FROM ubuntu:24.04\nRUN apt-get install -y python3\n", None),
        ("FROM ${BASE}\n", None),
        ("RUN FROM python\n", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(image_from_dockerfile(text), expected, "{text:?}");
    }
}

#[test]
fn a_dockerfile_wins_over_markers_and_unknown_bases_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), "{}").unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM golang:1.22\n").unwrap();
    assert_eq!(detect_image(dir.path()), "coding-assistant/go");
    std::fs::write(dir.path().join("Dockerfile"), "FROM alpine\n").unwrap();
    assert_eq!(detect_image(dir.path()), "coding-assistant/node");
    std::fs::remove_file(dir.path().join("Dockerfile")).unwrap();
    std::fs::write(dir.path().join("Containerfile"), "FROM python:3\n").unwrap();
    assert_eq!(detect_image(dir.path()), "coding-assistant/python");
}

#[test]
fn an_untrusted_dockerfile_is_not_followed_nor_read_without_bound() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("Dockerfile"), "FROM golang\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A symlink pointing out of the tree is not followed.
    std::os::unix::fs::symlink(
        outside.path().join("Dockerfile"),
        dir.path().join("Dockerfile"),
    )
    .unwrap();
    assert_eq!(detect_image(dir.path()), BASE_IMAGE);
    std::fs::remove_file(dir.path().join("Dockerfile")).unwrap();
    // A directory of that name is not a Dockerfile.
    std::fs::create_dir(dir.path().join("Dockerfile")).unwrap();
    assert_eq!(detect_image(dir.path()), BASE_IMAGE);
    std::fs::remove_dir(dir.path().join("Dockerfile")).unwrap();
    // A FIFO does not block detection.
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("Dockerfile"))
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(detect_image(dir.path()), BASE_IMAGE);
    std::fs::remove_file(dir.path().join("Dockerfile")).unwrap();
    // Only the start of the file is read: a FROM beyond the bound is not seen.
    let padding = "# padding\n".repeat(MAX_DOCKERFILE_BYTES as usize / 10 + 1);
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("{padding}FROM python:3\n"),
    )
    .unwrap();
    assert_eq!(detect_image(dir.path()), BASE_IMAGE);
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM python:3\n{padding}"),
    )
    .unwrap();
    assert_eq!(detect_image(dir.path()), "coding-assistant/python");
}
