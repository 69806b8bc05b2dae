//! `semantic_search` with an embeddings endpoint: reciprocal rank fusion of BM25 and vector
//! similarity, incremental embedding by chunk hash, failures that fall back to full text.

use pretty_assertions::assert_eq;

use cap_index::{EmbeddingsConfig, Error, Index, IndexOptions, Ranking, SemanticIndex};
use cap_testkit::ScriptedModel;

/// Word concepts of the scripted endpoint's vectors: removal, and people.
const CONCEPTS: &[&[&str]] = &[
    &["remove", "delete", "purge", "erase", "drop"],
    &["user", "member", "account"],
];

const MEMBERS: &str = "\
def delete_member(user_id):
    \"\"\"Deletes the member.\"\"\"
    db.pop(user_id)
";

const SETTINGS: &str = "\
def user_settings_page(user):
    \"\"\"Renders the settings of a user, for the user.\"\"\"
    return render(\"settings.html\", user=user, theme=user.theme)
";

const CLEANUP: &str = "\
def purge_inactive(days):
    \"\"\"Purges what has been idle for `days`, then erases the rest.\"\"\"
    for row in inactive(days):
        erase(row)
    drop_orphans()
";

/// The scripted endpoint, served by a runtime of its own: the index's client is blocking.
fn endpoint() -> anyhow::Result<(tokio::runtime::Runtime, ScriptedModel)> {
    let runtime = tokio::runtime::Runtime::new()?;
    let model = runtime.block_on(ScriptedModel::start(Vec::new()))?;
    model.set_embedding_concepts(CONCEPTS);
    Ok((runtime, model))
}

fn repository() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("members.py"), MEMBERS)?;
    std::fs::write(dir.path().join("settings.py"), SETTINGS)?;
    std::fs::write(dir.path().join("cleanup.py"), CLEANUP)?;
    Ok(dir)
}

fn config(model: &ScriptedModel, batch_size: usize) -> EmbeddingsConfig {
    EmbeddingsConfig {
        batch_size,
        ..EmbeddingsConfig::new(model.base_url(), "scripted-embeddings")
    }
}

fn symbols(index: &SemanticIndex, query: &str) -> anyhow::Result<(Vec<String>, Ranking)> {
    let results = index.search(query, 5)?;
    Ok((
        results.hits.into_iter().map(|h| h.symbol).collect(),
        results.ranking,
    ))
}

fn inputs(model: &ScriptedModel) -> usize {
    model.embedding_inputs().iter().map(Vec::len).sum()
}

#[test]
fn fusion_lifts_the_chunk_that_means_the_query() -> anyhow::Result<()> {
    let (_runtime, model) = endpoint()?;
    let repo = repository()?;
    let index = Index::build(repo.path(), IndexOptions::default())?;

    // Full text alone: the page that says `user` most wins, and `purge_inactive`, sharing no
    // word with the query, is not found at all.
    let plain_store = tempfile::tempdir()?;
    let mut plain = SemanticIndex::open(plain_store.path())?;
    plain.sync(&index)?;
    assert_eq!(
        symbols(&plain, "remove user")?,
        (
            vec!["user_settings_page".to_owned(), "delete_member".to_owned()],
            Ranking::FullText
        )
    );

    let store = tempfile::tempdir()?;
    let mut hybrid = SemanticIndex::open(store.path())?;
    hybrid.set_embeddings(config(&model, 2))?;
    let stats = hybrid.sync(&index)?;
    assert_eq!((stats.chunks_embedded, stats.chunks_unembedded), (3, 0));
    assert_eq!(stats.embeddings_error, None);
    // Batched: two requests for three chunks.
    let batches: Vec<usize> = model.embedding_inputs().iter().map(Vec::len).collect();
    assert_eq!(batches, [2, 1]);
    // Fused: the function that removes a user comes first, the page second, and the purge,
    // close in meaning only, is found.
    assert_eq!(
        symbols(&hybrid, "remove user")?,
        (
            vec![
                "delete_member".to_owned(),
                "user_settings_page".to_owned(),
                "purge_inactive".to_owned()
            ],
            Ranking::Hybrid
        )
    );
    let results = hybrid.search("remove user", 5)?;
    assert!(results.hits[0].score > results.hits[1].score);
    assert_eq!(results.hits[0].path, "members.py");
    Ok(())
}

#[test]
fn only_new_and_changed_chunks_are_embedded_and_vectors_persist() -> anyhow::Result<()> {
    let (_runtime, model) = endpoint()?;
    let repo = repository()?;
    let store = tempfile::tempdir()?;
    let mut index = Index::build(repo.path(), IndexOptions::default())?;
    let mut semantic = SemanticIndex::open(store.path())?;
    semantic.set_embeddings(config(&model, 64))?;
    assert_eq!(semantic.sync(&index)?.chunks_embedded, 3);
    assert_eq!(semantic.sync(&index)?.chunks_embedded, 0);

    // A new process: the vectors come from disk; only the query is embedded.
    drop(semantic);
    let mut semantic = SemanticIndex::open(store.path())?;
    semantic.set_embeddings(config(&model, 64))?;
    assert_eq!(semantic.sync(&index)?.chunks_embedded, 0);
    let before = inputs(&model);
    assert_eq!(symbols(&semantic, "remove user")?.1, Ranking::Hybrid);
    assert_eq!(inputs(&model), before + 1);

    // One changed file: its chunk alone is embedded.
    std::fs::write(
        repo.path().join("settings.py"),
        "def erase_account(account_id):\n    accounts.drop(account_id)\n",
    )?;
    index.refresh()?;
    let stats = semantic.sync(&index)?;
    assert_eq!((stats.files_updated, stats.chunks_embedded), (1, 1));
    let last = model.embedding_inputs().pop().unwrap_or_default();
    assert_eq!(last.len(), 1);
    assert!(last[0].starts_with("settings.py\n"), "{last:?}");

    // Another model's vectors are not mixed in: everything is embedded again.
    let mut other = config(&model, 64);
    other.model = "another-model".to_owned();
    let mut semantic = SemanticIndex::open(store.path())?;
    semantic.set_embeddings(other)?;
    assert_eq!(semantic.sync(&index)?.chunks_embedded, 3);
    Ok(())
}

#[test]
fn endpoint_failures_fall_back_to_full_text_and_lose_nothing() -> anyhow::Result<()> {
    let (_runtime, model) = endpoint()?;
    let repo = repository()?;
    let store = tempfile::tempdir()?;
    let index = Index::build(repo.path(), IndexOptions::default())?;
    let mut semantic = SemanticIndex::open(store.path())?;
    semantic.set_embeddings(config(&model, 64))?;

    model.fail_embeddings(Some(503));
    let stats = semantic.sync(&index)?;
    assert_eq!(stats.files_updated, 3, "the full-text index is written");
    assert_eq!((stats.chunks_embedded, stats.chunks_unembedded), (0, 3));
    let error = stats.embeddings_error.unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "the embeddings endpoint {}/embeddings failed: HTTP 503",
            model.base_url()
        )),
        "{error}"
    );
    assert_eq!(
        symbols(&semantic, "remove user")?,
        (
            vec!["user_settings_page".to_owned(), "delete_member".to_owned()],
            Ranking::FullTextFallback {
                reason: "no chunk has been embedded yet".to_owned()
            }
        )
    );

    // The endpoint is back: the files are unchanged, yet their missing vectors are made.
    model.fail_embeddings(None);
    let stats = semantic.sync(&index)?;
    assert_eq!(
        (
            stats.files_unchanged,
            stats.chunks_embedded,
            stats.embeddings_error
        ),
        (3, 3, None)
    );
    assert_eq!(symbols(&semantic, "remove user")?.0[0], "delete_member");

    // Down at query time: full text answers, and says why.
    model.fail_embeddings(Some(500));
    let (found, ranking) = symbols(&semantic, "remove user")?;
    assert_eq!(found, ["user_settings_page", "delete_member"]);
    let Ranking::FullTextFallback { reason } = ranking else {
        panic!("{ranking:?}")
    };
    assert!(reason.contains("HTTP 500"), "{reason}");

    // An endpoint nobody listens on: the same, naming it (vectors of this model are kept).
    let unreachable = EmbeddingsConfig::new("http://127.0.0.1:1/v1", "scripted-embeddings");
    semantic.set_embeddings(unreachable)?;
    let (_, ranking) = symbols(&semantic, "remove user")?;
    assert!(
        matches!(&ranking, Ranking::FullTextFallback { reason }
            if reason.starts_with("the embeddings endpoint http://127.0.0.1:1/v1/embeddings failed: request failed")),
        "{ranking:?}"
    );
    Ok(())
}

#[test]
fn a_bad_configuration_is_refused_with_the_reason() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let mut semantic = SemanticIndex::open(store.path())?;
    let cases = [
        (
            EmbeddingsConfig::new("ftp://example/v1", "m"),
            "invalid embeddings configuration: the base URL must start with http:// or https://",
        ),
        (
            EmbeddingsConfig::new("http://127.0.0.1:1/v1", " "),
            "invalid embeddings configuration: the model name is empty",
        ),
        (
            EmbeddingsConfig {
                batch_size: 0,
                ..EmbeddingsConfig::new("http://127.0.0.1:1/v1", "m")
            },
            "invalid embeddings configuration: the batch size must be at least 1",
        ),
    ];
    for (config, message) in cases {
        let error = semantic.set_embeddings(config).err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some(message));
    }
    // The key never shows in debug output.
    let mut config = EmbeddingsConfig::new("http://127.0.0.1:1/v1", "m");
    config.api_key = Some("sk-secret".to_owned());
    assert!(!format!("{config:?}").contains("sk-secret"));
    Ok(())
}

#[test]
fn a_cancelled_build_or_sync_keeps_the_previous_state() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let repo = repository()?;
    let cancel = Arc::new(AtomicBool::new(true));
    let options = IndexOptions {
        cancel: Some(cancel.clone()),
        ..IndexOptions::default()
    };
    assert!(matches!(
        Index::build(repo.path(), options.clone()),
        Err(Error::Cancelled)
    ));

    cancel.store(false, Ordering::Relaxed);
    let mut index = Index::build(repo.path(), options)?;
    let store = tempfile::tempdir()?;
    let mut semantic = SemanticIndex::open(store.path())?;
    assert_eq!(semantic.sync(&index)?.files_updated, 3);

    // A change, then a cancelled refresh and sync: the old summaries and chunks stay.
    std::fs::write(repo.path().join("members.py"), "def renamed():\n    pass\n")?;
    cancel.store(true, Ordering::Relaxed);
    assert!(matches!(index.refresh(), Err(Error::Cancelled)));
    assert_eq!(
        index.file_summary("members.py")?.symbols[0].name,
        "delete_member"
    );
    cancel.store(false, Ordering::Relaxed);
    index.refresh()?;
    cancel.store(true, Ordering::Relaxed);
    assert!(matches!(semantic.sync(&index), Err(Error::Cancelled)));
    drop(semantic);
    let mut semantic = SemanticIndex::open(store.path())?;
    assert_eq!(symbols(&semantic, "delete member")?.0[0], "delete_member");

    // A later run completes.
    cancel.store(false, Ordering::Relaxed);
    let stats = semantic.sync(&index)?;
    assert_eq!((stats.files_updated, stats.files_unchanged), (1, 2));
    assert_eq!(symbols(&semantic, "renamed")?.0, ["renamed"]);
    assert!(
        symbols(&semantic, "delete member")?
            .0
            .iter()
            .all(|s| s != "delete_member")
    );
    Ok(())
}
