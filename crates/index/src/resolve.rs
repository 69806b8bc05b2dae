//! Resolution of imports to files of the repository.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::index::{Edge, FileSummary};
use crate::lang::Lang;

const JS_EXTENSIONS: [&str; 8] = ["ts", "tsx", "js", "jsx", "mjs", "cjs", "mts", "cts"];

/// The resolved edges, sorted, and per file the imports that stay outside the repository.
///
/// With `only`, just the imports of those files are resolved (against all of `files`).
pub(crate) fn resolve(
    root: &Path,
    files: &BTreeMap<String, Arc<FileSummary>>,
    only: Option<&HashSet<String>>,
    go_mods: &[String],
) -> (Vec<Edge>, HashMap<String, Vec<String>>) {
    // Every `go.mod` of the tree: module path -> the directory it roots.
    let mut go_modules: Vec<(String, String)> = go_mods
        .iter()
        .filter_map(|rel| {
            let text = std::fs::read_to_string(root.join(rel)).ok()?;
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
    }
    (edges.into_iter().collect(), external)
}

struct Ctx<'a> {
    files: &'a BTreeMap<String, Arc<FileSummary>>,
    by_dir: HashMap<&'a str, Vec<&'a str>>,
    java_types: HashMap<String, &'a str>,
    java_packages: HashMap<&'a str, Vec<&'a str>>,
    go_modules: Vec<(String, String)>,
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

impl Ctx<'_> {
    fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    fn targets(&self, from: &str, summary: &FileSummary, import: &crate::Import) -> Vec<String> {
        match summary.language {
            Lang::Python => self.python(from, import),
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => self.js(from, &import.module),
            Lang::Go => self.go(&import.module),
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
        if !spec.starts_with("./") && !spec.starts_with("../") && spec != "." && spec != ".." {
            return Vec::new();
        }
        let Some(target) = clean(&join(parent(from), spec)) else {
            return Vec::new();
        };
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
        candidates
            .into_iter()
            .find(|c| self.has(c))
            .into_iter()
            .collect()
    }

    fn go(&self, import: &str) -> Vec<String> {
        let found = self.go_modules.iter().find_map(|(module, root)| {
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
        });
        let Some(dir) = found else {
            return Vec::new();
        };
        let dir = dir.as_str();
        self.by_dir
            .get(dir)
            .map(|files| {
                files
                    .iter()
                    .filter(|f| f.ends_with(".go") && !f.ends_with("_test.go"))
                    .map(|f| (*f).to_owned())
                    .collect()
            })
            .unwrap_or_default()
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
