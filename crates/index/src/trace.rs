//! Stack traces and error logs (Python, Node, Go, Java) mapped to repository files and
//! symbols, with the files most likely at fault ranked first (UC-03).

use std::collections::HashMap;

use regex::Regex;

use crate::index::Index;
use crate::parse::Symbol;

/// The runtime a frame's format belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceFormat {
    /// `File "x.py", line 3, in f`.
    Python,
    /// `at f (/x/y.js:3:7)`.
    Node,
    /// `\t/x/y.go:3 +0x1d` after `main.f(...)`, or `y_test.go:12: message`.
    Go,
    /// `at a.b.C.f(C.java:3)`.
    Java,
}

/// One frame of a trace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    /// The format it was read in.
    pub format: TraceFormat,
    /// The path (or Java class) as the trace wrote it.
    pub raw_location: String,
    /// Line, 1-based.
    pub line: u32,
    /// The function the trace names, if any.
    pub function: Option<String>,
    /// The repository file it maps to, if any.
    pub path: Option<String>,
    /// The innermost symbol of that file holding the line (`Class.method` or `function`).
    pub symbol: Option<String>,
    /// Distance from the failure: 0 is where it was raised.
    pub depth: usize,
}

/// A file ranked by how likely it is at fault.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankedFile {
    /// Repository path.
    pub path: String,
    /// Score; higher is more likely.
    pub score: f64,
    /// The lines of it the trace points at.
    pub lines: Vec<u32>,
    /// The symbols of it the trace points at.
    pub symbols: Vec<String>,
}

/// What a trace says about the repository.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TraceAnalysis {
    /// Every frame found, innermost first.
    pub frames: Vec<Frame>,
    /// Repository files, most likely at fault first.
    pub ranked: Vec<RankedFile>,
}

struct Patterns {
    python: Regex,
    node: Regex,
    go_frame: Regex,
    go_func: Regex,
    go_test: Regex,
    java: Regex,
}

fn patterns() -> Option<Patterns> {
    Some(Patterns {
        python: Regex::new(r#"^\s*File "([^"]+)", line (\d+)(?:, in (\S+))?"#).ok()?,
        node: Regex::new(
            r"^\s*at (?:(?:async )?(.+?) \()?((?:file://)?[^\s()]+?):(\d+):(\d+)\)?\s*$",
        )
        .ok()?,
        go_frame: Regex::new(r"^\t(\S+\.go):(\d+)(?: \+0x[0-9a-f]+)?\s*$").ok()?,
        go_func: Regex::new(r"^([\w./*()\-]+)\((?:[^)]*)\)\s*$").ok()?,
        go_test: Regex::new(r"^\s+(\w[\w\-]*_test\.go|\w[\w\-]*\.go):(\d+): ").ok()?,
        java: Regex::new(r"^\s*at (?:[\w.$/@]+/)?([\w$.]+)\.([\w$<>]+)\(([\w$]+\.java):(\d+)\)")
            .ok()?,
    })
}

/// Reads the frames of `trace` and maps them onto `index`.
pub fn analyze_trace(index: &Index, trace: &str) -> TraceAnalysis {
    let Some(p) = patterns() else {
        return TraceAnalysis {
            frames: Vec::new(),
            ranked: Vec::new(),
        };
    };
    // Python prints the innermost frame last; every other runtime prints it first. A log
    // may hold several tracebacks: the order inside each is what counts.
    let mut python = Vec::new();
    let mut others = Vec::new();
    let mut go_func: Option<String> = None;
    for raw in trace.lines() {
        if let Some(c) = p.python.captures(raw) {
            python.push(frame(
                TraceFormat::Python,
                &c[1],
                &c[2],
                c.get(3).map(|m| m.as_str()),
            ));
        } else if let Some(c) = p.java.captures(raw) {
            let class = &c[1];
            let file = &c[3];
            // `a.b.C$Inner` lives in `a/b/C.java`: the package path plus the file name.
            let pkg = class.rfind('.').map_or("", |i| &class[..i]);
            let loc = if pkg.is_empty() {
                file.to_owned()
            } else {
                format!("{}/{file}", pkg.replace('.', "/"))
            };
            let function = format!("{}.{}", class.rsplit('.').next().unwrap_or(class), &c[2]);
            others.push(frame(TraceFormat::Java, &loc, &c[4], Some(&function)));
        } else if let Some(c) = p.go_frame.captures(raw) {
            others.push(frame(
                TraceFormat::Go,
                &c[1],
                &c[2],
                go_func.take().as_deref(),
            ));
        } else if let Some(c) = p.go_test.captures(raw) {
            others.push(frame(TraceFormat::Go, &c[1], &c[2], None));
        } else if let Some(c) = p.node.captures(raw) {
            let loc = c[2].trim_start_matches("file://");
            if !loc.starts_with("node:") && !loc.starts_with("internal/") {
                others.push(frame(
                    TraceFormat::Node,
                    loc,
                    &c[3],
                    c.get(1).map(|m| m.as_str()),
                ));
            }
        } else if let Some(c) = p.go_func.captures(raw.trim_end()) {
            go_func = Some(c[1].to_owned());
        }
    }
    python.reverse();
    let mut frames: Vec<Frame> = python.into_iter().chain(others).collect();
    for (depth, f) in frames.iter_mut().enumerate() {
        f.depth = depth;
        f.path = map_path(index, &f.raw_location);
        if let Some(path) = &f.path
            && let Ok(summary) = index.file_summary(path)
        {
            f.symbol = innermost(&summary.symbols, f.line);
        }
    }
    let ranked = rank(&frames);
    TraceAnalysis { frames, ranked }
}

fn frame(format: TraceFormat, loc: &str, line: &str, function: Option<&str>) -> Frame {
    Frame {
        format,
        raw_location: loc.to_owned(),
        line: line.parse().unwrap_or(0),
        function: function.map(str::to_owned),
        path: None,
        symbol: None,
        depth: 0,
    }
}

/// The indexed file whose path is the longest suffix of `location`, component-wise.
fn map_path(index: &Index, location: &str) -> Option<String> {
    let location = location.replace('\\', "/");
    let parts: Vec<&str> = location
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts
        .iter()
        .any(|p| *p == "node_modules" || *p == "site-packages")
    {
        return None;
    }
    // Absolute paths from the machine that ran the code: the longest tail that is a file of
    // the repository. Java frames (`com/acme/Foo.java`) and `go test` lines (`foo_test.go`)
    // name only a tail: the one file ending with it.
    (0..parts.len()).find_map(|start| {
        let candidate = parts[start..].join("/");
        if let Ok(summary) = index.file_summary(&candidate) {
            return Some(summary.path.clone());
        }
        let tail = format!("/{candidate}");
        let mut matches = index.summaries().filter(|s| s.path.ends_with(&tail));
        match (matches.next(), matches.next()) {
            (Some(only), None) => Some(only.path.clone()),
            _ => None,
        }
    })
}

fn innermost(symbols: &[Symbol], line: u32) -> Option<String> {
    symbols
        .iter()
        .filter(|s| s.start_line <= line && line <= s.end_line)
        .min_by_key(|s| s.end_line - s.start_line)
        .map(|s| match &s.parent {
            Some(parent) => format!("{parent}.{}", s.name),
            None => s.name.clone(),
        })
}

/// Frames nearer the failure weigh more; test files weigh half (the test usually shows the
/// failure, the code under test holds the fault).
fn rank(frames: &[Frame]) -> Vec<RankedFile> {
    let mut by_path: HashMap<&str, RankedFile> = HashMap::new();
    let mut in_repo = 0usize;
    for f in frames {
        let Some(path) = &f.path else { continue };
        let weight = 1.0 / (1.0 + in_repo as f64);
        in_repo += 1;
        let weight = if is_test_file(path) {
            weight * 0.5
        } else {
            weight
        };
        let entry = by_path.entry(path).or_insert_with(|| RankedFile {
            path: path.clone(),
            score: 0.0,
            lines: Vec::new(),
            symbols: Vec::new(),
        });
        entry.score += weight;
        if !entry.lines.contains(&f.line) {
            entry.lines.push(f.line);
        }
        if let Some(s) = &f.symbol
            && !entry.symbols.contains(s)
        {
            entry.symbols.push(s.clone());
        }
    }
    let mut ranked: Vec<RankedFile> = by_path.into_values().collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
    });
    ranked
}

fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("test_")
        || name.contains("_test.")
        || name.contains(".test.")
        || name.contains(".spec.")
        || name.ends_with("Test.java")
        || path
            .split('/')
            .any(|p| p == "tests" || p == "test" || p == "__tests__")
}
