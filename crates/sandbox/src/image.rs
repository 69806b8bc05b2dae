//! Images: which toolchain a session is meant for.
//!
//! The local backend runs every image on the host's read-only system directories; the image
//! is recorded with the session so that the toolchain mounts (and the Kubernetes backend's pod
//! image) can be chosen from it.

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

/// The image whose toolchain the files at the root of `tree` call for.
pub fn detect_image(tree: &Path) -> &'static str {
    MARKERS
        .iter()
        .find(|(file, _)| {
            tree.join(file)
                .symlink_metadata()
                .is_ok_and(|meta| meta.is_file())
        })
        .map_or(BASE_IMAGE, |(_, image)| image)
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
