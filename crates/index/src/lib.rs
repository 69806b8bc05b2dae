//! Repository index for the context agent: per-file summaries (classes, functions, methods,
//! signatures, imports) from tree-sitter for Python, JavaScript, TypeScript, Go and Java; the
//! import graph with imports resolved to the repository's files in both directions; ripgrep's
//! own crates for `search_files`; a persistent tantivy index over symbol-level chunks for
//! `semantic_search`, fused with vector similarity where an OpenAI-compatible embeddings
//! endpoint is configured; stack traces mapped to files and symbols; the repository's
//! conventions (`detect_patterns`) and a ranked repository map cut to a token budget.
//!
//! Nothing here runs what the repository controls: files are only read, symlinks are never
//! followed, and every path handed out is relative to the indexed root.

mod embed;
mod error;
mod index;
mod lang;
mod parse;
mod patterns;
mod repomap;
mod resolve;
mod search;
mod semantic;
mod trace;

pub use embed::{DEFAULT_BATCH_SIZE, EmbeddingsConfig};
pub use error::{Error, Result};
pub use index::{
    Dependencies, Edge, FileSummary, Index, IndexOptions, IndexStats, SkipReason, Skipped,
};
pub use lang::Lang;
pub use parse::{Chunk, Import, Symbol, SymbolKind};
pub use patterns::{Pattern, detect_patterns};
pub use repomap::repo_map;
pub use search::{SearchMatch, SearchOptions, search_files};
pub use semantic::{Ranking, SemanticHit, SemanticIndex, SemanticResults, SyncStats};
pub use trace::{Frame, RankedFile, TraceAnalysis, TraceFormat, analyze_trace};
