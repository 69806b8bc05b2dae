//! `search_files(pattern, glob)`.

use pretty_assertions::assert_eq;

use cap_index::{SearchOptions, search_files};

use super::copy_fixture;

#[test]
fn finds_lines_honours_glob_and_gitignore() -> anyhow::Result<()> {
    let dir = copy_fixture("python-shop")?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("generated"))?;
    std::fs::write(root.join("generated/out.py"), "def total_cents(): pass\n")?;
    let (found, truncated) = search_files(root, r"def \w+_cents", None, &SearchOptions::default())?;
    let hits: Vec<(&str, u64, &str)> = found
        .iter()
        .map(|m| (m.path.as_str(), m.line, m.text.as_str()))
        .collect();
    assert_eq!(
        hits,
        [("shop/models.py", 19, "    def total_cents(self) -> int:")]
    );
    assert!(!truncated);
    let (found, _) = search_files(root, "Cart", Some("tests/*.py"), &SearchOptions::default())?;
    let paths: Vec<&str> = found.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["tests/test_pricing.py", "tests/test_pricing.py"]);
    // Binary files are skipped.
    let (found, _) = search_files(root, "binary", None, &SearchOptions::default())?;
    assert!(found.is_empty());
    let (found, truncated) = search_files(
        root,
        "import",
        None,
        &SearchOptions {
            max_matches: 2,
            threads: 1,
        },
    )?;
    assert_eq!((found.len(), truncated), (2, true));
    Ok(())
}

#[test]
fn bad_pattern_and_bad_glob_are_categorised() -> anyhow::Result<()> {
    let dir = copy_fixture("python-shop")?;
    let err = search_files(dir.path(), "(unclosed", None, &SearchOptions::default()).err();
    assert!(
        matches!(err, Some(cap_index::Error::InvalidPattern { .. })),
        "{err:?}"
    );
    let err = search_files(dir.path(), "x", Some("a{b"), &SearchOptions::default()).err();
    assert!(
        matches!(err, Some(cap_index::Error::InvalidGlob { .. })),
        "{err:?}"
    );
    Ok(())
}
