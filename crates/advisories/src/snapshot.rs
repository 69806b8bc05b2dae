//! The advisory snapshot: OSV records imported offline into one compact JSON index file in
//! the data directory (`advisories.json`), read whole by a check. A file rather than a
//! database: the snapshot is written only by an operator's import, read at each check by
//! whoever has the directory (the supervisor, the CLI), and copied between machines as is.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::osv::{Advisory, Hit, OsvRecord};
use crate::{Ecosystem, Error, Result};

/// The index file's name inside the snapshot directory.
pub const SNAPSHOT_FILE: &str = "advisories.json";

/// What one import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// What was imported (the path as given).
    pub source: String,
    /// When (RFC 3339, UTC).
    pub imported_at: String,
    /// Records read.
    pub records: usize,
    /// Records new to the snapshot.
    pub added: usize,
    /// Records that replaced an older copy of themselves.
    pub updated: usize,
    /// Records the snapshot already held as they are (or newer).
    pub unchanged: usize,
    /// Advisories in the snapshot after the import.
    pub total: usize,
}

/// The stored snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Stored {
    /// The last import of each source.
    imports: BTreeMap<String, ImportSummary>,
    /// Every advisory by id.
    advisories: BTreeMap<String, Advisory>,
}

/// An advisory snapshot, loaded for checks.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    stored: Stored,
    /// (ecosystem, normalised name) -> advisory ids.
    by_package: HashMap<(Ecosystem, String), Vec<String>>,
}

/// A known vulnerability of one version of a package.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Match<'a> {
    pub(crate) advisory: &'a Advisory,
    pub(crate) hit: Hit,
}

impl Snapshot {
    /// Loads the snapshot in `dir`; `None` when there is none (nothing imported yet).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SNAPSHOT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io("read the advisory snapshot", &path)(error)),
        };
        let stored: Stored = serde_json::from_str(&text).map_err(|error| Error::Format {
            path: path.display().to_string(),
            message: format!("not an advisory snapshot ({error}); import it again"),
        })?;
        Ok(Some(Self::from_stored(stored)))
    }

    fn from_stored(stored: Stored) -> Self {
        let mut by_package: HashMap<(Ecosystem, String), Vec<String>> = HashMap::new();
        for advisory in stored.advisories.values() {
            for affected in &advisory.affected {
                if let Some(ecosystem) = affected.known_ecosystem() {
                    let ids = by_package
                        .entry((ecosystem, ecosystem.normalise(&affected.name)))
                        .or_default();
                    if !ids.contains(&advisory.id) {
                        ids.push(advisory.id.clone());
                    }
                }
            }
        }
        Self { stored, by_package }
    }

    /// How many advisories it holds.
    pub fn len(&self) -> usize {
        self.stored.advisories.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.stored.advisories.is_empty()
    }

    /// The last import of each source.
    pub fn imports(&self) -> impl Iterator<Item = &ImportSummary> {
        self.stored.imports.values()
    }

    /// The advisories affecting `version` of the package.
    pub(crate) fn affecting(
        &self,
        ecosystem: Ecosystem,
        name: &str,
        version: &str,
    ) -> Vec<Match<'_>> {
        let name = ecosystem.normalise(name);
        let Some(ids) = self.by_package.get(&(ecosystem, name.clone())) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| self.stored.advisories.get(id))
            .filter(|advisory| advisory.withdrawn.is_none())
            .filter_map(|advisory| {
                advisory
                    .affected
                    .iter()
                    .filter(|affected| {
                        affected.known_ecosystem() == Some(ecosystem)
                            && ecosystem.normalise(&affected.name) == name
                    })
                    .find_map(|affected| affected.affects(ecosystem, version))
                    .map(|hit| Match { advisory, hit })
            })
            .collect()
    }
}

/// Imports OSV records from `source` (a directory of `.json` files, searched recursively,
/// or a `.zip` of them as OSV publishes each ecosystem) into the snapshot in `dir`, which is
/// created if needed. Records are merged by id: a record already held is replaced only by a
/// copy modified later (or equally late and different), so importing the same data again
/// changes nothing. A file that is not an OSV record is an error naming it, and nothing is
/// written.
pub fn import(source: &Path, dir: &Path) -> Result<ImportSummary> {
    let mut records = Vec::new();
    let is_zip = source
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("zip"));
    if source.is_dir() {
        let mut files = Vec::new();
        json_files(source, &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(Error::io("read", &file))?;
            parse_records(&file.display().to_string(), &text, &mut records)?;
        }
    } else if is_zip {
        let file = std::fs::File::open(source).map_err(Error::io("open", source))?;
        let zip_error = |error| Error::Zip {
            path: source.display().to_string(),
            source: error,
        };
        let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).map_err(zip_error)?;
            let entry_name = entry.name().map_err(zip_error)?.into_owned();
            if !entry.is_file() || !entry_name.ends_with(".json") {
                continue;
            }
            let name = format!("{}:{entry_name}", source.display());
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|error| Error::Format {
                    path: name.clone(),
                    message: format!("unreadable entry: {error}"),
                })?;
            parse_records(&name, &text, &mut records)?;
        }
    } else if source.is_file() {
        let text = std::fs::read_to_string(source).map_err(Error::io("read", source))?;
        parse_records(&source.display().to_string(), &text, &mut records)?;
    } else {
        return Err(Error::Format {
            path: source.display().to_string(),
            message: "not found: give a directory of OSV .json files or a .zip of them".into(),
        });
    }

    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let mut stored = match Snapshot::load(dir)? {
        Some(snapshot) => snapshot.stored,
        None => Stored::default(),
    };
    let (mut added, mut updated, mut unchanged) = (0, 0, 0);
    let count = records.len();
    for advisory in records {
        match stored.advisories.get(&advisory.id) {
            None => added += 1,
            Some(held) if *held == advisory || held.modified > advisory.modified => {
                unchanged += 1;
                continue;
            }
            Some(_) => updated += 1,
        }
        stored.advisories.insert(advisory.id.clone(), advisory);
    }
    let summary = ImportSummary {
        source: source.display().to_string(),
        imported_at: now(),
        records: count,
        added,
        updated,
        unchanged,
        total: stored.advisories.len(),
    };
    stored
        .imports
        .insert(summary.source.clone(), summary.clone());
    write_atomically(
        &dir.join(SNAPSHOT_FILE),
        &serde_json::to_vec(&stored).map_err(|error| Error::Format {
            path: dir.display().to_string(),
            message: format!("the snapshot could not be encoded: {error}"),
        })?,
    )?;
    Ok(summary)
}

/// The time now, RFC 3339 in UTC.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees
/// half a snapshot.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, bytes).map_err(Error::io("write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(Error::io("replace", path))
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::io("stat", &path))?;
        if kind.is_dir() {
            json_files(&path, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// One record, or an array of them (as some exports hold).
fn parse_records(name: &str, text: &str, out: &mut Vec<Advisory>) -> Result<()> {
    let format = |error: serde_json::Error| Error::Format {
        path: name.to_owned(),
        message: format!("not an OSV record: {error}"),
    };
    if text.trim_start().starts_with('[') {
        let records: Vec<OsvRecord> = serde_json::from_str(text).map_err(format)?;
        out.extend(records.into_iter().map(OsvRecord::into_advisory));
    } else {
        let record: OsvRecord = serde_json::from_str(text).map_err(format)?;
        out.push(record.into_advisory());
    }
    Ok(())
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
pub(crate) mod tests;
