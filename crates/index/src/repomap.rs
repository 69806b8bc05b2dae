//! The repository map: the most important symbols, ranked by the import graph, cut to a
//! token budget, for the planner's prompt.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::index::Index;
use crate::parse::SymbolKind;

/// Characters per token assumed when cutting to the budget (a common average for code).
const CHARS_PER_TOKEN: usize = 4;

/// Renders the map: files by PageRank over the import graph (a file imported by important
/// files is important), each with its classes, functions and method signatures, until
/// `max_tokens` is spent.
pub fn repo_map(index: &Index, max_tokens: usize) -> String {
    let files: Vec<&str> = index.summaries().map(|s| s.path.as_str()).collect();
    let position: HashMap<&str, usize> = files.iter().enumerate().map(|(i, f)| (*f, i)).collect();
    let n = files.len();
    if n == 0 {
        return String::new();
    }
    let mut out_degree = vec![0usize; n];
    let mut links = Vec::new();
    for e in index.edges() {
        if let (Some(&a), Some(&b)) = (position.get(e.from.as_str()), position.get(e.to.as_str())) {
            out_degree[a] += 1;
            links.push((a, b));
        }
    }
    let damping = 0.85;
    let base = (1.0 - damping) / n as f64;
    let mut rank = vec![1.0 / n as f64; n];
    for _ in 0..30 {
        let dangling: f64 = (0..n)
            .filter(|i| out_degree[*i] == 0)
            .map(|i| rank[i])
            .sum();
        let mut next = vec![base + damping * dangling / n as f64; n];
        for &(a, b) in &links {
            next[b] += damping * rank[a] / out_degree[a] as f64;
        }
        rank = next;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| {
        rank[*b]
            .total_cmp(&rank[*a])
            .then_with(|| files[*a].cmp(files[*b]))
    });
    let budget = max_tokens.saturating_mul(CHARS_PER_TOKEN);
    let mut map = String::new();
    for i in order {
        let Ok(summary) = index.file_summary(files[i]) else {
            continue;
        };
        let mut block = format!("{}:\n", summary.path);
        for s in &summary.symbols {
            let indent = if s.parent.is_some() && s.kind == SymbolKind::Method {
                "    "
            } else {
                "  "
            };
            let _ = writeln!(block, "{indent}{}", s.signature);
        }
        if map.len() + block.len() > budget {
            // A file that does not fit whole is named alone, if that fits.
            let name_only = format!("{}\n", summary.path);
            if map.len() + name_only.len() <= budget {
                map.push_str(&name_only);
            }
            continue;
        }
        map.push_str(&block);
    }
    map
}
