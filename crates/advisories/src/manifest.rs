//! The dependencies a change adds or whose version it changes, from the manifests it
//! touches: package.json, requirements*.txt, pyproject.toml (PEP 621 and Poetry), go.mod and
//! pom.xml.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Ecosystem, Error, Result};

/// One file of a change: its content before and after (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Path relative to the repository root.
    pub path: String,
    /// The content before the change.
    pub before: Option<String>,
    /// The content after the change.
    pub after: Option<String>,
}

/// A dependency as a manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name as OSV compares it (PyPI names PEP 503-normalised, Maven `group:artifact`).
    pub name: String,
    /// The version or requirement as written (`^1.2.0`, `==2.0`, `v1.4.0`); empty when none.
    pub spec: String,
    /// The manifest declaring it.
    pub manifest: String,
    /// The line of the declaration (1-based).
    pub line: usize,
}

/// Which manifest format a path is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    PackageJson,
    Requirements,
    Pyproject,
    GoMod,
    Pom,
}

fn format_of(path: &str) -> Option<Format> {
    let name = path.rsplit('/').next().unwrap_or(path);
    // A vendored package's own manifest is not the repository's.
    if path
        .split('/')
        .any(|part| part == "node_modules" || part == "vendor")
    {
        return None;
    }
    match name {
        "package.json" => Some(Format::PackageJson),
        "pyproject.toml" => Some(Format::Pyproject),
        "go.mod" => Some(Format::GoMod),
        "pom.xml" => Some(Format::Pom),
        _ if name.starts_with("requirements") && name.ends_with(".txt") => {
            Some(Format::Requirements)
        }
        _ if name.ends_with(".txt") && path.contains("requirements/") => Some(Format::Requirements),
        _ => None,
    }
}

/// Whether `path` is a manifest these checks read.
pub fn is_manifest(path: &str) -> bool {
    format_of(path).is_some()
}

/// The dependencies the change adds or whose version or requirement it changes, in the
/// order of the files and their lines. Removed and unchanged ones are not reported. A
/// manifest the change leaves unreadable is an error naming it; an unreadable "before" side
/// counts as empty, so everything in the file is checked.
pub fn changed_dependencies(files: &[ManifestFile]) -> Result<Vec<Dependency>> {
    let mut changed = Vec::new();
    for file in files {
        let Some(format) = format_of(&file.path) else {
            continue;
        };
        let Some(after) = &file.after else { continue };
        let after = parse(format, &file.path, after)?;
        let before: BTreeMap<(Ecosystem, String), String> = file
            .before
            .as_deref()
            .and_then(|text| parse(format, &file.path, text).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|dep| ((dep.ecosystem, dep.name), dep.spec))
            .collect();
        for dep in after {
            if before.get(&(dep.ecosystem, dep.name.clone())) != Some(&dep.spec) {
                changed.push(dep);
            }
        }
    }
    Ok(changed)
}

/// Every dependency `text` (a manifest of `format` at `path`) declares.
fn parse(format: Format, path: &str, text: &str) -> Result<Vec<Dependency>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let fail = |message: String| Error::Manifest {
        path: path.to_owned(),
        message,
    };
    match format {
        Format::PackageJson => package_json(path, text).map_err(fail),
        Format::Requirements => Ok(requirements(path, text)),
        Format::Pyproject => pyproject(path, text).map_err(fail),
        Format::GoMod => Ok(go_mod(path, text)),
        Format::Pom => pom(path, text).map_err(fail),
    }
}

/// The 1-based line of the first occurrence of `needle` at or after byte `from`, else 1.
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    let at = text
        .get(from..)
        .and_then(|rest| rest.find(needle))
        .map_or(from.min(text.len()), |at| from + at);
    text[..at].matches('\n').count() + 1
}

fn package_json(path: &str, text: &str) -> std::result::Result<Vec<Dependency>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))?;
    let mut deps = Vec::new();
    for section in [
        "dependencies",
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
    ] {
        let Some(entries) = value.get(section) else {
            continue;
        };
        let entries = entries
            .as_object()
            .ok_or_else(|| format!("{section} is not an object of name to version"))?;
        let section_at = text.find(&format!("\"{section}\"")).unwrap_or(0);
        for (name, spec) in entries {
            let spec = spec
                .as_str()
                .ok_or_else(|| format!("{section}.{name} is not a version string"))?;
            deps.push(Dependency {
                ecosystem: Ecosystem::Npm,
                name: name.clone(),
                spec: spec.trim().to_owned(),
                manifest: path.to_owned(),
                line: line_of(text, &format!("\"{name}\""), section_at),
            });
        }
    }
    Ok(deps)
}

/// A PEP 508 requirement: the name and the version specifier (markers and extras dropped);
/// `None` for what is not a named requirement (URLs, options, paths).
fn pep508(requirement: &str) -> Option<(String, String)> {
    let requirement = requirement.split(';').next()?.trim();
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(requirement.len());
    let name = &requirement[..end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut rest = requirement[end..].trim_start();
    if rest.starts_with('[') {
        rest = rest
            .split_once(']')
            .map_or("", |(_, after)| after)
            .trim_start();
    }
    if rest.starts_with('@') {
        // A direct reference (`name @ https://...`): no version to check.
        return Some((name.to_owned(), String::new()));
    }
    let spec = rest.trim_start_matches('(').trim_end_matches(')').trim();
    Some((name.to_owned(), spec.replace(' ', "")))
}

fn requirements(path: &str, text: &str) -> Vec<Dependency> {
    let mut deps = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or(line).trim();
        let line = line.trim_end_matches('\\').trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') || line.contains("://")
        {
            continue;
        }
        if let Some((name, spec)) = pep508(line) {
            deps.push(Dependency {
                ecosystem: Ecosystem::PyPi,
                name: Ecosystem::PyPi.normalise(&name),
                spec,
                manifest: path.to_owned(),
                line: index + 1,
            });
        }
    }
    deps
}

fn pyproject(path: &str, text: &str) -> std::result::Result<Vec<Dependency>, String> {
    let value: toml::Table =
        toml::from_str(text).map_err(|error| format!("not valid TOML: {error}"))?;
    let mut deps = Vec::new();
    let mut push = |name: &str, spec: String, needle: &str| {
        deps.push(Dependency {
            ecosystem: Ecosystem::PyPi,
            name: Ecosystem::PyPi.normalise(name),
            spec,
            manifest: path.to_owned(),
            line: line_of(text, needle, 0),
        });
    };
    let project = value.get("project");
    let mut lists: Vec<&toml::Value> = Vec::new();
    if let Some(list) = project.and_then(|p| p.get("dependencies")) {
        lists.push(list);
    }
    if let Some(extras) = project
        .and_then(|p| p.get("optional-dependencies"))
        .and_then(toml::Value::as_table)
    {
        lists.extend(extras.values());
    }
    for list in lists {
        let list = list
            .as_array()
            .ok_or("project dependencies are not a list of requirement strings")?;
        for requirement in list {
            let requirement = requirement
                .as_str()
                .ok_or("a project dependency is not a requirement string")?;
            if let Some((name, spec)) = pep508(requirement) {
                push(&name, spec, requirement);
            }
        }
    }
    let poetry = value.get("tool").and_then(|t| t.get("poetry"));
    let mut tables: Vec<&toml::Table> = Vec::new();
    if let Some(table) = poetry
        .and_then(|p| p.get("dependencies"))
        .and_then(toml::Value::as_table)
    {
        tables.push(table);
    }
    if let Some(groups) = poetry
        .and_then(|p| p.get("group"))
        .and_then(toml::Value::as_table)
    {
        for group in groups.values() {
            if let Some(table) = group.get("dependencies").and_then(toml::Value::as_table) {
                tables.push(table);
            }
        }
    }
    for table in tables {
        for (name, spec) in table {
            if name == "python" {
                continue;
            }
            let spec = match spec {
                toml::Value::String(spec) => spec.clone(),
                toml::Value::Table(table) => table
                    .get("version")
                    .and_then(toml::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                _ => {
                    return Err(format!(
                        "tool.poetry dependency {name} is neither a version nor a table"
                    ));
                }
            };
            push(name, spec.replace(' ', ""), &format!("{name} "));
        }
    }
    Ok(deps)
}

fn go_mod(path: &str, text: &str) -> Vec<Dependency> {
    let mut deps = Vec::new();
    let mut in_block = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.split("//").next().unwrap_or(line).trim();
        let entry = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if let Some(rest) = line.strip_prefix("require") {
            let rest = rest.trim();
            if rest == "(" {
                in_block = true;
                continue;
            }
            rest
        } else {
            continue;
        };
        let mut words = entry.split_whitespace();
        if let (Some(module), Some(version)) = (words.next(), words.next()) {
            deps.push(Dependency {
                ecosystem: Ecosystem::Go,
                name: module.trim_matches('"').to_owned(),
                spec: version.to_owned(),
                manifest: path.to_owned(),
                line: index + 1,
            });
        }
    }
    deps
}

fn pom(path: &str, text: &str) -> std::result::Result<Vec<Dependency>, String> {
    let doc =
        roxmltree::Document::parse(text).map_err(|error| format!("not valid XML: {error}"))?;
    let child_text = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|child| child.has_tag_name(name))
            .and_then(|child| child.text())
            .map(|text| text.trim().to_owned())
    };
    let mut properties = BTreeMap::new();
    let root = doc.root_element();
    if let Some(version) = child_text(root, "version") {
        properties.insert("project.version".to_owned(), version);
    }
    for props in root.children().filter(|n| n.has_tag_name("properties")) {
        for prop in props.children().filter(roxmltree::Node::is_element) {
            properties.insert(
                prop.tag_name().name().to_owned(),
                prop.text().unwrap_or_default().trim().to_owned(),
            );
        }
    }
    let resolve = |value: &str| {
        let mut value = value.to_owned();
        // Properties may name properties; a few rounds settle any sane chain.
        for _ in 0..5 {
            let Some(start) = value.find("${") else { break };
            let Some(len) = value[start..].find('}') else {
                break;
            };
            let key = value[start + 2..start + len].to_owned();
            let Some(replacement) = properties.get(&key) else {
                break;
            };
            value.replace_range(start..start + len + 1, replacement);
        }
        value
    };
    let mut deps = Vec::new();
    for dep in doc.descendants().filter(|n| n.has_tag_name("dependency")) {
        // Plugins' dependencies are build tools, not the product's.
        if dep.ancestors().any(|a| a.has_tag_name("plugin")) {
            continue;
        }
        let (Some(group), Some(artifact)) =
            (child_text(dep, "groupId"), child_text(dep, "artifactId"))
        else {
            continue;
        };
        let version = child_text(dep, "version")
            .map(|v| resolve(&v))
            .unwrap_or_default();
        deps.push(Dependency {
            ecosystem: Ecosystem::Maven,
            name: format!("{}:{}", resolve(&group), resolve(&artifact)),
            spec: version,
            manifest: path.to_owned(),
            line: doc.text_pos_at(dep.range().start).row as usize,
        });
    }
    Ok(deps)
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
