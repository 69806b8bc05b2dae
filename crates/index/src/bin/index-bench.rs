//! `index-bench <tree> [search-pattern]`: indexes a tree cold, again with nothing changed, and
//! again after one file changed (found by the walk, then named by the caller); builds the
//! full-text index cold and again; prints files/s, MB/s and peak memory; runs universal-ctags on
//! the same tree and `search_files` against the `rg` binary in the same run, and prints the
//! ratios. Build with `--release`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cap_index::{Index, IndexOptions, SearchOptions, search_files};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tree = PathBuf::from(
        args.next()
            .context("usage: index-bench <tree> [search-pattern]")?,
    );
    let pattern = args.next().unwrap_or_else(|| "TODO|FIXME".to_owned());
    let tree = tree
        .canonicalize()
        .with_context(|| format!("{} not found", tree.display()))?;

    let start = Instant::now();
    let mut index = Index::build(&tree, IndexOptions::default())?;
    let cold = start.elapsed();
    let stats = index.stats().clone();
    let mb = stats.bytes_parsed as f64 / 1e6;
    println!("tree: {}", tree.display());
    println!(
        "indexed: {} files, {:.1} MB, {} edges, {} with syntax errors, {} skipped",
        stats.files_indexed,
        stats.bytes_indexed as f64 / 1e6,
        stats.edges,
        stats.files_with_errors,
        index.skipped().len()
    );
    println!(
        "cold:        {:>8.3} s  {:>9.0} files/s  {:>7.1} MB/s",
        secs(cold),
        stats.files_parsed as f64 / secs(cold),
        mb / secs(cold)
    );
    let start = Instant::now();
    let parsed = index.refresh()?.files_parsed;
    let unchanged = start.elapsed();
    println!(
        "no change:   {:>8.3} s  ({parsed} files parsed)",
        secs(unchanged)
    );

    let victim = index
        .summaries()
        .max_by_key(|s| s.bytes.min(64 * 1024))
        .map(|s| tree.join(&s.path))
        .context("nothing indexed")?;
    let original = std::fs::read(&victim)?;
    let mut changed = original.clone();
    changed.extend_from_slice(b"\n");
    std::fs::write(&victim, &changed)?;
    let start = Instant::now();
    let result = index.refresh().map(|s| s.files_parsed);
    let one = start.elapsed();
    println!(
        "one change:  {:>8.3} s  ({} files parsed; {})",
        secs(one),
        result?,
        victim.display()
    );
    // The same change again, told which file changed (as a caller writing through the
    // sandbox knows): no walk.
    let rel = victim.strip_prefix(&tree)?.to_string_lossy().into_owned();
    changed.extend_from_slice(b"\n");
    std::fs::write(&victim, &changed)?;
    let start = Instant::now();
    let result = index.update_paths(&[rel.as_str()]).map(|s| s.files_parsed);
    let known = start.elapsed();
    std::fs::write(&victim, &original)?;
    println!(
        "one change, path known: {:>8.3} s  ({} files parsed)",
        secs(known),
        result?
    );
    index.update_paths(&[rel.as_str()])?;

    let store = std::env::temp_dir().join(format!("index-bench-{}", std::process::id()));
    let start = Instant::now();
    let mut semantic = cap_index::SemanticIndex::open(&store)?;
    let synced = semantic.sync(&index);
    let full_text = start.elapsed();
    let start = Instant::now();
    let again = semantic.sync(&index);
    let full_text_again = start.elapsed();
    let start = Instant::now();
    let hits = semantic.search("parse the configuration file", 10);
    let query = start.elapsed();
    drop(semantic);
    let _ = std::fs::remove_dir_all(&store);
    println!(
        "full-text:   {:>8.3} s cold ({} files), {:.3} s no change ({} unchanged), query {:.4} s ({} hits)",
        secs(full_text),
        synced?.files_updated,
        secs(full_text_again),
        again?.files_unchanged,
        secs(query),
        hits?.hits.len()
    );
    println!(
        "peak memory: {:.0} MiB",
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );

    match ctags(&tree) {
        Ok(ctags) => println!(
            "ctags:       {:>8.3} s  -> ours/ctags = {:.2}x (cold)",
            secs(ctags),
            secs(cold) / secs(ctags)
        ),
        Err(e) => println!("ctags:       not run ({e:#})"),
    }

    let options = SearchOptions {
        max_matches: usize::MAX,
        threads: 0,
    };
    let start = Instant::now();
    let (found, _) = search_files(&tree, &pattern, None, &options)?;
    let ours = start.elapsed();
    println!(
        "search_files {pattern:?}: {:>8.3} s  ({} matches)",
        secs(ours),
        found.len()
    );
    match rg(&tree, &pattern) {
        Ok(rg) => println!(
            "rg:          {:>8.3} s  -> ours/rg = {:.2}x",
            secs(rg),
            secs(ours) / secs(rg)
        ),
        Err(e) => println!("rg:          not run ({e:#})"),
    }
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

fn ctags(tree: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = Command::new("ctags")
        .args([
            "-R",
            "-f",
            "/dev/null",
            "--languages=Python,JavaScript,TypeScript,Go,Java",
        ])
        .arg(tree)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("ctags (universal-ctags) is not installed")?;
    anyhow::ensure!(status.success(), "ctags failed: {status}");
    Ok(start.elapsed())
}

fn rg(tree: &Path, pattern: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = Command::new("rg")
        .args(["-n", "--no-heading", "--", pattern])
        .arg(tree)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("rg (ripgrep) is not installed")?;
    // rg exits 1 when nothing matched.
    anyhow::ensure!(status.code().is_some_and(|c| c <= 1), "rg failed: {status}");
    Ok(start.elapsed())
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
