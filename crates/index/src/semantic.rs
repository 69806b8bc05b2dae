//! `semantic_search(query)`: a full-text index (tantivy, BM25) over symbol-level chunks, kept
//! on disk and updated incrementally by content hash. Identifiers are also indexed split into
//! their words (`averagePrice`, `average_price` -> `average price`), so a query in words finds
//! code named in either style.
//!
//! Where an embeddings endpoint is configured ([`SemanticIndex::set_embeddings`]) the ranking
//! is hybrid: every chunk is embedded once (batched, keyed by the chunk's content hash, kept
//! next to the full-text index), the query too, and the BM25 ranking is fused with the cosine
//! ranking by reciprocal rank fusion. An endpoint failure never loses the full-text index: the
//! sync reports it and embeds the missing chunks next time, and a search falls back to full
//! text and says so ([`Ranking::FullTextFallback`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{QueryParser, TermQuery};
use tantivy::schema::{Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value};
use tantivy::{DocAddress, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use crate::embed::{Embedder, EmbeddingsConfig};
use crate::index::{FileSummary, Index, content_hash};
use crate::parse::SymbolKind;
use crate::{Error, Result};

/// The on-disk layout's version: a directory of its own, so a new layout starts afresh.
const LAYOUT: &str = "v2";
/// The file holding each indexed file's content hash and chunk hashes.
const STATE: &str = "state.json";
/// The file holding the chunks' vectors.
const VECTORS: &str = "vectors.json";
/// Bytes of a symbol's source kept as its chunk.
const MAX_CHUNK: usize = 4096;
/// tantivy's smallest writer budget is 15 MB per thread; one thread suffices.
const WRITER_BYTES: usize = 50_000_000;
/// Reciprocal rank fusion's constant (Cormack et al.): damps the weight of the first ranks so
/// that agreement of both rankings counts more than either's top hit.
const RRF_K: f32 = 60.0;
/// Candidates taken from each ranking before fusion, at least.
const FUSION_CANDIDATES: usize = 50;

/// One hit of [`SemanticIndex::search`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SemanticHit {
    /// Repository path.
    pub path: String,
    /// The symbol (`Class.method` or `function`).
    pub symbol: String,
    /// What it is.
    pub kind: SymbolKind,
    /// Its signature.
    pub signature: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based.
    pub end_line: u32,
    /// Higher is better: the BM25 score in full-text ranking, the fused reciprocal-rank score
    /// in hybrid ranking.
    pub score: f32,
}

/// How a search was ranked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "ranking", rename_all = "snake_case")]
pub enum Ranking {
    /// No embeddings endpoint is configured: BM25 alone.
    FullText,
    /// BM25 fused with vector similarity.
    Hybrid,
    /// An endpoint is configured but could not be used for this search: BM25 alone.
    FullTextFallback {
        /// Why.
        reason: String,
    },
}

/// What [`SemanticIndex::search`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SemanticResults {
    /// Best first.
    pub hits: Vec<SemanticHit>,
    /// How they were ranked.
    pub ranking: Ranking,
}

/// What [`SemanticIndex::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncStats {
    /// Files whose chunks were (re)written.
    pub files_updated: usize,
    /// Files whose chunks were removed.
    pub files_removed: usize,
    /// Files left as they were.
    pub files_unchanged: usize,
    /// Chunks embedded in this sync.
    pub chunks_embedded: usize,
    /// Chunks still without a vector because the endpoint failed (embedded next sync).
    pub chunks_unembedded: usize,
    /// The endpoint's failure, when it failed; the full-text index is up to date regardless.
    pub embeddings_error: Option<String>,
}

#[derive(Clone, Copy)]
struct Fields {
    path: Field,
    symbol: Field,
    kind: Field,
    signature: Field,
    words: Field,
    body: Field,
    start: Field,
    end: Field,
    chunk: Field,
}

/// Per indexed file: its content hash and the content hashes of its chunks.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct FileState {
    hash: u64,
    chunks: Vec<u64>,
}

/// The chunks' vectors, for one model.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Vectors {
    model: String,
    vectors: HashMap<u64, Vec<f32>>,
}

/// The persistent full-text index of one repository's symbols.
pub struct SemanticIndex {
    dir: PathBuf,
    index: tantivy::Index,
    reader: IndexReader,
    fields: Fields,
    files: BTreeMap<String, FileState>,
    embedder: Option<Embedder>,
    vectors: Vectors,
}

impl std::fmt::Debug for SemanticIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticIndex")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .field("vectors", &self.vectors.vectors.len())
            .finish()
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        path: b.add_text_field("path", STRING | STORED),
        symbol: b.add_text_field("symbol", TEXT | STORED),
        kind: b.add_text_field("kind", STRING | STORED),
        signature: b.add_text_field("signature", TEXT | STORED),
        words: b.add_text_field("words", TEXT),
        body: b.add_text_field("body", TEXT),
        start: b.add_u64_field("start_line", STORED),
        end: b.add_u64_field("end_line", STORED),
        chunk: b.add_u64_field("chunk", INDEXED | STORED),
    };
    (b.build(), fields)
}

fn full_text(source: tantivy::TantivyError) -> Error {
    Error::FullText(source)
}

/// One symbol's chunk, as indexed and embedded.
struct ChunkDoc {
    hash: u64,
    symbol: String,
    kind: String,
    signature: String,
    words: String,
    body: String,
    start: u32,
    end: u32,
    /// What is embedded: the path, the signature and the source.
    embed_text: String,
}

/// The chunks of one file, its symbols' text read from `root`.
fn chunks_of(root: &Path, summary: &FileSummary) -> Vec<ChunkDoc> {
    // A file gone since it was indexed is chunked by its signatures alone.
    let source = std::fs::read(root.join(&summary.path)).unwrap_or_default();
    let lines: Vec<&[u8]> = source.split(|b| *b == b'\n').collect();
    summary
        .symbols
        .iter()
        .map(|s| {
            let symbol = match &s.parent {
                Some(parent) => format!("{parent}.{}", s.name),
                None => s.name.clone(),
            };
            let from = (s.start_line as usize).saturating_sub(1).min(lines.len());
            let to = (s.end_line as usize).min(lines.len()).max(from);
            let mut body = lines[from..to].join(&b'\n');
            body.truncate(MAX_CHUNK);
            let body = String::from_utf8_lossy(&body).into_owned();
            let words = format!(
                "{} {} {}",
                split_words(&symbol),
                split_words(&s.signature),
                split_words(&summary.path)
            );
            let kind = serde_json::to_value(s.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let embed_text = format!("{}\n{}\n{body}", summary.path, s.signature);
            ChunkDoc {
                hash: content_hash(embed_text.as_bytes()),
                symbol,
                kind,
                signature: s.signature.clone(),
                words,
                body,
                start: s.start_line,
                end: s.end_line,
                embed_text,
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 {
        dot / denominator
    } else {
        0.0
    }
}

/// Writes `value` as JSON to a temporary file renamed over `path`: a crash leaves the old file.
fn save_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = serde_json::to_vec(value).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl SemanticIndex {
    /// Opens the index kept under `dir`, creating it if missing.
    pub fn open(dir: &Path) -> Result<Self> {
        let dir = dir.join(LAYOUT);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(&dir).map_err(|e| full_text(e.into()))?;
        let index = tantivy::Index::open_or_create(directory, schema).map_err(full_text)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(full_text)?;
        // A missing or unreadable state only costs a full re-index.
        let files = std::fs::read(dir.join(STATE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Self {
            dir,
            index,
            reader,
            fields,
            files,
            embedder: None,
            vectors: Vectors::default(),
        })
    }

    /// Ranks by vector similarity too, with chunks embedded by `config`'s endpoint. Vectors
    /// kept from an earlier run are reused when they came from the same model.
    pub fn set_embeddings(&mut self, config: EmbeddingsConfig) -> Result<()> {
        let embedder = Embedder::new(config)?;
        // Unreadable or another model's vectors: everything is embedded again.
        self.vectors = std::fs::read(self.dir.join(VECTORS))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vectors>(&b).ok())
            .filter(|v| v.model == embedder.model())
            .unwrap_or_else(|| Vectors {
                model: embedder.model().to_owned(),
                vectors: HashMap::new(),
            });
        self.embedder = Some(embedder);
        Ok(())
    }

    /// Brings the chunks up to date with `index`: files whose content hash changed are
    /// re-chunked, removed files dropped, the rest left alone; then, with an endpoint, every
    /// chunk without a vector is embedded. Stops with [`Error::Cancelled`], keeping the
    /// previous state on disk, when `index`'s cancel flag is raised.
    pub fn sync(&mut self, index: &Index) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let mut writer: IndexWriter<TantivyDocument> = self
            .index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(full_text)?;
        let f = self.fields;
        let mut seen = BTreeSet::new();
        let mut files = self.files.clone();
        // Texts of the chunks written now, for embedding without reading the files again.
        let mut texts: HashMap<u64, String> = HashMap::new();
        for summary in index.summaries() {
            if index.is_cancelled() {
                // Dropping the writer rolls back everything not committed.
                return Err(Error::Cancelled);
            }
            seen.insert(summary.path.clone());
            let Some(hash) = index.file_hash(&summary.path) else {
                continue;
            };
            if files.get(&summary.path).is_some_and(|s| s.hash == hash) {
                stats.files_unchanged += 1;
                continue;
            }
            writer.delete_term(Term::from_field_text(f.path, &summary.path));
            let chunks = chunks_of(index.root(), summary);
            for c in &chunks {
                writer
                    .add_document(doc!(
                        f.path => summary.path.as_str(),
                        f.symbol => c.symbol.as_str(),
                        f.kind => c.kind.as_str(),
                        f.signature => c.signature.as_str(),
                        f.words => c.words.as_str(),
                        f.body => c.body.as_str(),
                        f.start => u64::from(c.start),
                        f.end => u64::from(c.end),
                        f.chunk => c.hash,
                    ))
                    .map_err(full_text)?;
            }
            let chunk_hashes = chunks.iter().map(|c| c.hash).collect();
            if self.embedder.is_some() {
                texts.extend(chunks.into_iter().map(|c| (c.hash, c.embed_text)));
            }
            files.insert(
                summary.path.clone(),
                FileState {
                    hash,
                    chunks: chunk_hashes,
                },
            );
            stats.files_updated += 1;
        }
        let gone: Vec<String> = files
            .keys()
            .filter(|p| !seen.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            writer.delete_term(Term::from_field_text(f.path, &path));
            files.remove(&path);
            stats.files_removed += 1;
        }
        if stats.files_updated + stats.files_removed > 0 {
            writer.commit().map_err(full_text)?;
            self.files = files;
            save_json(&self.dir.join(STATE), &self.files)?;
        }
        writer.wait_merging_threads().map_err(full_text)?;
        self.reader.reload().map_err(full_text)?;
        self.embed_missing(index, texts, &mut stats)?;
        Ok(stats)
    }

    /// Embeds every live chunk without a vector and drops the vectors of dead chunks. An
    /// endpoint failure is reported in `stats`, keeping what was embedded before it.
    fn embed_missing(
        &mut self,
        index: &Index,
        mut texts: HashMap<u64, String>,
        stats: &mut SyncStats,
    ) -> Result<()> {
        let Some(embedder) = &self.embedder else {
            return Ok(());
        };
        let live: HashSet<u64> = self
            .files
            .values()
            .flat_map(|s| s.chunks.iter().copied())
            .collect();
        let before = self.vectors.vectors.len();
        self.vectors.vectors.retain(|hash, _| live.contains(hash));
        let mut changed = self.vectors.vectors.len() != before;
        let mut missing: Vec<u64> = Vec::new();
        let mut queued = HashSet::new();
        for (path, state) in &self.files {
            let lacking = state
                .chunks
                .iter()
                .any(|h| !self.vectors.vectors.contains_key(h) && !texts.contains_key(h));
            if lacking && let Ok(summary) = index.file_summary(path) {
                // Left without vectors by an earlier failure: chunked again for their text.
                texts.extend(
                    chunks_of(index.root(), summary)
                        .into_iter()
                        .map(|c| (c.hash, c.embed_text)),
                );
            }
            for hash in &state.chunks {
                if !self.vectors.vectors.contains_key(hash) && queued.insert(*hash) {
                    missing.push(*hash);
                }
            }
        }
        missing.retain(|h| texts.contains_key(h));
        let mut result = Ok(());
        for batch in missing.chunks(embedder.batch_size()) {
            if index.is_cancelled() {
                result = Err(Error::Cancelled);
                break;
            }
            let inputs: Vec<&str> = batch
                .iter()
                .filter_map(|h| texts.get(h).map(String::as_str))
                .collect();
            match embedder.embed(&inputs) {
                Ok(vectors) => {
                    stats.chunks_embedded += vectors.len();
                    self.vectors
                        .vectors
                        .extend(batch.iter().copied().zip(vectors));
                    changed = true;
                }
                Err(error) => {
                    stats.embeddings_error = Some(error.to_string());
                    break;
                }
            }
        }
        stats.chunks_unembedded = missing.len() - stats.chunks_embedded;
        if changed {
            // Vectors embedded before a failure or a cancel are kept: they are paid for.
            save_json(&self.dir.join(VECTORS), &self.vectors)?;
        }
        result
    }

    /// The `limit` symbols best matching `query`, best first. Any text is a valid query:
    /// query syntax the parser cannot read is taken as plain words.
    pub fn search(&self, query: &str, limit: usize) -> Result<SemanticResults> {
        let limit = limit.max(1);
        let Some(embedder) = &self.embedder else {
            let hits = self.hits(self.full_text(query, limit)?)?;
            return Ok(SemanticResults {
                hits,
                ranking: Ranking::FullText,
            });
        };
        let candidates = (limit * 4).max(FUSION_CANDIDATES);
        let text_ranked = self.full_text(query, candidates)?;
        let fallback = |reason: String| -> Result<SemanticResults> {
            let mut top = text_ranked.clone();
            top.truncate(limit);
            Ok(SemanticResults {
                hits: self.hits(top)?,
                ranking: Ranking::FullTextFallback { reason },
            })
        };
        if self.vectors.vectors.is_empty() {
            return fallback("no chunk has been embedded yet".to_owned());
        }
        let query_vector = match embedder.embed(&[query]) {
            Ok(mut v) => v.pop().unwrap_or_default(),
            Err(error) => return fallback(error.to_string()),
        };
        let vector_ranked = self.nearest(&query_vector, candidates)?;
        let mut fused: HashMap<DocAddress, (f32, usize)> = HashMap::new();
        for (rank, (_, address)) in text_ranked.iter().enumerate() {
            fused.insert(*address, (1.0 / (RRF_K + rank as f32 + 1.0), rank));
        }
        for (rank, address) in vector_ranked.iter().enumerate() {
            let entry = fused.entry(*address).or_insert((0.0, usize::MAX));
            entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
        let mut ranked: Vec<(f32, usize, DocAddress)> =
            fused.into_iter().map(|(a, (s, r))| (s, r, a)).collect();
        // Ties go to the better full-text rank, then to the document order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        ranked.truncate(limit);
        let hits = self.hits(ranked.into_iter().map(|(s, _, a)| (s, a)).collect())?;
        Ok(SemanticResults {
            hits,
            ranking: Ranking::Hybrid,
        })
    }

    /// The BM25 ranking.
    fn full_text(&self, query: &str, limit: usize) -> Result<Vec<(f32, DocAddress)>> {
        let f = self.fields;
        let mut parser =
            QueryParser::for_index(&self.index, vec![f.symbol, f.words, f.signature, f.body]);
        parser.set_field_boost(f.symbol, 3.0);
        parser.set_field_boost(f.words, 2.0);
        let expanded = format!("{query} {}", split_words(query));
        let (parsed, _errors) = parser.parse_query_lenient(&expanded);
        self.reader
            .searcher()
            .search(&parsed, &TopDocs::with_limit(limit))
            .map_err(full_text)
    }

    /// The documents of the `limit` chunks nearest to `query` by cosine similarity (a brute
    /// force scan: a repository's chunks number in the tens of thousands).
    fn nearest(&self, query: &[f32], limit: usize) -> Result<Vec<DocAddress>> {
        let mut scored: Vec<(f32, u64)> = self
            .vectors
            .vectors
            .iter()
            .map(|(hash, v)| (cosine(query, v), *hash))
            .filter(|(similarity, _)| *similarity > 0.0)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let searcher = self.reader.searcher();
        let mut out = Vec::new();
        for (_, hash) in scored {
            if out.len() >= limit {
                break;
            }
            let term = TermQuery::new(
                Term::from_field_u64(self.fields.chunk, hash),
                IndexRecordOption::Basic,
            );
            let docs = searcher
                .search(&term, &TopDocs::with_limit(limit))
                .map_err(full_text)?;
            let mut addresses: Vec<DocAddress> = docs.into_iter().map(|(_, a)| a).collect();
            addresses.sort();
            out.extend(addresses);
        }
        out.truncate(limit);
        Ok(out)
    }

    fn hits(&self, ranked: Vec<(f32, DocAddress)>) -> Result<Vec<SemanticHit>> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut hits = Vec::with_capacity(ranked.len());
        for (score, address) in ranked {
            let d: TantivyDocument = searcher.doc(address).map_err(full_text)?;
            let text = |field| {
                d.get_first(field)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            let num = |field| {
                d.get_first(field)
                    .and_then(|v| v.as_u64())
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0)
            };
            let kind = serde_json::from_value(serde_json::Value::String(text(f.kind)))
                .unwrap_or(SymbolKind::Function);
            hits.push(SemanticHit {
                path: text(f.path),
                symbol: text(f.symbol),
                kind,
                signature: text(f.signature),
                start_line: num(f.start),
                end_line: num(f.end),
                score,
            });
        }
        Ok(hits)
    }
}

/// `averagePrice`, `average_price`, `HTTPServer` -> `average price`, `http server`.
fn split_words(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for token in text.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = token.chars().collect();
        let mut current = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let boundary = c.is_uppercase()
                && i > 0
                && (chars[i - 1].is_lowercase()
                    || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                        && chars[i - 1].is_uppercase());
            if boundary && !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            current.extend(c.to_lowercase());
        }
        if !current.is_empty() {
            words.push(current);
        }
    }
    words.join(" ")
}

#[cfg(test)]
#[path = "semantic_tests.rs"]
mod tests;
