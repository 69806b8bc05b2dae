//! `cap advisories`: imports the operator's OSV advisory and licence snapshots offline and
//! checks a diff or a tree's new dependencies against them (`cap-advisories`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use cap_advisories::{
    Checker, Findings, LicenceSnapshot, PolicyFile, Snapshot, changed_dependencies,
    files_from_diff, files_from_tree, licence_from_package_json, workspace_manifest,
};

/// Exit status when a check found a known vulnerability or a licence violation.
const EXIT_FOUND: u8 = 1;
/// Exit status on a usage or I/O error.
const EXIT_ERROR: u8 = 2;

/// Flags of `cap advisories`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdvisoriesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdvisoriesCommand,
    /// Root of all local state; the snapshots live in `<data-dir>/advisories`, the licence
    /// policy in `<data-dir>/policy/licences.toml`.
    #[arg(long, global = true, env = "CAP_DATA_DIR", default_value = ".cap-data")]
    pub data_dir: PathBuf,
}

/// Subcommands of `cap advisories`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdvisoriesCommand {
    /// Import OSV records (a directory of .json files or a .zip of them, as OSV publishes
    /// each ecosystem) into the snapshot; records are merged by id, so importing again is
    /// harmless.
    Import {
        /// The directory or .zip.
        path: PathBuf,
    },
    /// Import licences: lines of `ECOSYSTEM NAME SPDX-EXPRESSION` (`#` comments) or a JSON
    /// array of `{"ecosystem", "name", "license"}`.
    ImportLicences {
        /// The file.
        file: PathBuf,
    },
    /// Check the dependencies a unified diff adds or changes (or every dependency of a
    /// tree): exit 1 on a known vulnerability or a licence violation, 0 when clean, 2 on an
    /// error.
    Check {
        /// A unified diff file or a directory.
        path: PathBuf,
        /// For a diff: the checkout it applies to, with the change applied, so whole
        /// manifests are read (default: the current directory; files absent there are read
        /// from the diff's own lines).
        #[arg(long)]
        root: Option<PathBuf>,
        /// The repository id whose licence policy applies (default: the policy's default).
        #[arg(long, default_value = "")]
        repository: String,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `cap advisories`; the exit status is the command's.
pub fn advisories(args: &AdvisoriesArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cap advisories: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(args: &AdvisoriesArgs) -> anyhow::Result<ExitCode> {
    let snapshots = args.data_dir.join("advisories");
    match &args.command {
        AdvisoriesCommand::Import { path } => {
            let summary = cap_advisories::import(path, &snapshots)?;
            println!(
                "imported {} records from {} at {}: {} new, {} updated, {} unchanged; {} \
                 advisories in {}",
                summary.records,
                summary.source,
                summary.imported_at,
                summary.added,
                summary.updated,
                summary.unchanged,
                summary.total,
                snapshots.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AdvisoriesCommand::ImportLicences { file } => {
            let count = cap_advisories::import_licences(file, &snapshots)?;
            println!("imported {count} licences into {}", snapshots.display());
            Ok(ExitCode::SUCCESS)
        }
        AdvisoriesCommand::Check {
            path,
            root,
            repository,
            json,
        } => {
            let findings = check(args, path, root.as_deref(), repository)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&findings)?);
            } else {
                print!("{}", render(&findings));
            }
            Ok(if findings.has_violations() {
                ExitCode::from(EXIT_FOUND)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn check(
    args: &AdvisoriesArgs,
    path: &Path,
    root: Option<&Path>,
    repository: &str,
) -> anyhow::Result<Findings> {
    let snapshots = args.data_dir.join("advisories");
    let (files, root) = if path.is_dir() {
        (files_from_tree(path)?, path.to_owned())
    } else {
        let diff = std::fs::read_to_string(path)
            .with_context(|| format!("read the diff {}", path.display()))?;
        let root = root.map_or_else(|| PathBuf::from("."), Path::to_owned);
        let files = files_from_diff(&diff, &|file| std::fs::read_to_string(root.join(file)).ok())?;
        (files, root)
    };
    let dependencies = changed_dependencies(&files)?;
    let policy = PolicyFile::load(&args.data_dir.join("policy").join("licences.toml"))?;
    let checker = Checker {
        advisories: Snapshot::load(&snapshots)?,
        licences: LicenceSnapshot::load(&snapshots)?,
        policy: policy.for_repository(repository).clone(),
    };
    if checker.advisories.is_none() {
        eprintln!(
            "cap advisories: no advisory snapshot in {}: known vulnerabilities are not checked \
             (cap advisories import PATH)",
            snapshots.display()
        );
    }
    Ok(checker.check(&dependencies, &|dep| {
        let manifest = workspace_manifest(dep)?;
        licence_from_package_json(&std::fs::read_to_string(root.join(manifest)).ok()?)
    }))
}

fn render(findings: &Findings) -> String {
    let mut out = String::new();
    for finding in &findings.findings {
        out.push_str(&format!("{finding}\n"));
    }
    for unresolved in &findings.unresolved {
        out.push_str(&format!(
            "{unresolved}: no lowest version, not checked for advisories\n"
        ));
    }
    let violations = findings.violations().count();
    out.push_str(&format!(
        "{} dependencies checked: {violations} violation{}, {} finding{} in all\n",
        findings.checked,
        if violations == 1 { "" } else { "s" },
        findings.findings.len(),
        if findings.findings.len() == 1 {
            ""
        } else {
            "s"
        },
    ));
    out
}

#[cfg(test)]
#[path = "advisories_tests.rs"]
mod tests;
