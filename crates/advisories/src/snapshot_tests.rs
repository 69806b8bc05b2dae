#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

use std::io::Write as _;

/// An OSV record as published, with a synthetic id.
pub(crate) fn record(id: &str, ecosystem: &str, name: &str, fixed: &str, modified: &str) -> String {
    serde_json::json!({
        "schema_version": "1.6.0",
        "id": id,
        "modified": modified,
        "aliases": [format!("CVE-TEST-{id}")],
        "summary": format!("{name} mishandles input"),
        "affected": [{
            "package": {"ecosystem": ecosystem, "name": name},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            "versions": []
        }],
        "database_specific": {"severity": "HIGH"}
    })
    .to_string()
}

#[test]
fn a_directory_imports_and_again_changes_nothing() {
    let source = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(source.path().join("PyPI")).unwrap();
    std::fs::write(
        source.path().join("PyPI/TEST-2026-0001.json"),
        record(
            "TEST-2026-0001",
            "PyPI",
            "Requests",
            "2.32.0",
            "2026-01-01T00:00:00Z",
        ),
    )
    .unwrap();
    std::fs::write(
        source.path().join("TEST-2026-0002.json"),
        record(
            "TEST-2026-0002",
            "npm",
            "left-pad",
            "1.3.0",
            "2026-01-01T00:00:00Z",
        ),
    )
    .unwrap();
    let first = import(source.path(), data.path()).unwrap();
    assert_eq!(
        (first.records, first.added, first.updated, first.total),
        (2, 2, 0, 2)
    );
    let stored = Snapshot::load(data.path())
        .unwrap()
        .unwrap()
        .stored
        .advisories;
    let again = import(source.path(), data.path()).unwrap();
    assert_eq!(
        (again.added, again.updated, again.unchanged, again.total),
        (0, 0, 2, 2)
    );
    let snapshot = Snapshot::load(data.path()).unwrap().unwrap();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot.imports().count(), 1, "one entry per source");
    assert_eq!(
        stored, snapshot.stored.advisories,
        "the same advisories after a re-import"
    );

    let hits = snapshot.affecting(Ecosystem::PyPi, "requests", "2.31.0");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].advisory.id, "TEST-2026-0001");
    assert_eq!(hits[0].advisory.severity, "HIGH");
    assert_eq!(hits[0].hit.fixed.as_deref(), Some("2.32.0"));
    assert!(
        snapshot
            .affecting(Ecosystem::PyPi, "requests", "2.32.0")
            .is_empty()
    );
    assert!(
        snapshot
            .affecting(Ecosystem::Npm, "requests", "1.0.0")
            .is_empty()
    );

    // A newer copy replaces the old one.
    std::fs::write(
        source.path().join("TEST-2026-0002.json"),
        record(
            "TEST-2026-0002",
            "npm",
            "left-pad",
            "1.4.0",
            "2026-02-01T00:00:00Z",
        ),
    )
    .unwrap();
    let updated = import(source.path(), data.path()).unwrap();
    assert_eq!(
        (updated.added, updated.updated, updated.unchanged),
        (0, 1, 1)
    );
    let snapshot = Snapshot::load(data.path()).unwrap().unwrap();
    let hits = snapshot.affecting(Ecosystem::Npm, "left-pad", "1.3.0");
    assert_eq!(hits[0].hit.fixed.as_deref(), Some("1.4.0"));
}

#[test]
fn a_zip_imports_as_osv_publishes_it() {
    let source = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = source.path().join("all.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (id, name) in [
        ("TEST-2026-0003", "golang.org/x/text"),
        ("TEST-2026-0004", "golang.org/x/net"),
    ] {
        zip.start_file(format!("{id}.json"), options).unwrap();
        zip.write_all(record(id, "Go", name, "0.3.8", "2026-01-01T00:00:00Z").as_bytes())
            .unwrap();
    }
    zip.finish().unwrap();
    let summary = import(&path, data.path()).unwrap();
    assert_eq!((summary.records, summary.added), (2, 2));
    let again = import(&path, data.path()).unwrap();
    assert_eq!((again.added, again.unchanged), (0, 2));
    let snapshot = Snapshot::load(data.path()).unwrap().unwrap();
    assert_eq!(
        snapshot
            .affecting(Ecosystem::Go, "golang.org/x/text", "0.3.7")
            .len(),
        1
    );
}

#[test]
fn bad_input_is_named_and_nothing_is_written() {
    let source = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("broken.json"), "{\"summary\": 1}").unwrap();
    let error = import(source.path(), data.path()).unwrap_err();
    assert!(
        error.to_string().contains("broken.json: not an OSV record"),
        "{error}"
    );
    assert!(Snapshot::load(data.path()).unwrap().is_none());
    let error = import(&source.path().join("missing"), data.path()).unwrap_err();
    assert!(error.to_string().contains("not found"), "{error}");
}
