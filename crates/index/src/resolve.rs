//! Resolution of imports to files of the repository: relative and `tsconfig.json`-aliased
//! JavaScript/TypeScript specifiers, Python modules, Go packages (down to the files defining
//! what the importer uses) and Java classes, with the classes of a Java file's own package that
//! it uses without an import.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::index::{Edge, FileSummary};
use crate::lang::Lang;

const JS_EXTENSIONS: [&str; 8] = ["ts", "tsx", "js", "jsx", "mjs", "cjs", "mts", "cts"];
/// `extends` chains longer than this are cut (a cycle must end).
const MAX_EXTENDS: usize = 8;

/// Whether `rel` is a file resolution reads: a Go module, or a TypeScript/JavaScript project
/// or a configuration one `extends` (`tsconfig.base.json` and the like).
pub(crate) fn is_manifest(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name == "go.mod"
        || name == "jsconfig.json"
        || (name.starts_with("tsconfig") && name.ends_with(".json"))
}

/// A manifest's text, when it is a regular file inside `root` (never through a symlink).
fn read_manifest(root: &Path, rel: &str) -> Option<String> {
    let path = root.join(rel);
    let real = path.canonicalize().ok()?;
    if !real.starts_with(root) || !std::fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    std::fs::read_to_string(real).ok()
}

/// The `compilerOptions` that map bare specifiers to files, from one `tsconfig.json`.
#[derive(Debug, Default, Clone)]
struct TsPaths {
    /// `baseUrl`, repository-relative.
    base: Option<String>,
    /// `paths` patterns and their targets, the targets repository-relative; longest prefix
    /// first.
    paths: Vec<(String, Vec<String>)>,
}

/// JSON with comments and trailing commas (what `tsc` accepts) as plain JSON: comments go
/// first, so that a comma before a comment before a bracket is seen as trailing.
fn strip_jsonc(text: &str) -> String {
    let without_comments = scan_jsonc(text, |c, rest, out| match (c, rest.peek()) {
        ('/', Some('/')) => {
            for c in rest.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        }
        ('/', Some('*')) => {
            rest.next();
            let mut last = ' ';
            for c in rest.by_ref() {
                if last == '*' && c == '/' {
                    break;
                }
                last = c;
            }
            out.push(' ');
        }
        _ => out.push(c),
    });
    scan_jsonc(&without_comments, |c, rest, out| {
        let trailing =
            c == ',' && matches!(rest.clone().find(|c| !c.is_whitespace()), Some('}' | ']'));
        if !trailing {
            out.push(c);
        }
    })
}

/// Copies `text`, strings verbatim, handing every character outside strings to `outside`.
fn scan_jsonc(
    text: &str,
    mut outside: impl FnMut(char, &mut std::iter::Peekable<std::str::Chars<'_>>, &mut String),
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else {
            outside(c, &mut chars, &mut out);
        }
    }
    out
}

/// Reads the tsconfig at `rel` with what it `extends` (relative paths only: a package's
/// config lives outside the repository's sources).
fn load_ts_paths(root: &Path, rel: &str, depth: usize) -> Option<TsPaths> {
    if depth > MAX_EXTENDS {
        return None;
    }
    let text = read_manifest(root, rel)?;
    let json: serde_json::Value = serde_json::from_str(&strip_jsonc(&text)).ok()?;
    let dir = parent(rel);
    let mut inherited = json
        .get("extends")
        .and_then(|e| e.as_str())
        .filter(|e| e.starts_with("./") || e.starts_with("../"))
        .and_then(|e| {
            let mut target = clean(&join(dir, e))?;
            if !target.ends_with(".json") {
                target.push_str(".json");
            }
            load_ts_paths(root, &target, depth + 1)
        })
        .unwrap_or_default();
    let options = json.get("compilerOptions");
    let base = options
        .and_then(|o| o.get("baseUrl"))
        .and_then(|b| b.as_str())
        .and_then(|b| clean(&join(dir, b)));
    if base.is_some() {
        inherited.base = base;
    }
    if let Some(paths) = options
        .and_then(|o| o.get("paths"))
        .and_then(|p| p.as_object())
    {
        // Targets are relative to `baseUrl` when there is one, else to this file.
        let from = inherited.base.clone().unwrap_or_else(|| dir.to_owned());
        let mut mapped: Vec<(String, Vec<String>)> = paths
            .iter()
            .map(|(pattern, targets)| {
                let targets = targets
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .filter_map(|t| clean(&join(&from, t)))
                    .collect();
                (pattern.clone(), targets)
            })
            .collect();
        mapped.sort_by_key(|(pattern, _)| {
            std::cmp::Reverse(pattern.split('*').next().map_or(0, str::len))
        });
        inherited.paths = mapped;
    }
    Some(inherited)
}

/// The resolved edges, sorted, and per file the imports that stay outside the repository.
///
/// With `only`, just the imports of those files are resolved (against all of `files`).
pub(crate) fn resolve(
    root: &Path,
    files: &BTreeMap<String, Arc<FileSummary>>,
    only: Option<&HashSet<String>>,
    manifests: &[String],
) -> (Vec<Edge>, HashMap<String, Vec<String>>) {
    // Every `go.mod` of the tree: module path -> the directory it roots.
    let mut go_modules: Vec<(String, String)> = manifests
        .iter()
        .filter(|rel| rel.rsplit('/').next() == Some("go.mod"))
        .filter_map(|rel| {
            let text = read_manifest(root, rel)?;
            let module = text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("module ")
                    .map(|m| m.trim().trim_matches('"').to_owned())
            })?;
            Some((module, parent(rel).to_owned()))
        })
        .collect();
    // Longest module path first: nested modules win over the ones containing them.
    go_modules.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
    // Every TypeScript/JavaScript project by its directory; `tsconfig.json` wins over
    // `jsconfig.json` (sorted after it).
    let mut ts_projects: HashMap<&str, TsPaths> = HashMap::new();
    let mut projects: Vec<&String> = manifests
        .iter()
        .filter(|rel| {
            matches!(
                rel.rsplit('/').next(),
                Some("tsconfig.json" | "jsconfig.json")
            )
        })
        .collect();
    projects.sort_by_key(|rel| rel.ends_with("tsconfig.json"));
    for rel in projects {
        if let Some(paths) = load_ts_paths(root, rel, 0) {
            ts_projects.insert(parent(rel), paths);
        }
    }
    let mut by_dir: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut java_types: HashMap<String, &str> = HashMap::new();
    let mut java_packages: HashMap<&str, Vec<&str>> = HashMap::new();
    for (path, summary) in files {
        by_dir.entry(parent(path)).or_default().push(path);
        if summary.language == Lang::Java {
            let stem = path
                .rsplit('/')
                .next()
                .unwrap_or(path)
                .trim_end_matches(".java");
            let fqn = match &summary.package {
                Some(pkg) => format!("{pkg}.{stem}"),
                None => stem.to_owned(),
            };
            java_types.insert(fqn, path);
            if let Some(pkg) = &summary.package {
                java_packages.entry(pkg).or_default().push(path);
            }
        }
    }
    let ctx = Ctx {
        files,
        by_dir,
        java_types,
        java_packages,
        go_modules,
        ts_projects,
        go_packages: std::cell::RefCell::default(),
    };
    let mut edges = BTreeSet::new();
    let mut external: HashMap<String, Vec<String>> = HashMap::new();
    let selected = files
        .iter()
        .filter(|(path, _)| only.is_none_or(|only| only.contains(path.as_str())));
    for (path, summary) in selected {
        for import in &summary.imports {
            let targets = ctx.targets(path, summary, import);
            if targets.is_empty() {
                let list = external.entry(path.clone()).or_default();
                if !list.contains(&import.module) {
                    list.push(import.module.clone());
                }
            }
            for to in targets {
                if to != *path {
                    edges.insert(Edge {
                        from: path.clone(),
                        to,
                        import: import.module.clone(),
                    });
                }
            }
        }
        if summary.language == Lang::Java {
            // Classes of the file's own package need no import.
            for name in &summary.references {
                let fqn = match &summary.package {
                    Some(pkg) => format!("{pkg}.{name}"),
                    None => name.clone(),
                };
                if let Some(to) = ctx.java_types.get(&fqn)
                    && *to != path.as_str()
                {
                    edges.insert(Edge {
                        from: path.clone(),
                        to: (*to).to_owned(),
                        import: fqn,
                    });
                }
            }
        }
    }
    (edges.into_iter().collect(), external)
}

struct Ctx<'a> {
    files: &'a BTreeMap<String, Arc<FileSummary>>,
    by_dir: HashMap<&'a str, Vec<&'a str>>,
    java_types: HashMap<String, &'a str>,
    java_packages: HashMap<&'a str, Vec<&'a str>>,
    go_modules: Vec<(String, String)>,
    ts_projects: HashMap<&'a str, TsPaths>,
    /// Go packages by directory, read when first imported.
    go_packages: std::cell::RefCell<HashMap<String, std::rc::Rc<GoPackage<'a>>>>,
}

/// One Go package of the repository.
struct GoPackage<'a> {
    /// Its name, as most of its files declare it.
    name: Option<&'a str>,
    /// Its non-test files.
    files: Vec<&'a str>,
    /// Top-level function and type names -> the files defining them.
    defs: HashMap<&'a str, Vec<&'a str>>,
}

fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

fn join(dir: &str, rest: &str) -> String {
    match (dir.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (false, true) => dir.to_owned(),
        (false, false) => format!("{dir}/{rest}"),
    }
}

/// `a/./b/../c` -> `a/c`; `None` when it climbs above the root.
fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl<'a> Ctx<'a> {
    fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    fn targets(&self, from: &str, summary: &FileSummary, import: &crate::Import) -> Vec<String> {
        match summary.language {
            Lang::Python => self.python(from, import),
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => self.js(from, &import.module),
            Lang::Go => self.go(summary, import),
            Lang::Java => self.java(&import.module),
        }
    }

    fn python_module(&self, base: &str, dotted: &str) -> Option<String> {
        let rel = dotted.replace('.', "/");
        let stem = join(base, &rel);
        [
            format!("{stem}.py"),
            format!("{stem}/__init__.py"),
            format!("{stem}.pyi"),
        ]
        .into_iter()
        .find(|c| self.has(c))
    }

    fn python(&self, from: &str, import: &crate::Import) -> Vec<String> {
        let module = import.module.as_str();
        let level = module.chars().take_while(|c| *c == '.').count();
        let rest = &module[level..];
        let bases: Vec<String> = if level > 0 {
            let mut dir = parent(from).to_owned();
            for _ in 1..level {
                if dir.is_empty() {
                    return Vec::new();
                }
                dir = parent(&dir).to_owned();
            }
            vec![dir]
        } else {
            // The root, `src/`, and the importing file's own directories (scripts and tests
            // that put their directory on `sys.path`).
            let mut bases = vec![String::new(), "src".to_owned()];
            let mut dir = parent(from);
            while !dir.is_empty() {
                bases.push(dir.to_owned());
                dir = parent(dir);
            }
            bases
        };
        let mut out = Vec::new();
        for base in &bases {
            let module_file = if rest.is_empty() {
                None
            } else {
                self.python_module(base, rest)
            };
            // `from pkg import sub` may name submodules.
            let pkg = if rest.is_empty() {
                base.clone()
            } else {
                join(base, &rest.replace('.', "/"))
            };
            for name in &import.names {
                if let Some(sub) = self.python_module(&pkg, name) {
                    out.push(sub);
                }
            }
            if let Some(file) = module_file {
                // A package's `__init__.py` counts only when no submodule was named.
                if out.is_empty() || !file.ends_with("__init__.py") {
                    out.push(file);
                }
            }
            if !out.is_empty() {
                break;
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn js(&self, from: &str, spec: &str) -> Vec<String> {
        let relative =
            spec.starts_with("./") || spec.starts_with("../") || spec == "." || spec == "..";
        let found = if relative {
            clean(&join(parent(from), spec)).and_then(|target| self.js_file(&target))
        } else {
            self.js_aliased(from, spec)
        };
        found.into_iter().collect()
    }

    /// A bare specifier through the `paths` and `baseUrl` of the nearest `tsconfig.json`.
    fn js_aliased(&self, from: &str, spec: &str) -> Option<String> {
        let mut dir = parent(from);
        let project = loop {
            if let Some(project) = self.ts_projects.get(dir) {
                break project;
            }
            if dir.is_empty() {
                return None;
            }
            dir = parent(dir);
        };
        for (pattern, targets) in &project.paths {
            let star = match pattern.split_once('*') {
                Some((prefix, suffix)) => spec
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix)),
                None => (pattern == spec).then_some(""),
            };
            let Some(star) = star else { continue };
            // The first pattern matching decides, as in `tsc`; its targets are tried in order.
            return targets
                .iter()
                .find_map(|target| self.js_file(&target.replacen('*', star, 1)));
        }
        let base = project.base.as_deref()?;
        clean(&join(base, spec)).and_then(|target| self.js_file(&target))
    }

    /// The file a specifier resolved to `target` names: itself, with an extension, or its
    /// directory's index.
    fn js_file(&self, target: &str) -> Option<String> {
        let target = target.to_owned();
        let mut candidates = vec![target.clone()];
        // TypeScript sources import their compiled name: `./util.js` means `./util.ts`.
        let stripped = Path::new(&target)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| ["js", "jsx", "mjs", "cjs"].contains(e))
            .map(|e| target[..target.len() - e.len() - 1].to_owned());
        for stem in std::iter::once(target.clone()).chain(stripped) {
            for ext in JS_EXTENSIONS {
                candidates.push(format!("{stem}.{ext}"));
            }
        }
        for ext in JS_EXTENSIONS {
            candidates.push(join(&target, &format!("index.{ext}")));
        }
        candidates.into_iter().find(|c| self.has(c))
    }

    /// A Go import: the files of the package that define what the importer uses (`pkg.Name`
    /// selectors); every file of the package when it uses none of its functions or types by
    /// name (only constants or variables, or a blank or dot import).
    fn go(&self, summary: &FileSummary, import: &crate::Import) -> Vec<String> {
        let Some(package) = self.go_package(&import.module) else {
            return Vec::new();
        };
        let all = || package.files.iter().map(|f| (*f).to_owned()).collect();
        let Some(name) = package.name else {
            return all();
        };
        let local = import.names.first().map_or(name, String::as_str);
        let mut defining: Vec<&str> = summary
            .references
            .iter()
            .filter_map(|r| r.strip_prefix(local).and_then(|r| r.strip_prefix('.')))
            .filter_map(|used| package.defs.get(used))
            .flatten()
            .copied()
            .collect();
        if defining.is_empty() {
            return all();
        }
        defining.sort_unstable();
        defining.dedup();
        defining.into_iter().map(str::to_owned).collect()
    }

    /// The package an import path names, worked out once per directory.
    fn go_package(&self, import: &str) -> Option<std::rc::Rc<GoPackage<'a>>> {
        let dir = self.go_modules.iter().find_map(|(module, root)| {
            if import == module {
                Some(root.clone())
            } else if let Some(rest) = import
                .strip_prefix(module.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(join(root, rest))
            } else if module == "std" && !import.split('/').next().is_some_and(|p| p.contains('.'))
            {
                // The standard library's own module: `fmt` is `<root>/fmt`.
                Some(join(root, import))
            } else {
                None
            }
        })?;
        if let Some(known) = self.go_packages.borrow().get(&dir) {
            return Some(known.clone());
        }
        let package = std::rc::Rc::new(self.read_go_package(&dir));
        self.go_packages.borrow_mut().insert(dir, package.clone());
        Some(package)
    }

    /// The non-test files of the package in `dir`, those declaring the package most of its
    /// files declare (a `package main` generator kept beside them is no part of it), and where
    /// each of its top-level names is defined.
    fn read_go_package(&self, dir: &str) -> GoPackage<'a> {
        let files: Vec<(&'a str, &'a FileSummary)> = self
            .by_dir
            .get(dir)
            .into_iter()
            .flatten()
            .copied()
            .filter(|f| f.ends_with(".go") && !f.ends_with("_test.go"))
            .filter_map(|f| self.files.get(f).map(|s| (f, s.as_ref())))
            .collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, summary) in &files {
            if let Some(package) = summary.package.as_deref() {
                *counts.entry(package).or_default() += 1;
            }
        }
        let name = counts
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
            .map(|(name, _)| *name);
        let mut package = GoPackage {
            name,
            files: Vec::new(),
            defs: HashMap::new(),
        };
        for (path, summary) in files {
            if name.is_some() && summary.package.as_deref() != name {
                continue;
            }
            package.files.push(path);
            for symbol in summary.symbols.iter().filter(|s| s.parent.is_none()) {
                package
                    .defs
                    .entry(symbol.name.as_str())
                    .or_default()
                    .push(path);
            }
        }
        package
    }

    fn java(&self, import: &str) -> Vec<String> {
        if let Some(pkg) = import.strip_suffix(".*") {
            if let Some(files) = self.java_packages.get(pkg) {
                return files.iter().map(|f| (*f).to_owned()).collect();
            }
            // `import static a.b.C.*`
            return self
                .java_types
                .get(pkg)
                .map(|f| vec![(*f).to_owned()])
                .unwrap_or_default();
        }
        let mut name = import;
        loop {
            if let Some(file) = self.java_types.get(name) {
                return vec![(*file).to_owned()];
            }
            match name.rfind('.') {
                Some(i) => name = &name[..i],
                None => return Vec::new(),
            }
        }
    }
}
