//! `semantic_search(query)`: a full-text index (tantivy, BM25) over symbol-level chunks, kept
//! on disk and updated incrementally by content hash. Identifiers are also indexed split into
//! their words (`averagePrice`, `average_price` -> `average price`), so a query in words finds
//! code named in either style.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, STORED, STRING, Schema, TEXT, Value};
use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use crate::index::Index;
use crate::parse::SymbolKind;
use crate::{Error, Result};

/// The on-disk layout's version: a directory of its own, so a new layout starts afresh.
const LAYOUT: &str = "v1";
/// The file holding each indexed file's content hash.
const HASHES: &str = "hashes.json";
/// Bytes of a symbol's source kept as its chunk.
const MAX_CHUNK: usize = 4096;
/// tantivy's smallest writer budget is 15 MB per thread; one thread suffices.
const WRITER_BYTES: usize = 50_000_000;

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
    /// BM25 score; higher is better.
    pub score: f32,
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
}

/// The persistent full-text index of one repository's symbols.
pub struct SemanticIndex {
    dir: PathBuf,
    index: tantivy::Index,
    reader: IndexReader,
    fields: Fields,
    hashes: BTreeMap<String, u64>,
}

impl std::fmt::Debug for SemanticIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticIndex")
            .field("dir", &self.dir)
            .field("files", &self.hashes.len())
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
    };
    (b.build(), fields)
}

fn full_text(source: tantivy::TantivyError) -> Error {
    Error::FullText(source)
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
        // A missing or unreadable hash file only costs a full re-index.
        let hashes = std::fs::read(dir.join(HASHES))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Self {
            dir,
            index,
            reader,
            fields,
            hashes,
        })
    }

    /// Brings the chunks up to date with `index`: files whose content hash changed are
    /// re-chunked, removed files dropped, the rest left alone.
    pub fn sync(&mut self, index: &Index) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let mut writer: IndexWriter<TantivyDocument> = self
            .index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(full_text)?;
        let f = self.fields;
        let mut seen = BTreeSet::new();
        for summary in index.summaries() {
            seen.insert(summary.path.clone());
            let Some(hash) = index.file_hash(&summary.path) else {
                continue;
            };
            if self.hashes.get(&summary.path) == Some(&hash) {
                stats.files_unchanged += 1;
                continue;
            }
            writer.delete_term(Term::from_field_text(f.path, &summary.path));
            // The file is read again for its symbols' text; a file gone since is indexed by
            // its signatures alone.
            let source = std::fs::read(index.root().join(&summary.path)).unwrap_or_default();
            let lines: Vec<&[u8]> = source.split(|b| *b == b'\n').collect();
            for s in &summary.symbols {
                let name = match &s.parent {
                    Some(parent) => format!("{parent}.{}", s.name),
                    None => s.name.clone(),
                };
                let from = (s.start_line as usize).saturating_sub(1).min(lines.len());
                let to = (s.end_line as usize).min(lines.len()).max(from);
                let mut body = lines[from..to].join(&b'\n');
                body.truncate(MAX_CHUNK);
                let body = String::from_utf8_lossy(&body);
                let words = format!(
                    "{} {} {}",
                    split_words(&name),
                    split_words(&s.signature),
                    split_words(&summary.path)
                );
                let kind = serde_json::to_value(s.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                writer
                    .add_document(doc!(
                        f.path => summary.path.as_str(),
                        f.symbol => name.as_str(),
                        f.kind => kind,
                        f.signature => s.signature.as_str(),
                        f.words => words,
                        f.body => body.as_ref(),
                        f.start => u64::from(s.start_line),
                        f.end => u64::from(s.end_line),
                    ))
                    .map_err(full_text)?;
            }
            self.hashes.insert(summary.path.clone(), hash);
            stats.files_updated += 1;
        }
        let gone: Vec<String> = self
            .hashes
            .keys()
            .filter(|p| !seen.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            writer.delete_term(Term::from_field_text(f.path, &path));
            self.hashes.remove(&path);
            stats.files_removed += 1;
        }
        if stats.files_updated + stats.files_removed > 0 {
            writer.commit().map_err(full_text)?;
            self.save_hashes()?;
        }
        writer.wait_merging_threads().map_err(full_text)?;
        self.reader.reload().map_err(full_text)?;
        Ok(stats)
    }

    fn save_hashes(&self) -> Result<()> {
        let path = self.dir.join(HASHES);
        let tmp = self.dir.join(format!("{HASHES}.tmp"));
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec(&self.hashes).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// The `limit` symbols best matching `query`, best first. Any text is a valid query:
    /// query syntax the parser cannot read is taken as plain words.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SemanticHit>> {
        let f = self.fields;
        let mut parser =
            QueryParser::for_index(&self.index, vec![f.symbol, f.words, f.signature, f.body]);
        parser.set_field_boost(f.symbol, 3.0);
        parser.set_field_boost(f.words, 2.0);
        let expanded = format!("{query} {}", split_words(query));
        let (parsed, _errors) = parser.parse_query_lenient(&expanded);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&parsed, &TopDocs::with_limit(limit.max(1)))
            .map_err(full_text)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
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
