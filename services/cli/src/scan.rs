//! `cap scan PATH`: the secret scanner on a directory tree, a unified diff or a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use cap_secrets::{ALLOW_LIST_PATH, AllowList, Report, ScanLimits, Scanner};

/// Exit status when the scan found a secret.
const EXIT_FOUND: u8 = 1;
/// Exit status on a usage or I/O error (as clap's own usage errors).
const EXIT_ERROR: u8 = 2;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanFormat {
    /// One line a finding and a summary, for people.
    Text,
    /// The report as JSON.
    Json,
    /// A SARIF 2.1.0 log, for code-scanning dashboards.
    Sarif,
}

/// Flags of `cap scan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// A directory tree, a unified diff file (only added lines count) or a single file.
    pub path: PathBuf,
    /// How to print the report.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScanFormat,
    /// Allow-list file (JSON: paths, fingerprints, values, rules). Default: the tree's
    /// `.cap/secrets-allow.json`, or the current directory's when PATH is a file.
    #[arg(long)]
    pub allow_list: Option<PathBuf>,
    /// Files larger than this many bytes are skipped (and listed as skipped).
    #[arg(long, default_value_t = ScanLimits::default().max_file_bytes)]
    pub max_file_bytes: u64,
}

/// Runs the scan and prints the report: exit 0 when clean, 1 when something was found, 2
/// (with the reason on stderr) when the scan could not run. Secrets are printed only in
/// redacted form, in every format.
pub fn scan(args: &ScanArgs) -> ExitCode {
    match run_scan(args) {
        Ok((report, rendered)) => {
            print!("{rendered}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FOUND)
            }
        }
        Err(error) => {
            // `{:#}` is the error and its causes, `: `-separated.
            eprintln!("cap scan: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run_scan(args: &ScanArgs) -> anyhow::Result<(Report, String)> {
    let allow = load_allow_list(&args.path, args.allow_list.as_deref())?;
    let scanner = Scanner::with_allow_list(allow).context("building the scanner")?;
    let limits = ScanLimits {
        max_file_bytes: args.max_file_bytes,
    };
    let report = scanner
        .scan_path(&args.path, limits)
        .with_context(|| format!("scanning {}", args.path.display()))?;
    let rendered = match args.format {
        ScanFormat::Text => report.to_text(),
        ScanFormat::Json => format!("{:#}\n", report.to_json()),
        ScanFormat::Sarif => format!("{:#}\n", report.to_sarif()),
    };
    Ok((report, rendered))
}

/// The allow-list named on the command line, else the default file if it exists.
fn load_allow_list(path: &Path, explicit: Option<&Path>) -> anyhow::Result<AllowList> {
    if let Some(file) = explicit {
        return Ok(AllowList::load(file)?);
    }
    let root = if path.is_dir() { path } else { Path::new(".") };
    let default = root.join(ALLOW_LIST_PATH);
    if default.is_file() {
        Ok(AllowList::load(&default)?)
    } else {
        Ok(AllowList::new())
    }
}
