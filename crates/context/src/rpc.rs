//! The `ContextService` calls: the model's analysis tools over indexed workspaces. The
//! service's gRPC doors call these and turn their errors into statuses.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use cap_index::{Index, IndexOptions, SemanticIndex};
use cap_proto::context::v1 as pb;
use tokio::sync::Mutex as AsyncMutex;

use crate::{ContextAgent, Error, store_name};

/// Workspaces kept indexed at once; the least recently indexed is forgotten first.
const MAX_WORKSPACES: usize = 8;
/// Hits `SemanticSearch` returns when the request leaves `limit` at 0.
const DEFAULT_HITS: usize = 10;
/// The repository map's budget when the request leaves `max_tokens` at 0.
const DEFAULT_MAP_TOKENS: usize = 1024;

/// One indexed workspace: a local copy of its source and configuration files and their index.
pub(crate) struct Workspace {
    copy: tempfile::TempDir,
    copied: BTreeSet<String>,
    index: Index,
    semantic: SemanticIndex,
}

type Shared = Arc<AsyncMutex<Option<Workspace>>>;

/// The indexed workspaces, by session.
#[derive(Default)]
pub(crate) struct Workspaces {
    inner: std::sync::Mutex<(HashMap<String, Shared>, VecDeque<String>)>,
}

impl Workspaces {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Shared>, VecDeque<String>)> {
        // Entries are inserted and removed whole: consistent after a panic.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get_or_insert(&self, session: &str) -> Shared {
        let mut guard = self.lock();
        let (map, order) = &mut *guard;
        if let Some(found) = map.get(session) {
            return found.clone();
        }
        while map.len() >= MAX_WORKSPACES {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            drop_off_runtime(map.remove(&oldest));
        }
        let shared: Shared = Arc::new(AsyncMutex::new(None));
        map.insert(session.to_owned(), shared.clone());
        order.push_back(session.to_owned());
        shared
    }

    fn get(&self, session: &str) -> Option<Shared> {
        self.lock().0.get(session).cloned()
    }

    fn remove(&self, session: &str) -> bool {
        let mut guard = self.lock();
        guard.1.retain(|s| s != session);
        let removed = guard.0.remove(session);
        drop(guard);
        let found = removed.is_some();
        drop_off_runtime(removed);
        found
    }
}

/// Drops a workspace on a blocking thread: its embeddings client (`reqwest::blocking`) must
/// not be dropped on the async runtime, and removing its copy is file-system work.
fn drop_off_runtime(workspace: Option<Shared>) {
    if let Some(workspace) = workspace {
        tokio::task::spawn_blocking(move || drop(workspace));
    }
}

fn session(id: &str) -> Result<&str, Error> {
    match id.trim() {
        "" => Err(Error::InvalidRequest("session_id is empty")),
        id => Ok(id),
    }
}

fn name_of<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn symbol(s: &cap_index::Symbol) -> pb::Symbol {
    pb::Symbol {
        name: s.name.clone(),
        kind: name_of(s.kind),
        parent: s.parent.clone().unwrap_or_default(),
        signature: s.signature.clone(),
        start_line: s.start_line,
        end_line: s.end_line,
    }
}

fn edge(e: cap_index::Edge) -> pb::Edge {
    pb::Edge {
        from: e.from,
        to: e.to,
        import: e.import,
    }
}

impl ContextAgent {
    /// Runs `f` on an indexed workspace on a blocking thread (index queries are CPU work and
    /// a hybrid search calls the embeddings endpoint), or fails naming the session.
    async fn with_workspace<T: Send + 'static>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Workspace) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let id = session(id)?.to_owned();
        let shared = self
            .inner
            .workspaces
            .get(&id)
            .ok_or_else(|| Error::NotIndexed(id.clone()))?;
        let mut guard = shared.lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let workspace = guard.as_mut().ok_or(Error::NotIndexed(id))?;
            f(workspace)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

/// The `ContextService` calls, one per RPC.
impl ContextAgent {
    /// `index_workspace`.
    pub async fn index_workspace(
        &self,
        request: pb::IndexWorkspaceRequest,
    ) -> Result<pb::IndexWorkspaceResponse, Error> {
        let id = session(&request.session_id)?.to_owned();
        let shared = self.inner.workspaces.get_or_insert(&id);
        let mut guard = shared.clone().lock_owned().await;
        let (copy, old) = match guard.take() {
            Some(w) => (w.copy, Some((w.copied, w.index, w.semantic))),
            None => (tempfile::tempdir().map_err(Error::Io)?, None),
        };
        // `IndexWorkspace` has no interrupt: its caller cancels by dropping the call.
        let never = std::sync::atomic::AtomicBool::new(false);
        let copied = match self.inner.mirror(&id, copy.path(), &never).await {
            Ok(copied) => copied,
            Err(e) => {
                self.inner.workspaces.remove(&id);
                // The earlier index holds an embeddings client: not dropped on the runtime.
                tokio::task::spawn_blocking(move || drop((copy, old)));
                // A session the sandbox does not know is not kept.
                return Err(e);
            }
        };
        let store = self.inner.store.join(store_name(&request.repository_id));
        let root = copy.path().to_owned();
        let embeddings = self.inner.embeddings.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<Workspace, Error> {
            let (index, semantic) = match old {
                Some((previous, mut index, semantic)) => {
                    // Files gone from the workspace go from the copy too.
                    for gone in previous.difference(&copied) {
                        let _ = std::fs::remove_file(root.join(gone));
                    }
                    index.refresh().map_err(Error::Index)?;
                    (index, semantic)
                }
                None => {
                    let mut semantic = SemanticIndex::open(&store).map_err(Error::Index)?;
                    if let Some(config) = embeddings {
                        semantic.set_embeddings(config).map_err(Error::Index)?;
                    }
                    (
                        Index::build(&root, IndexOptions::default()).map_err(Error::Index)?,
                        semantic,
                    )
                }
            };
            let mut workspace = Workspace {
                copy,
                copied,
                index,
                semantic,
            };
            let sync = workspace
                .semantic
                .sync(&workspace.index)
                .map_err(Error::Index)?;
            if let Some(error) = &sync.embeddings_error {
                tracing::warn!(%error, "chunks left without vectors; full text still ranks");
            }
            Ok(workspace)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let workspace = match result {
            Ok(w) => w,
            Err(e) => {
                self.inner.workspaces.remove(&id);
                return Err(e);
            }
        };
        let stats = workspace.index.stats();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let response = pb::IndexWorkspaceResponse {
            files_indexed: count(stats.files_indexed),
            files_parsed: count(stats.files_parsed),
            edges: count(stats.edges),
            files_with_errors: count(stats.files_with_errors),
            skipped: workspace
                .index
                .skipped()
                .iter()
                .map(|s| pb::SkippedFile {
                    path: s.path.clone(),
                    reason: name_of(s.reason),
                })
                .collect(),
        };
        *guard = Some(workspace);
        Ok(response)
    }

    /// `get_file_summary`.
    pub async fn get_file_summary(
        &self,
        request: pb::GetFileSummaryRequest,
    ) -> Result<pb::GetFileSummaryResponse, Error> {
        let summary = self
            .with_workspace(&request.session_id, move |w| {
                let s = w.index.file_summary(&request.path).map_err(Error::Index)?;
                Ok(pb::GetFileSummaryResponse {
                    path: s.path.clone(),
                    language: s.language.name().to_owned(),
                    package: s.package.clone().unwrap_or_default(),
                    lines: s.lines,
                    bytes: s.bytes,
                    has_errors: s.has_errors,
                    symbols: s.symbols.iter().map(symbol).collect(),
                    imports: s
                        .imports
                        .iter()
                        .map(|i| pb::Import {
                            module: i.module.clone(),
                            names: i.names.clone(),
                            line: i.line,
                        })
                        .collect(),
                    chunks: s
                        .chunks
                        .iter()
                        .map(|c| pb::Chunk {
                            start_line: c.start_line,
                            end_line: c.end_line,
                            symbols: c.symbols.clone(),
                        })
                        .collect(),
                })
            })
            .await?;
        Ok(summary)
    }

    /// `find_dependencies`.
    pub async fn find_dependencies(
        &self,
        request: pb::FindDependenciesRequest,
    ) -> Result<pb::FindDependenciesResponse, Error> {
        let deps = self
            .with_workspace(&request.session_id, move |w| {
                w.index.dependencies(&request.path).map_err(Error::Index)
            })
            .await?;
        Ok(pb::FindDependenciesResponse {
            path: deps.path,
            uses: deps.uses.into_iter().map(edge).collect(),
            used_by: deps.used_by.into_iter().map(edge).collect(),
            external: deps.external,
        })
    }

    /// `semantic_search`.
    pub async fn semantic_search(
        &self,
        request: pb::SemanticSearchRequest,
    ) -> Result<pb::SemanticSearchResponse, Error> {
        let limit = match request.limit {
            0 => DEFAULT_HITS,
            n => usize::try_from(n).unwrap_or(DEFAULT_HITS),
        };
        let results = self
            .with_workspace(&request.session_id, move |w| {
                w.semantic
                    .search(&request.query, limit)
                    .map_err(Error::Index)
            })
            .await?;
        let (ranking, fallback_reason) = match results.ranking {
            cap_index::Ranking::FullText => ("full_text", String::new()),
            cap_index::Ranking::Hybrid => ("hybrid", String::new()),
            cap_index::Ranking::FullTextFallback { reason } => {
                tracing::warn!(%reason, "semantic search fell back to full text");
                ("full_text_fallback", reason)
            }
        };
        let hits = results
            .hits
            .into_iter()
            .map(|h| {
                let (parent, name) = match h.symbol.rsplit_once('.') {
                    Some((p, n)) => (p.to_owned(), n.to_owned()),
                    None => (String::new(), h.symbol.clone()),
                };
                pb::SemanticHit {
                    path: h.path,
                    symbol: Some(pb::Symbol {
                        name,
                        kind: name_of(h.kind),
                        parent,
                        signature: h.signature,
                        start_line: h.start_line,
                        end_line: h.end_line,
                    }),
                    score: h.score,
                }
            })
            .collect();
        Ok(pb::SemanticSearchResponse {
            hits,
            ranking: ranking.to_owned(),
            fallback_reason,
        })
    }

    /// `detect_patterns`.
    pub async fn detect_patterns(
        &self,
        request: pb::DetectPatternsRequest,
    ) -> Result<pb::DetectPatternsResponse, Error> {
        let patterns = self
            .with_workspace(&request.session_id, move |w| {
                Ok(cap_index::detect_patterns(w.copy.path(), Some(&w.index)))
            })
            .await?;
        Ok(pb::DetectPatternsResponse {
            patterns: patterns
                .into_iter()
                .map(|p| pb::Pattern {
                    category: p.category,
                    name: p.name,
                    evidence: p.evidence,
                })
                .collect(),
        })
    }

    /// `get_repo_map`.
    pub async fn get_repo_map(
        &self,
        request: pb::GetRepoMapRequest,
    ) -> Result<pb::GetRepoMapResponse, Error> {
        let tokens = match request.max_tokens {
            0 => DEFAULT_MAP_TOKENS,
            n => usize::try_from(n).unwrap_or(DEFAULT_MAP_TOKENS),
        };
        let map = self
            .with_workspace(&request.session_id, move |w| {
                Ok(cap_index::repo_map(&w.index, tokens))
            })
            .await?;
        Ok(pb::GetRepoMapResponse { map })
    }

    /// `analyze_trace`.
    pub async fn analyze_trace(
        &self,
        request: pb::AnalyzeTraceRequest,
    ) -> Result<pb::AnalyzeTraceResponse, Error> {
        let analysis = self
            .with_workspace(&request.session_id, move |w| {
                Ok(cap_index::analyze_trace(&w.index, &request.trace))
            })
            .await?;
        Ok(pb::AnalyzeTraceResponse {
            frames: analysis
                .frames
                .into_iter()
                .map(|f| pb::Frame {
                    format: name_of(f.format),
                    raw_location: f.raw_location,
                    line: f.line,
                    function: f.function.unwrap_or_default(),
                    path: f.path.unwrap_or_default(),
                    symbol: f.symbol.unwrap_or_default(),
                    depth: u32::try_from(f.depth).unwrap_or(u32::MAX),
                })
                .collect(),
            ranked: analysis
                .ranked
                .into_iter()
                .map(|r| pb::RankedFile {
                    path: r.path,
                    score: r.score,
                    lines: r.lines,
                    symbols: r.symbols,
                })
                .collect(),
        })
    }

    /// `release_workspace`.
    pub async fn release_workspace(
        &self,
        request: pb::ReleaseWorkspaceRequest,
    ) -> Result<pb::ReleaseWorkspaceResponse, Error> {
        let id = session(&request.session_id)?;
        Ok(pb::ReleaseWorkspaceResponse {
            released: self.inner.workspaces.remove(id),
        })
    }
}
