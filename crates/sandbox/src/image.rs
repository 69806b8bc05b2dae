//! Images: which toolchain a session is meant for.
//!
//! The local backend runs every image on the host's read-only system directories; the image
//! is recorded with the session so that the toolchain mounts (and the Kubernetes backend's pod
//! image) can be chosen from it.
//!
//! Detection reads the repository's own `Dockerfile` first: the base images of its `FROM`
//! lines name the toolchain (`golang:1.22 AS build` then `distroless` is a Go project). The
//! file is untrusted: it is only read, at most [`MAX_DOCKERFILE_BYTES`] of it, and only when
//! it is a regular file at the root of the tree (a symlink is not followed anywhere). Without
//! a Dockerfile, or when none of its bases is known, the toolchain's marker files decide.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The image used when a repository shows no known toolchain.
pub const BASE_IMAGE: &str = "coding-assistant/base";

/// The images the sandbox knows, without tag. A request may add a tag (`coding-assistant/node:18`).
pub const KNOWN_IMAGES: [&str; 5] = [
    BASE_IMAGE,
    "coding-assistant/python",
    "coding-assistant/node",
    "coding-assistant/go",
    "coding-assistant/java",
];

/// Files at the repository root that identify a toolchain, first match wins.
const MARKERS: [(&str, &str); 10] = [
    ("pyproject.toml", "coding-assistant/python"),
    ("setup.py", "coding-assistant/python"),
    ("setup.cfg", "coding-assistant/python"),
    ("requirements.txt", "coding-assistant/python"),
    ("package.json", "coding-assistant/node"),
    ("go.mod", "coding-assistant/go"),
    ("pom.xml", "coding-assistant/java"),
    ("build.gradle", "coding-assistant/java"),
    ("build.gradle.kts", "coding-assistant/java"),
    ("Pipfile", "coding-assistant/python"),
];

/// Dockerfiles looked for at the root of the tree, first found wins.
const DOCKERFILES: [&str; 2] = ["Dockerfile", "Containerfile"];

/// The most of a Dockerfile read; `FROM` lines beyond are not seen.
pub(crate) const MAX_DOCKERFILE_BYTES: u64 = 64 * 1024;

/// Base images (the last component of their name, without tag) and the image they call for.
const BASES: [(&str, &str); 10] = [
    ("python", "coding-assistant/python"),
    ("pypy", "coding-assistant/python"),
    ("node", "coding-assistant/node"),
    ("golang", "coding-assistant/go"),
    ("openjdk", "coding-assistant/java"),
    ("eclipse-temurin", "coding-assistant/java"),
    ("amazoncorretto", "coding-assistant/java"),
    ("maven", "coding-assistant/java"),
    ("gradle", "coding-assistant/java"),
    ("sapmachine", "coding-assistant/java"),
];

/// The image for a session: `requested` when given (and known), else detected from the files
/// at the root of the checkout `tree`.
pub fn resolve_image(requested: &str, tree: &Path) -> Result<String> {
    if requested.is_empty() {
        return Ok(detect_image(tree).to_owned());
    }
    let unknown = || Error::UnknownImage {
        image: requested.to_owned(),
        known: KNOWN_IMAGES.join(", "),
    };
    let (name, tag) = match requested.split_once(':') {
        Some((name, tag)) => (name, Some(tag)),
        None => (requested, None),
    };
    if !KNOWN_IMAGES.contains(&name) {
        return Err(unknown());
    }
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 64
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(unknown());
        }
    }
    Ok(requested.to_owned())
}

/// The image whose toolchain the repository at `tree` calls for: from its Dockerfile's base
/// images when one is known, else from the marker files at its root.
pub fn detect_image(tree: &Path) -> &'static str {
    if let Some(image) = DOCKERFILES
        .iter()
        .find_map(|name| read_dockerfile(&tree.join(name)))
        .and_then(|text| image_from_dockerfile(&text))
    {
        return image;
    }
    MARKERS
        .iter()
        .find(|(file, _)| {
            tree.join(file)
                .symlink_metadata()
                .is_ok_and(|meta| meta.is_file())
        })
        .map_or(BASE_IMAGE, |(_, image)| image)
}

/// The start of a Dockerfile when it is a regular file (never through a symlink); `None`
/// when there is none or it cannot be read.
fn read_dockerfile(path: &Path) -> Option<String> {
    use rustix::fs::{Mode, OFlags};
    // Neither through a symlink (which could point out of the tree) nor from a FIFO (which
    // would block).
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = std::fs::File::from(rustix::fs::open(path, flags, Mode::empty()).ok()?);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_DOCKERFILE_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The image the base images of a Dockerfile's `FROM` lines call for: the last stage with a
/// known base (a build stage's toolchain when the final stage is a bare runtime).
fn image_from_dockerfile(text: &str) -> Option<&'static str> {
    // Continuation lines (`\` at the end) make one instruction.
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    joined
        .lines()
        .rev()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let instruction = words.next()?;
            if !instruction.eq_ignore_ascii_case("FROM") {
                return None;
            }
            // `FROM [--platform=...] <image> [AS <name>]`
            let image = words.find(|word| !word.starts_with("--"))?;
            base_image(image)
        })
        .next()
}

/// The image a base image reference (`[registry/][path/]name[:tag][@digest]`) calls for.
fn base_image(reference: &str) -> Option<&'static str> {
    let without_digest = reference.split('@').next()?;
    let name = without_digest.rsplit('/').next()?;
    let name = name.split(':').next()?.to_ascii_lowercase();
    BASES
        .iter()
        .find(|(base, _)| *base == name)
        .map(|(_, image)| *image)
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
