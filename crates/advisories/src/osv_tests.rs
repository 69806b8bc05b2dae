#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn affected(kind: &str, events: Vec<Event>, versions: &[&str]) -> Affected {
    Affected {
        ecosystem: "PyPI".into(),
        name: "pkg".into(),
        ranges: vec![Range {
            kind: kind.into(),
            events,
        }],
        versions: versions.iter().map(|v| (*v).to_owned()).collect(),
    }
}

#[test]
fn introduced_fixed_and_last_affected() {
    let range = affected(
        "ECOSYSTEM",
        vec![
            Event::Introduced("0".into()),
            Event::Fixed("1.2.0".into()),
            Event::Introduced("2.0".into()),
            Event::LastAffected("2.1.3".into()),
        ],
        &[],
    );
    let hit = |v: &str| range.affects(Ecosystem::PyPi, v);
    assert_eq!(hit("1.0").unwrap().fixed.as_deref(), Some("1.2.0"));
    assert_eq!(hit("1.2.0rc1").unwrap().fixed.as_deref(), Some("1.2.0"));
    assert_eq!(hit("1.2.0"), None);
    assert_eq!(hit("1.9"), None);
    assert_eq!(hit("2.0").unwrap().fixed, None);
    assert_eq!(hit("2.1.3").unwrap().fixed, None);
    assert_eq!(hit("2.1.4"), None);
    // Listed versions count; GIT ranges are commits, never matched.
    let listed = affected("GIT", vec![Event::Introduced("0".into())], &["3.0"]);
    assert!(listed.affects(Ecosystem::PyPi, "3.0").is_some());
    assert!(listed.affects(Ecosystem::PyPi, "3.1").is_none());
}

#[test]
fn the_lowest_version_a_requirement_admits() {
    let low = |ecosystem, spec| lowest_admitted(ecosystem, spec);
    let some = |v: &str, exact| Some((v.to_owned(), exact));
    assert_eq!(low(Ecosystem::PyPi, "==1.2.3"), some("1.2.3", true));
    assert_eq!(low(Ecosystem::PyPi, "~=1.4"), some("1.4", false));
    assert_eq!(low(Ecosystem::PyPi, ">=2,<3"), some("2", false));
    assert_eq!(low(Ecosystem::PyPi, "==1.4.*"), some("1.4.0", false));
    assert_eq!(low(Ecosystem::PyPi, "<3"), None);
    assert_eq!(low(Ecosystem::PyPi, ""), None);
    assert_eq!(low(Ecosystem::Npm, "1.2.3"), some("1.2.3", true));
    assert_eq!(low(Ecosystem::Npm, "v1.2.3"), some("1.2.3", true));
    assert_eq!(low(Ecosystem::Npm, "^1.2.0"), some("1.2.0", false));
    assert_eq!(low(Ecosystem::Npm, "1.2.x"), some("1.2.0", false));
    assert_eq!(low(Ecosystem::Npm, ">=1.0.0 <2"), some("1.0.0", false));
    assert_eq!(
        low(Ecosystem::Npm, "^2.0.0 || ^1.5.0"),
        some("1.5.0", false)
    );
    assert_eq!(low(Ecosystem::Npm, "1.0.0 - 2.0.0"), some("1.0.0", false));
    assert_eq!(low(Ecosystem::Npm, "*"), None);
    assert_eq!(low(Ecosystem::Npm, "latest"), None);
    assert_eq!(
        low(Ecosystem::Npm, "git+https://example.invalid/x.git"),
        None
    );
    assert_eq!(low(Ecosystem::Go, "v1.6.0"), some("1.6.0", true));
    assert_eq!(low(Ecosystem::Maven, "2.14.1"), some("2.14.1", true));
    assert_eq!(low(Ecosystem::Maven, "[1.0,2.0)"), some("1.0", false));
    assert_eq!(low(Ecosystem::Maven, "[1.5]"), some("1.5", true));
}
