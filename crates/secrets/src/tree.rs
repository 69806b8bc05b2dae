//! Scanning a directory tree, a diff file or a single file.

use std::path::Path;

use crate::diff::{looks_like_diff, parse_diff};
use crate::report::{Report, SkippedFile};
use crate::scanner::Scanner;
use crate::{Error, Result};

/// Bytes at the start of a file looked at for a NUL, as git does to call a file binary.
const BINARY_SNIFF_BYTES: usize = 8000;

/// Limits of a tree scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// Files larger than this are skipped and reported as skipped (default 16 MiB).
    pub max_file_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Scanner {
    /// Scans what `path` is: every text file under a directory (not `.git`, not binary
    /// files, not symlinks), the added lines of a unified diff file, or a single text file.
    pub fn scan_path(&self, path: &Path, limits: ScanLimits) -> Result<Report> {
        let metadata = std::fs::metadata(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        if metadata.is_dir() {
            return self.scan_dir(path, limits);
        }
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if looks_like_diff(&text) {
            return self.scan_diff(&text);
        }
        let name = path.to_string_lossy().replace('\\', "/");
        let mut report = Report::default();
        if is_binary(&bytes) {
            report.skipped.push(SkippedFile {
                path: name,
                reason: "binary".to_owned(),
            });
            return Ok(report);
        }
        report.findings = self.scan_text(&name, &text);
        report.files_scanned = 1;
        report.bytes_scanned = bytes.len() as u64;
        Ok(report)
    }

    /// Scans the added lines of a unified diff; findings carry the new file's path and line.
    pub fn scan_diff(&self, diff: &str) -> Result<Report> {
        let files = parse_diff(diff)?;
        let mut report = Report::default();
        for file in files {
            report.files_scanned += 1;
            report.bytes_scanned += file.text.len() as u64;
            for mut finding in self.scan_text(&file.path, &file.text) {
                // The scanned text holds only the added lines; map back to the new file.
                finding.line = file
                    .new_lines
                    .get(finding.line - 1)
                    .copied()
                    .unwrap_or(finding.line);
                report.findings.push(finding);
            }
        }
        Ok(report)
    }

    /// Scans every text file under `root`, hidden files included (`.env` is where secrets
    /// live), `.git` directories and symlinks excluded; paths in findings are relative to
    /// `root` with forward slashes.
    pub fn scan_dir(&self, root: &Path, limits: ScanLimits) -> Result<Report> {
        let mut report = Report::default();
        let walker = ignore::WalkBuilder::new(root)
            .standard_filters(false)
            .follow_links(false)
            .filter_entry(|entry| entry.file_name() != ".git")
            .build();
        for entry in walker {
            let entry = entry.map_err(|source| Error::Walk {
                path: root.to_owned(),
                source,
            })?;
            if !entry.file_type().is_some_and(|kind| kind.is_file()) {
                continue;
            }
            let path = entry.path();
            let relative = path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .replace('\\', "/");
            if self.allow_list().allows_path(&relative) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if size > limits.max_file_bytes {
                report.skipped.push(SkippedFile {
                    path: relative,
                    reason: format!("larger than {} bytes", limits.max_file_bytes),
                });
                continue;
            }
            let bytes = std::fs::read(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?;
            if is_binary(&bytes) {
                report.skipped.push(SkippedFile {
                    path: relative,
                    reason: "binary".to_owned(),
                });
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            report.files_scanned += 1;
            report.bytes_scanned += bytes.len() as u64;
            report.findings.extend(self.scan_text(&relative, &text));
        }
        report
            .findings
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Ok(report)
    }
}

/// A file is binary when a NUL byte is in its first 8000 bytes (git's test).
fn is_binary(bytes: &[u8]) -> bool {
    memchr::memchr(0, &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)]).is_some()
}
