#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;

use super::*;

/// Asserts each version sorts strictly before the next.
fn ascending(ecosystem: Ecosystem, versions: &[&str]) {
    for pair in versions.windows(2) {
        assert_eq!(
            compare(ecosystem, pair[0], pair[1]),
            Some(Ordering::Less),
            "{ecosystem:?}: {} < {}",
            pair[0],
            pair[1]
        );
        assert_eq!(
            compare(ecosystem, pair[1], pair[0]),
            Some(Ordering::Greater)
        );
    }
}

#[test]
fn semver_precedence_as_the_spec_lists_it() {
    // SemVer 2.0.0, item 11.
    ascending(
        Ecosystem::Npm,
        &[
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ],
    );
    assert_eq!(
        compare(Ecosystem::Go, "v1.2", "1.2.0"),
        Some(Ordering::Equal)
    );
    assert_eq!(
        compare(Ecosystem::Go, "v2.0.0+incompatible", "2.0.0"),
        Some(Ordering::Equal)
    );
    assert_eq!(compare(Ecosystem::Npm, "latest", "1.0.0"), None);
}

#[test]
fn pep440_ordering_as_the_pep_lists_it() {
    // PEP 440, "Summary of permitted suffixes and relative ordering".
    ascending(
        Ecosystem::PyPi,
        &[
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1!0.1",
        ],
    );
    for (a, b) in [
        ("1.0", "1.0.0"),
        ("1.0alpha1", "1.0a1"),
        ("1.0-rc1", "1.0rc1"),
        ("1.0-1", "1.0.post1"),
        ("v2.1", "2.1"),
        ("1.0+local.7", "1.0"),
    ] {
        assert_eq!(
            compare(Ecosystem::PyPi, a, b),
            Some(Ordering::Equal),
            "{a} = {b}"
        );
    }
    assert_eq!(Pep440::parse("1.2.3.x"), None);
}

#[test]
fn maven_ordering_as_comparable_version_documents_it() {
    ascending(
        Ecosystem::Maven,
        &[
            "1-alpha",
            "1-beta",
            "1-milestone",
            "1-rc",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1.1",
            "1.2-alpha-1",
            "1.2",
            "1.10",
            "2.0.0-RC1",
            "2.0.0",
        ],
    );
    for (a, b) in [
        ("1", "1.0.0"),
        ("1.0-final", "1"),
        ("1.0.GA", "1"),
        ("1.0alpha1", "1.0-alpha-1"),
        ("1.0-CR1", "1.0-RC1"),
    ] {
        assert_eq!(
            compare(Ecosystem::Maven, a, b),
            Some(Ordering::Equal),
            "{a} = {b}"
        );
    }
}
