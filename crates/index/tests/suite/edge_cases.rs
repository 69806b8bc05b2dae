//! Files that do not parse, binary files, huge files, symbolic links, ignored files and
//! unknown languages are reported, never a crash; re-indexing reuses unchanged files.

use pretty_assertions::assert_eq;

use cap_index::{Index, IndexOptions, SkipReason};

use super::{copy_fixture, symbols};

fn reasons(index: &Index) -> Vec<(String, SkipReason)> {
    index
        .skipped()
        .iter()
        .map(|s| (s.path.clone(), s.reason))
        .collect()
}

#[test]
fn odd_files_are_reported_with_their_reason() -> anyhow::Result<()> {
    let dir = copy_fixture("python-shop")?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("generated"))?;
    std::fs::write(root.join("generated/out.py"), "def ignored():\n    pass\n")?;
    std::fs::write(root.join("huge.py"), "x = 1\n".repeat(200_000))?;
    std::fs::write(root.join("notes.rb"), "puts 1\n")?;
    let outside = tempfile::tempdir()?;
    std::fs::write(outside.path().join("secret.py"), "TOKEN = 1\n")?;
    std::os::unix::fs::symlink(outside.path().join("secret.py"), root.join("shop/leak.py"))?;
    std::os::unix::fs::symlink("models.py", root.join("shop/alias.py"))?;
    std::os::unix::fs::symlink("/nonexistent/x.py", root.join("dangling.py"))?;
    let options = IndexOptions {
        max_file_bytes: 1024 * 1024,
        ..IndexOptions::default()
    };
    let index = Index::build(root, options)?;
    assert_eq!(
        reasons(&index),
        [
            ("dangling.py".to_owned(), SkipReason::SymlinkOutside),
            ("huge.py".to_owned(), SkipReason::TooLarge),
            ("notes.rb".to_owned(), SkipReason::UnknownLanguage),
            ("pyproject.toml".to_owned(), SkipReason::UnknownLanguage),
            ("shop/alias.py".to_owned(), SkipReason::SymlinkInside),
            ("shop/leak.py".to_owned(), SkipReason::SymlinkOutside),
            ("shop/logo.py".to_owned(), SkipReason::Binary),
        ]
    );
    assert!(
        index.file_summary("generated/out.py").is_err(),
        ".gitignore is honoured"
    );
    // A file with a syntax error is indexed with what could be read, and flagged.
    let broken = index.file_summary("shop/broken.py")?;
    assert!(broken.has_errors);
    assert!(symbols(&index, "shop/broken.py")?.contains(&"method Fine.ok".to_owned()));
    assert_eq!(index.stats().files_with_errors, 1);
    Ok(())
}

#[test]
fn reindex_parses_only_what_changed() -> anyhow::Result<()> {
    let dir = copy_fixture("python-shop")?;
    let root = dir.path();
    let mut index = Index::build(root, IndexOptions::default())?;
    assert_eq!(index.stats().files_parsed, 6);
    assert_eq!(index.refresh()?.files_parsed, 0);
    // Same content, new modification time: hashed, not parsed.
    std::fs::write(
        root.join("shop/models.py"),
        std::fs::read(root.join("shop/models.py"))?,
    )?;
    let stats = index.refresh()?;
    assert_eq!(stats.files_parsed, 0);
    // A real change is parsed and the graph follows it.
    std::fs::write(
        root.join("shop/cli.py"),
        "from shop.models import Cart\n\ndef main():\n    return Cart()\n",
    )?;
    let stats = index.refresh()?;
    assert_eq!(stats.files_parsed, 1);
    let uses: Vec<String> = index
        .dependencies("shop/cli.py")?
        .uses
        .into_iter()
        .map(|e| e.to)
        .collect();
    assert_eq!(uses, ["shop/models.py"]);
    assert_eq!(
        index.edges(),
        Index::build(root, IndexOptions::default())?.edges(),
        "in-place update = rebuild"
    );
    // A changed file gaining an import of a repository file gains the edge in place.
    std::fs::write(
        root.join("shop/__init__.py"),
        "from .pricing import apply_discount\n",
    )?;
    assert_eq!(index.refresh()?.files_parsed, 1);
    let used_by: Vec<String> = index
        .dependencies("shop/pricing.py")?
        .used_by
        .into_iter()
        .map(|e| e.from)
        .collect();
    assert_eq!(used_by, ["shop/__init__.py", "tests/test_pricing.py"]);
    assert_eq!(
        index.edges(),
        Index::build(root, IndexOptions::default())?.edges()
    );
    std::fs::remove_file(root.join("shop/pricing.py"))?;
    index.refresh()?;
    assert!(index.file_summary("shop/pricing.py").is_err());
    assert_eq!(index.stats().files_indexed, 5);
    Ok(())
}

#[test]
fn a_missing_root_is_an_error() {
    let err = Index::build(
        std::path::Path::new("/nonexistent/repo"),
        IndexOptions::default(),
    );
    assert!(matches!(err, Err(cap_index::Error::Io { .. })));
}

#[test]
fn update_paths_matches_a_rebuild_without_walking() -> anyhow::Result<()> {
    let dir = copy_fixture("python-shop")?;
    let root = dir.path();
    let mut index = Index::build(root, IndexOptions::default())?;
    let fresh = |root| -> anyhow::Result<(Vec<cap_index::Edge>, Vec<cap_index::Skipped>)> {
        let index = Index::build(root, IndexOptions::default())?;
        Ok((index.edges().to_vec(), index.skipped().to_vec()))
    };
    // A changed file, a new file importing it, and a new symbolic link out.
    std::fs::write(root.join("shop/cli.py"), "def main():\n    return 1\n")?;
    std::fs::write(root.join("shop/report.py"), "from shop.cli import main\n")?;
    std::os::unix::fs::symlink("/etc/hostname", root.join("shop/link.py"))?;
    let stats = index.update_paths(&["shop/cli.py", "shop/report.py", "shop/link.py"])?;
    assert_eq!(stats.files_parsed, 2);
    assert_eq!(
        (index.edges().to_vec(), index.skipped().to_vec()),
        fresh(root)?
    );
    assert_eq!(symbols(&index, "shop/cli.py")?, ["function main"]);
    // A deleted file and a file becoming binary.
    std::fs::remove_file(root.join("shop/models.py"))?;
    std::fs::write(root.join("shop/pricing.py"), b"\0\0")?;
    index.update_paths(&["shop/models.py", "./shop/pricing.py"])?;
    assert_eq!(
        (index.edges().to_vec(), index.skipped().to_vec()),
        fresh(root)?
    );
    assert!(index.file_summary("shop/models.py").is_err());
    assert!(matches!(
        index.update_paths(&["../outside.py"]),
        Err(cap_index::Error::PathOutsideRepository(_))
    ));
    Ok(())
}
