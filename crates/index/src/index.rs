//! The index of one repository: summaries of every file, the resolved import graph, and what
//! was skipped and why. Re-indexing reuses every file whose size and modification time, or
//! failing those its content hash, are unchanged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::lang::Lang;
use crate::parse::{Chunk, Import, Parsers, Symbol};
use crate::{Error, Result};

/// Limits and choices for indexing.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Files larger than this are not parsed (reported as too large).
    pub max_file_bytes: u64,
    /// Threads parsing files; 0 means one per available core.
    pub threads: usize,
    /// Raised by the caller to stop a running build, refresh or semantic sync early with
    /// [`Error::Cancelled`]; the previous state is kept.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: 16 * 1024 * 1024,
            threads: 0,
            cancel: None,
        }
    }
}

/// The summary of one source file (`get_file_summary`, `parse_ast`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSummary {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// The file's language.
    pub language: Lang,
    /// The declared package (Go, Java).
    pub package: Option<String>,
    /// Lines in the file.
    pub lines: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// Whether the parser found syntax errors (the summary holds what could be read).
    pub has_errors: bool,
    /// Classes, functions, methods and types, in source order.
    pub symbols: Vec<Symbol>,
    /// Imports as written.
    pub imports: Vec<Import>,
    /// For files over 10k lines: chunks along top-level declarations.
    pub chunks: Vec<Chunk>,
    /// Names the file uses that resolve without an import naming their file: Java type
    /// names (same package), Go `pkg.Name` selectors. Empty for other languages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// Why a file was left out of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Not a language the index parses.
    UnknownLanguage,
    /// A NUL byte in its first 8 KiB.
    Binary,
    /// Larger than [`IndexOptions::max_file_bytes`].
    TooLarge,
    /// A symbolic link leading out of the repository (or nowhere).
    SymlinkOutside,
    /// A symbolic link to a file in the repository (the target is indexed under its own path).
    SymlinkInside,
    /// The file could not be read.
    Unreadable,
    /// The parser gave up on it.
    Unparsable,
}

/// A file left out, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// Path relative to the root.
    pub path: String,
    /// Why.
    pub reason: SkipReason,
}

/// An import resolved to a file of the repository.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Edge {
    /// The importing file.
    pub from: String,
    /// The imported file.
    pub to: String,
    /// The import as written.
    pub import: String,
}

/// `find_dependencies`: what a file uses and what uses it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dependencies {
    /// The file asked about.
    pub path: String,
    /// Files of the repository it imports.
    pub uses: Vec<Edge>,
    /// Files of the repository importing it.
    pub used_by: Vec<Edge>,
    /// Imports that do not resolve inside the repository (third-party, standard library).
    pub external: Vec<String>,
}

/// Counts from the last (re-)index.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexStats {
    /// Files seen by the walk.
    pub files_seen: usize,
    /// Source files in the index.
    pub files_indexed: usize,
    /// Files parsed in this pass (the rest were reused).
    pub files_parsed: usize,
    /// Bytes of the files parsed in this pass.
    pub bytes_parsed: u64,
    /// Bytes of all indexed files.
    pub bytes_indexed: u64,
    /// Files with syntax errors.
    pub files_with_errors: usize,
    /// Resolved import edges.
    pub edges: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    size: u64,
    mtime: Option<SystemTime>,
    hash: u64,
    summary: Arc<FileSummary>,
}

/// The index of one repository.
#[derive(Debug)]
pub struct Index {
    root: PathBuf,
    options: IndexOptions,
    files: BTreeMap<String, Entry>,
    skipped: Vec<Skipped>,
    edges: Vec<Edge>,
    external: HashMap<String, Vec<String>>,
    stats: IndexStats,
    /// Whether the graph was built once (later passes may update it in place).
    resolved: bool,
    /// The `go.mod`, `tsconfig*.json` and `jsconfig.json` files of the tree.
    manifests: Vec<String>,
    /// Their sizes and modification times: an edited manifest re-resolves every import.
    manifest_stamps: Vec<(u64, Option<SystemTime>)>,
}

impl Index {
    /// Indexes the tree at `root`.
    pub fn build(root: &Path, options: IndexOptions) -> Result<Self> {
        let root = root.canonicalize().map_err(|source| Error::Io {
            path: root.to_owned(),
            source,
        })?;
        if !root.is_dir() {
            return Err(Error::NotADirectory(root));
        }
        let mut index = Self {
            root,
            options,
            files: BTreeMap::new(),
            skipped: Vec::new(),
            edges: Vec::new(),
            external: HashMap::new(),
            stats: IndexStats::default(),
            resolved: false,
            manifests: Vec::new(),
            manifest_stamps: Vec::new(),
        };
        index.refresh()?;
        Ok(index)
    }

    /// Brings the index up to date with the tree: new and changed files are parsed, removed
    /// ones dropped, the graph rebuilt.
    pub fn refresh(&mut self) -> Result<&IndexStats> {
        let walked = walk(&self.root)?;
        let mut stats = IndexStats {
            files_seen: walked.len(),
            ..IndexStats::default()
        };
        let mut skipped = Vec::new();
        let mut todo = Vec::new();
        let mut files = BTreeMap::new();
        let (manifests, manifest_stamps): (Vec<String>, Vec<_>) = walked
            .iter()
            .filter(|f| crate::resolve::is_manifest(&f.rel))
            .map(|f| match f.kind {
                WalkKind::File { size, mtime } => (f.rel.clone(), (size, mtime)),
                WalkKind::Symlink => (f.rel.clone(), (0, None)),
            })
            .unzip();
        for file in walked {
            match file.kind {
                WalkKind::Symlink => {
                    let reason = match symlink_target_inside(&self.root, &file.abs) {
                        true => SkipReason::SymlinkInside,
                        false => SkipReason::SymlinkOutside,
                    };
                    skipped.push(Skipped {
                        path: file.rel,
                        reason,
                    });
                }
                WalkKind::File { size, mtime } => {
                    let Some(lang) = Lang::from_path(&file.abs) else {
                        skipped.push(Skipped {
                            path: file.rel,
                            reason: SkipReason::UnknownLanguage,
                        });
                        continue;
                    };
                    if size > self.options.max_file_bytes {
                        skipped.push(Skipped {
                            path: file.rel,
                            reason: SkipReason::TooLarge,
                        });
                        continue;
                    }
                    match self.files.get(&file.rel) {
                        Some(old) if old.size == size && old.mtime == mtime && mtime.is_some() => {
                            files.insert(file.rel, old.clone());
                        }
                        _ => todo.push(Todo {
                            rel: file.rel,
                            abs: file.abs,
                            lang,
                            size,
                            mtime,
                        }),
                    }
                }
            }
        }
        let results = self.parse_all(todo)?;
        if self.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut changed = HashSet::new();
        // A file whose package changed moves Java types: every import must be looked at again.
        let mut packages_moved = false;
        for result in results {
            match result {
                Parsed::Ok(rel, entry) => {
                    stats.files_parsed += 1;
                    stats.bytes_parsed += entry.size;
                    packages_moved |= self
                        .files
                        .get(&rel)
                        .is_some_and(|old| old.summary.package != entry.summary.package);
                    changed.insert(rel.clone());
                    files.insert(rel, entry);
                }
                Parsed::Same(rel, size, mtime) => {
                    if let Some(old) = self.files.get(&rel) {
                        let mut entry = old.clone();
                        entry.size = size;
                        entry.mtime = mtime;
                        files.insert(rel, entry);
                    }
                }
                Parsed::Skip(skip) => skipped.push(skip),
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        // The same paths as before: only the changed files' imports can resolve differently.
        let same_paths = files.len() == self.files.len()
            && files.keys().zip(self.files.keys()).all(|(a, b)| a == b);
        let incremental = same_paths
            && !packages_moved
            && manifests == self.manifests
            && manifest_stamps == self.manifest_stamps;
        self.files = files;
        self.skipped = skipped;
        self.manifests = manifests;
        self.manifest_stamps = manifest_stamps;
        self.update_graph(&changed, incremental);
        self.finish(stats);
        Ok(&self.stats)
    }

    /// Re-indexes just `paths` (relative to the root), for callers that know what changed
    /// (a write through the sandbox): no walk of the tree. A path that is gone is dropped; one
    /// that is new is added; anything else follows the same rules as [`Index::refresh`].
    pub fn update_paths(&mut self, paths: &[&str]) -> Result<&IndexStats> {
        let mut stats = IndexStats {
            files_seen: self.stats.files_seen,
            ..IndexStats::default()
        };
        let mut parsers = Parsers::new()?;
        let mut changed = HashSet::new();
        let mut structure = false;
        for path in paths {
            let rel = normalize(path)?;
            let abs = self.root.join(&rel);
            self.skipped.retain(|s| s.path != rel);
            let meta = std::fs::symlink_metadata(&abs).ok();
            if crate::resolve::is_manifest(&rel) {
                // A Go module or TypeScript project changed: every import is resolved again.
                structure = true;
                let stamp = meta
                    .as_ref()
                    .filter(|m| m.is_file())
                    .map(|m| (m.len(), m.modified().ok()));
                let at = self.manifests.binary_search(&rel);
                match (at, stamp) {
                    (Ok(i), Some(stamp)) => self.manifest_stamps[i] = stamp,
                    (Ok(i), None) => {
                        self.manifests.remove(i);
                        self.manifest_stamps.remove(i);
                    }
                    (Err(i), Some(stamp)) => {
                        self.manifests.insert(i, rel.clone());
                        self.manifest_stamps.insert(i, stamp);
                    }
                    (Err(_), None) => {}
                }
            }
            let existed = self.files.contains_key(&rel);
            let mut keep = |index: &mut Self, skip: Option<SkipReason>| {
                if let Some(reason) = skip {
                    index.skipped.push(Skipped {
                        path: rel.clone(),
                        reason,
                    });
                }
                if index.files.remove(&rel).is_some() {
                    structure = true;
                }
            };
            let Some(meta) = meta else {
                keep(self, None);
                continue;
            };
            if meta.file_type().is_symlink() {
                let reason = match symlink_target_inside(&self.root, &abs) {
                    true => SkipReason::SymlinkInside,
                    false => SkipReason::SymlinkOutside,
                };
                keep(self, Some(reason));
                continue;
            }
            if !meta.is_file() {
                keep(self, None);
                continue;
            }
            let Some(lang) = Lang::from_path(&abs) else {
                keep(self, Some(SkipReason::UnknownLanguage));
                continue;
            };
            if meta.len() > self.options.max_file_bytes {
                keep(self, Some(SkipReason::TooLarge));
                continue;
            }
            let todo = Todo {
                rel: rel.clone(),
                abs,
                lang,
                size: meta.len(),
                mtime: meta.modified().ok(),
            };
            match self.parse_one(&mut parsers, &todo) {
                Parsed::Ok(rel, entry) => {
                    stats.files_parsed += 1;
                    stats.bytes_parsed += entry.size;
                    let moved = self
                        .files
                        .get(&rel)
                        .is_some_and(|old| old.summary.package != entry.summary.package);
                    structure |= moved || !existed;
                    changed.insert(rel.clone());
                    self.files.insert(rel, entry);
                }
                Parsed::Same(rel, size, mtime) => {
                    if let Some(entry) = self.files.get_mut(&rel) {
                        entry.size = size;
                        entry.mtime = mtime;
                    }
                }
                Parsed::Skip(skip) => {
                    keep(self, None);
                    self.skipped.push(skip);
                }
            }
        }
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        self.update_graph(&changed, !structure);
        self.finish(stats);
        Ok(&self.stats)
    }

    /// Rebuilds the import graph, or with `incremental` (the same files as before, no Java
    /// package moved) re-resolves only the imports of the `changed` files.
    fn update_graph(&mut self, changed: &HashSet<String>, incremental: bool) {
        if !incremental || !self.resolved {
            let (edges, external) =
                crate::resolve::resolve(&self.root, &self.files_map(), None, &self.manifests);
            self.edges = edges;
            self.external = external;
            self.resolved = true;
        } else if !changed.is_empty() {
            let (edges, external) = crate::resolve::resolve(
                &self.root,
                &self.files_map(),
                Some(changed),
                &self.manifests,
            );
            // Edges are sorted by their importing file: each changed file's edges are one run,
            // replaced in place (a full sort of a large graph costs more than the parse).
            let mut new_edges: BTreeMap<&str, Vec<Edge>> = BTreeMap::new();
            for edge in edges {
                // `from` is one of `changed`; look it up to borrow from there.
                if let Some(from) = changed.get(&edge.from) {
                    new_edges.entry(from.as_str()).or_default().push(edge);
                }
            }
            for from in changed {
                let start = self
                    .edges
                    .partition_point(|e| e.from.as_str() < from.as_str());
                let end = start + self.edges[start..].partition_point(|e| e.from == *from);
                let mut run = new_edges.remove(from.as_str()).unwrap_or_default();
                run.sort_unstable();
                self.edges.splice(start..end, run);
            }
            for path in changed {
                self.external.remove(path);
            }
            self.external.extend(external);
        }
    }

    fn finish(&mut self, mut stats: IndexStats) {
        stats.files_indexed = self.files.len();
        stats.bytes_indexed = self.files.values().map(|e| e.size).sum();
        stats.files_with_errors = self.files.values().filter(|e| e.summary.has_errors).count();
        stats.edges = self.edges.len();
        self.stats = stats;
    }

    fn files_map(&self) -> BTreeMap<String, Arc<FileSummary>> {
        self.files
            .iter()
            .map(|(k, v)| (k.clone(), v.summary.clone()))
            .collect()
    }

    fn parse_all(&self, mut todo: Vec<Todo>) -> Result<Vec<Parsed>> {
        // Largest first: a bundle of several MB taken last would leave the other threads idle.
        todo.sort_unstable_by_key(|t| std::cmp::Reverse(t.size));
        let threads = match self.options.threads {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
        .min(todo.len().max(1));
        let next = AtomicUsize::new(0);
        let results = Mutex::new(Vec::with_capacity(todo.len()));
        let grammar_error = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut parsers = match Parsers::new() {
                        Ok(p) => p,
                        Err(e) => {
                            *grammar_error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                            return;
                        }
                    };
                    let mut local = Vec::new();
                    while !self.is_cancelled() {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = todo.get(i) else { break };
                        local.push(self.parse_one(&mut parsers, item));
                    }
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .extend(local);
                });
            }
        });
        if let Some(e) = grammar_error
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            return Err(e);
        }
        Ok(results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn parse_one(&self, parsers: &mut Parsers, item: &Todo) -> Parsed {
        let skip = |reason| {
            Parsed::Skip(Skipped {
                path: item.rel.clone(),
                reason,
            })
        };
        let Ok(source) = std::fs::read(&item.abs) else {
            return skip(SkipReason::Unreadable);
        };
        if source[..source.len().min(8192)].contains(&0) {
            return skip(SkipReason::Binary);
        }
        let hash = content_hash(&source);
        if let Some(old) = self.files.get(&item.rel)
            && old.hash == hash
        {
            return Parsed::Same(item.rel.clone(), item.size, item.mtime);
        }
        let Some(extracted) = parsers.extract(item.lang, &source) else {
            return skip(SkipReason::Unparsable);
        };
        let summary = FileSummary {
            path: item.rel.clone(),
            language: item.lang,
            package: extracted.package,
            lines: extracted.lines,
            bytes: item.size,
            has_errors: extracted.has_errors,
            symbols: extracted.symbols,
            imports: extracted.imports,
            chunks: extracted.chunks,
            references: extracted.references,
        };
        Parsed::Ok(
            item.rel.clone(),
            Entry {
                size: item.size,
                mtime: item.mtime,
                hash,
                summary: Arc::new(summary),
            },
        )
    }

    /// Whether the caller asked to stop.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.options
            .cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// The root indexed (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Counts from the last (re-)index.
    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    /// Files left out, sorted by path.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Every indexed file's summary, sorted by path.
    pub fn summaries(&self) -> impl Iterator<Item = &FileSummary> {
        self.files.values().map(|e| e.summary.as_ref())
    }

    /// The content hash of an indexed file (`None` when not indexed).
    pub fn file_hash(&self, path: &str) -> Option<u64> {
        self.files.get(path).map(|e| e.hash)
    }

    /// Every resolved import edge, sorted.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// `get_file_summary(path)` / `parse_ast(file_path)`.
    pub fn file_summary(&self, path: &str) -> Result<&FileSummary> {
        let rel = normalize(path)?;
        self.files
            .get(&rel)
            .map(|e| e.summary.as_ref())
            .ok_or(Error::NotIndexed(rel))
    }

    /// `find_dependencies(file_path)`: both directions of the import graph.
    pub fn dependencies(&self, path: &str) -> Result<Dependencies> {
        let rel = normalize(path)?;
        if !self.files.contains_key(&rel) {
            return Err(Error::NotIndexed(rel));
        }
        let uses = self
            .edges
            .iter()
            .filter(|e| e.from == rel)
            .cloned()
            .collect();
        let used_by = self.edges.iter().filter(|e| e.to == rel).cloned().collect();
        let external = self.external.get(&rel).cloned().unwrap_or_default();
        Ok(Dependencies {
            path: rel,
            uses,
            used_by,
            external,
        })
    }
}

/// Checks a caller's path: relative, no `..`, no root; returns it `/`-separated.
pub(crate) fn normalize(path: &str) -> Result<String> {
    let p = Path::new(path);
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::PathOutsideRepository(path.to_owned()));
            }
        }
    }
    if parts.is_empty() {
        return Err(Error::PathOutsideRepository(path.to_owned()));
    }
    Ok(parts.join("/"))
}

pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    // SipHash with fixed keys: stable within a build, which is all an in-memory index needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn symlink_target_inside(root: &Path, link: &Path) -> bool {
    link.canonicalize()
        .is_ok_and(|t| t.starts_with(root) && t.is_file())
}

struct Todo {
    rel: String,
    abs: PathBuf,
    lang: Lang,
    size: u64,
    mtime: Option<SystemTime>,
}

enum Parsed {
    Ok(String, Entry),
    Same(String, u64, Option<SystemTime>),
    Skip(Skipped),
}

enum WalkKind {
    File {
        size: u64,
        mtime: Option<SystemTime>,
    },
    Symlink,
}

struct Walked {
    rel: String,
    abs: PathBuf,
    kind: WalkKind,
}

/// Every file under `root` that `.gitignore` (and `.ignore`) let through, hidden files and
/// `.git` excluded; symbolic links are reported, never followed.
fn walk(root: &Path) -> Result<Vec<Walked>> {
    let out = Mutex::new(Vec::new());
    let walker = ignore::WalkBuilder::new(root)
        .follow_links(false)
        .require_git(false)
        .build_parallel();
    walker.run(|| {
        let out = &out;
        Box::new(move |entry| {
            let Ok(entry) = entry else {
                return ignore::WalkState::Continue;
            };
            let Some(ft) = entry.file_type() else {
                return ignore::WalkState::Continue;
            };
            let kind = if ft.is_symlink() {
                WalkKind::Symlink
            } else if ft.is_file() {
                let meta = entry.metadata().ok();
                WalkKind::File {
                    size: meta.as_ref().map_or(0, std::fs::Metadata::len),
                    mtime: meta.and_then(|m| m.modified().ok()),
                }
            } else {
                return ignore::WalkState::Continue;
            };
            let abs = entry.path().to_owned();
            let Ok(rel) = abs.strip_prefix(root) else {
                return ignore::WalkState::Continue;
            };
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Walked { rel, abs, kind });
            ignore::WalkState::Continue
        })
    });
    let mut files = out
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}
