//! `semantic_search(query)`: the persistent full-text index over symbols.

use pretty_assertions::assert_eq;

use cap_index::{Index, IndexOptions, Ranking, SemanticIndex, SyncStats};

use super::copy_fixture;

fn top(index: &SemanticIndex, query: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(index
        .search(query, 3)?
        .hits
        .into_iter()
        .map(|h| (h.path, h.symbol))
        .collect())
}

#[test]
fn finds_symbols_by_words_and_updates_by_content_hash() -> anyhow::Result<()> {
    let repo = copy_fixture("typescript-api")?;
    let store = tempfile::tempdir()?;
    let mut index = Index::build(repo.path(), IndexOptions::default())?;
    let mut semantic = SemanticIndex::open(store.path())?;
    let stats = semantic.sync(&index)?;
    assert_eq!(
        stats,
        SyncStats {
            files_updated: 4,
            files_removed: 0,
            files_unchanged: 0,
            ..SyncStats::default()
        }
    );
    let results = semantic.search("find user by id", 3)?;
    assert_eq!(results.ranking, Ranking::FullText);
    let hits = results.hits;
    assert_eq!(
        (hits[0].path.as_str(), hits[0].symbol.as_str()),
        (
            "src/repositories/userRepository.ts",
            "UserRepository.findById"
        )
    );
    assert_eq!((hits[0].start_line, hits[0].end_line), (10, 12));
    assert_eq!(hits[0].signature, "findById(id: UserId): User | undefined");
    // Words in the body count too: only `rename` throws.
    assert_eq!(
        top(&semantic, "throw new Error")?[0].1,
        "UserService.rename"
    );

    // Nothing changed: nothing rewritten.
    assert_eq!(semantic.sync(&index)?.files_unchanged, 4);
    // A change is re-chunked alone, and kept on disk for the next process.
    std::fs::write(
        repo.path().join("src/types.ts"),
        "export function parseInvoiceTotal(text: string): number {\n  return Number(text);\n}\n",
    )?;
    index.refresh()?;
    assert_eq!(
        semantic.sync(&index)?,
        SyncStats {
            files_updated: 1,
            files_removed: 0,
            files_unchanged: 3,
            ..SyncStats::default()
        }
    );
    drop(semantic);
    let mut semantic = SemanticIndex::open(store.path())?;
    assert_eq!(
        top(&semantic, "invoice total")?,
        [("src/types.ts".to_owned(), "parseInvoiceTotal".to_owned())]
    );
    assert!(
        top(&semantic, "Role")?
            .iter()
            .all(|(p, _)| p != "src/types.ts"),
        "old chunks are gone"
    );
    assert_eq!(semantic.sync(&index)?.files_unchanged, 4);
    std::fs::remove_file(repo.path().join("src/types.ts"))?;
    index.refresh()?;
    assert_eq!(semantic.sync(&index)?.files_removed, 1);
    assert!(top(&semantic, "invoice")?.is_empty());
    Ok(())
}

#[test]
fn any_text_is_a_query() -> anyhow::Result<()> {
    let repo = copy_fixture("python-shop")?;
    let store = tempfile::tempdir()?;
    let index = Index::build(repo.path(), IndexOptions::default())?;
    let mut semantic = SemanticIndex::open(store.path())?;
    semantic.sync(&index)?;
    for query in ["((( AND", "", "path:\"", "\u{0}", "price:[1 TO"] {
        semantic.search(query, 5)?;
    }
    assert_eq!(top(&semantic, "averagePrice")?[0].1, "average_price");
    Ok(())
}
