//! `cargo bench -p cap-secrets --bench scan -- [tree MiB]`: how fast the secret scanner is.
//!
//! 1. A generated unified diff of 400 files and 40,000 added lines (source, config and
//!    lockfile-like lines, a few planted secrets): the time of `Scanner::scan_diff`, median of
//!    many runs (target: under 5 ms).
//! 2. A generated tree of text files (default 64 MiB): throughput in MB/s of `scan_dir` from
//!    disk and of `scan_text` over the same bytes in memory.
//!
//! Baselines over the same bytes in the same run: one plain regex pass (an AWS key id
//! pattern, `AKIA[0-9A-Z]{16}`, which the regex engine runs with a literal pre-filter: the cost
//! of merely reading the bytes through one regex), and, on the diff, every rule's regex run
//! over the whole text without the keyword pre-filter (what the pre-filter saves).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use cap_secrets::{ScanLimits, Scanner};
use regex::bytes::Regex;

/// Files and added lines of the diff the issue names.
const DIFF_FILES: usize = 400;
const DIFF_LINES_PER_FILE: usize = 100;
/// One clean line in this many is hit by a keyword: about twice what this workspace's own
/// sources show (1.4% of lines hold `pass`, `pwd`, `secret`, `token`, `credential`, `key` or
/// `://`), to stay on the safe side.
const REALISTIC_KEYWORD_EVERY: usize = 33;
/// The stress variant: every other clean line is hit.
const DENSE_KEYWORD_EVERY: usize = 2;
/// Runs of the diff scan; the median is reported.
const DIFF_RUNS: usize = 41;
/// Runs of each tree measurement.
const TREE_RUNS: usize = 3;

/// splitmix64: the same inputs every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }
    fn hex(&mut self, len: usize) -> String {
        self.pick(b"0123456789abcdef", len)
    }
    fn alnum(&mut self, len: usize) -> String {
        self.pick(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            len,
        )
    }
    fn word(&mut self) -> &'static str {
        const WORDS: &[&str] = &[
            "user", "order", "item", "config", "request", "session", "cache", "index", "value",
            "result", "buffer", "client", "server", "handler", "parser", "reader", "writer",
        ];
        WORDS[self.below(WORDS.len())]
    }

    /// A line of ordinary code that no keyword hits.
    fn plain_line(&mut self) -> String {
        let (a, b) = (self.word(), self.word());
        match self.below(16) {
            0 => format!("    let {a}_{b} = {a}.get_{b}(&ctx)?;"),
            1 => format!("def {a}_{b}(self, {a}, {b}=None):"),
            2 => format!("    return {{\"{a}\": {b}, \"id\": \"{}\"}}", self.hex(8)),
            3 => format!("import {a}.{b} as {a}_{b}"),
            4 => format!("    if {a}.len() > {} {{", self.below(100)),
            5 => format!("  - name: {a}-{b}"),
            6 => format!("    }} else if {a} == {b} {{"),
            7 => format!("<div class=\"{a}\">{{{{ {b} }}}}</div>"),
            8 => format!("  \"{a}\": \"{}\",", self.alnum(12)),
            9 => format!("    assert_eq!({a}, {b});"),
            10 => format!("// {a} the {b} before returning"),
            11 => format!("        .map(|{a}| {a}.{b}())"),
            12 => "    }".to_owned(),
            13 => format!("func ({a} *{b}) Run(ctx context.Context) error {{"),
            14 => format!("      {a}: {}", self.below(1000)),
            _ => String::new(),
        }
    }

    /// A clean line that a keyword hits: secret-sounding names, URLs, digests, UUIDs.
    fn keyword_line(&mut self) -> String {
        let (a, b) = (self.word(), self.word());
        match self.below(14) {
            0 => format!("const {a}Token = await fetch{b}Token(ctx);"),
            1 => format!("  {a}: {b}  # see https://docs.invalid/{a}/{b}"),
            2 => format!("checksum = \"{}\"", self.hex(64)),
            3 => format!("    \"integrity\": \"sha512-{}==\",", self.alnum(86)),
            4 => format!("// TODO: rotate the {a} secret before the {b} release"),
            5 => format!("password = os.environ[\"{}_PASSWORD\"]", a.to_uppercase()),
            6 => format!("    max_tokens: {},", self.below(8192)),
            7 => format!(
                "request_id = \"{}-{}-4{}-a{}-{}\"",
                self.hex(8),
                self.hex(4),
                self.hex(3),
                self.hex(3),
                self.hex(12)
            ),
            8 => format!("        {a}_key: {b}::Key::new(),"),
            9 => format!(
                "url = \"https://{a}.invalid/api/v1/{b}?page={}\"",
                self.below(9)
            ),
            10 => format!("    api_key = settings.{}_API_KEY", a.to_uppercase()),
            11 => format!("FROM debian@sha256:{}", self.hex(64)),
            12 => format!("    self.{a}_tokens = tokenizer.encode({b})"),
            _ => format!("    let {a}_credential = load_{b}_credential(&config)?;"),
        }
    }

    /// A clean line: a keyword line with probability `1 / keyword_every`.
    fn clean_line(&mut self, keyword_every: usize) -> String {
        if self.below(keyword_every) == 0 {
            self.keyword_line()
        } else {
            self.plain_line()
        }
    }

    /// A line holding a secret, one of a few formats.
    fn secret_line(&mut self) -> String {
        match self.below(4) {
            0 => format!("GITHUB_TOKEN={}{}", ["gh", "p_"].concat(), self.alnum(36)),
            1 => format!(
                "DATABASE_URL=postgres://app:{}@db.internal/app",
                self.alnum(20)
            ),
            2 => format!(
                "aws_access_key_id = {}{}",
                ["AK", "IA"].concat(),
                self.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
            ),
            _ => format!("    client_secret: \"{}\"", self.alnum(40)),
        }
    }

    /// A line: a secret once in `secret_every` lines, else a clean one.
    fn line(&mut self, secret_every: usize, keyword_every: usize) -> String {
        if self.below(secret_every) == 0 {
            self.secret_line()
        } else {
            self.clean_line(keyword_every)
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = f();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        last = f();
        times.push(start.elapsed());
    }
    (median(times), last)
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn generate_diff(g: &mut Gen, keyword_every: usize) -> String {
    let mut diff = String::new();
    for file in 0..DIFF_FILES {
        let path = format!("src/module_{file}/{}.py", g.word());
        diff.push_str(&format!(
            "diff --git a/{path} b/{path}\nindex {}..{} 100644\n--- a/{path}\n+++ b/{path}\n",
            g.hex(7),
            g.hex(7)
        ));
        // Two hunks a file: 50 added lines between two context lines each.
        for hunk in 0..2 {
            let added = DIFF_LINES_PER_FILE / 2;
            let start = 10 + hunk * 200;
            diff.push_str(&format!(
                "@@ -{start},2 +{start},{} @@\n {}\n",
                added + 2,
                g.clean_line(keyword_every)
            ));
            for _ in 0..added {
                diff.push('+');
                diff.push_str(&g.line(2000, keyword_every));
                diff.push('\n');
            }
            diff.push_str(&format!(" {}\n", g.clean_line(keyword_every)));
        }
    }
    diff
}

fn main() {
    let tree_mib: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(64);
    let mut g = Gen(0xC0FFEE);

    let start = Instant::now();
    let scanner = Scanner::new().unwrap();
    println!(
        "scanner built in {:.1} ms ({} rules)",
        start.elapsed().as_secs_f64() * 1e3,
        cap_secrets::rules::rules().len()
    );
    let baseline = Regex::new(r"AKIA[0-9A-Z]{16}").unwrap();

    // 1. The diff, realistic and keyword-dense.
    let all_rules: Vec<Regex> = cap_secrets::rules::rules()
        .iter()
        .filter_map(|rule| rule.pattern())
        .map(|pattern| {
            regex::bytes::RegexBuilder::new(pattern)
                .unicode(false)
                .build()
                .unwrap()
        })
        .collect();
    for (variant, keyword_every) in [
        ("realistic", REALISTIC_KEYWORD_EVERY),
        ("dense", DENSE_KEYWORD_EVERY),
    ] {
        let diff = generate_diff(&mut g, keyword_every);
        let added_lines = diff
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count();
        let (diff_time, report) = time(DIFF_RUNS, || scanner.scan_diff(&diff).unwrap());
        let (plain_time, plain_matches) =
            time(DIFF_RUNS, || baseline.find_iter(diff.as_bytes()).count());
        let (unfiltered_time, _) = time(5, || {
            all_rules
                .iter()
                .map(|regex| regex.find_iter(diff.as_bytes()).count())
                .sum::<usize>()
        });
        println!();
        println!(
            "diff ({variant}: 1 clean line in {keyword_every} hit by a keyword): {DIFF_FILES} files, {added_lines} added lines, {:.2} MB",
            diff.len() as f64 / 1e6
        );
        let verdict = if diff_time < Duration::from_millis(5) {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "  scan_diff                         {:>8.3} ms  {:>7.0} MB/s  ({} findings)  target < 5 ms: {verdict}",
            diff_time.as_secs_f64() * 1e3,
            mb_per_s(diff.len(), diff_time),
            report.findings.len(),
        );
        println!(
            "  baseline: one plain regex         {:>8.3} ms  {:>7.0} MB/s  ({plain_matches} matches)  scan / baseline = {:.1}x",
            plain_time.as_secs_f64() * 1e3,
            mb_per_s(diff.len(), plain_time),
            diff_time.as_secs_f64() / plain_time.as_secs_f64()
        );
        println!(
            "  every rule's regex, no pre-filter {:>8.3} ms  {:>7.0} MB/s  scan / this = {:.2}x",
            unfiltered_time.as_secs_f64() * 1e3,
            mb_per_s(diff.len(), unfiltered_time),
            diff_time.as_secs_f64() / unfiltered_time.as_secs_f64()
        );
    }

    // 2. The tree.
    let dir = tempfile::tempdir().unwrap();
    let target = tree_mib * 1024 * 1024;
    let mut files: Vec<(String, String)> = Vec::new();
    let mut total = 0;
    while total < target {
        let path = format!("pkg_{}/{}_{}.txt", files.len() / 100, g.word(), files.len());
        let lines = 200 + g.below(1600);
        let mut text = String::new();
        for _ in 0..lines {
            text.push_str(&g.line(5000, REALISTIC_KEYWORD_EVERY));
            text.push('\n');
        }
        total += text.len();
        files.push((path, text));
    }
    for (path, text) in &files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    let (dir_time, dir_report) = time(TREE_RUNS, || {
        scanner.scan_dir(dir.path(), ScanLimits::default()).unwrap()
    });
    let (memory_time, memory_findings) = time(TREE_RUNS, || {
        files
            .iter()
            .map(|(path, text)| scanner.scan_text(path, text).len())
            .sum::<usize>()
    });
    let (plain_tree_time, plain_tree_matches) = time(TREE_RUNS, || {
        files
            .iter()
            .map(|(_, text)| baseline.find_iter(text.as_bytes()).count())
            .sum::<usize>()
    });
    println!();
    println!("tree: {} files, {:.1} MB", files.len(), total as f64 / 1e6);
    println!(
        "  scan_dir (from disk)       {:>8.1} ms  {:>7.1} MB/s  ({} findings)",
        dir_time.as_secs_f64() * 1e3,
        mb_per_s(total, dir_time),
        dir_report.findings.len()
    );
    println!(
        "  scan_text (in memory)      {:>8.1} ms  {:>7.1} MB/s  ({memory_findings} findings)",
        memory_time.as_secs_f64() * 1e3,
        mb_per_s(total, memory_time)
    );
    println!(
        "  baseline: one plain regex  {:>8.1} ms  {:>7.1} MB/s  ({plain_tree_matches} matches)  scan / baseline = {:.1}x",
        plain_tree_time.as_secs_f64() * 1e3,
        mb_per_s(total, plain_tree_time),
        memory_time.as_secs_f64() / plain_tree_time.as_secs_f64()
    );
}
