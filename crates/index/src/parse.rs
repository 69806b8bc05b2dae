//! Extraction of symbols, imports and syntax chunks from one file's syntax tree.

use tree_sitter::{Node, Parser};

use crate::lang::Lang;

/// What kind of declaration a symbol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolKind {
    /// A class (Python, JS/TS, Java) or a record.
    Class,
    /// An interface (TS, Go, Java).
    Interface,
    /// An enum (TS, Java).
    Enum,
    /// A struct or other named type (Go), a type alias (TS).
    Type,
    /// A free function (or a function bound to a `const`).
    Function,
    /// A method or constructor inside a class, or a Go method with a receiver.
    Method,
}

/// A declaration in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: SymbolKind,
    /// The enclosing class (or Go receiver type), if any.
    pub parent: Option<String>,
    /// The declaration's head, whitespace collapsed: `def add(a, b) -> int`.
    pub signature: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
}

/// An import as written in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Import {
    /// The module, package, class or path imported, as written (`./util`, `pkg.mod`,
    /// `example.com/m/store`, `com.acme.Foo`, `com.acme.*`). Python relative imports keep
    /// their dots: `.models`.
    pub module: String,
    /// The names imported from it, when the syntax lists them (`from m import a, b`); for a
    /// Go import that renames the package, the local name.
    pub names: Vec<String>,
    /// Line of the import, 1-based.
    pub line: u32,
}

/// A piece of a large file split along top-level declarations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
    /// The names of the top-level declarations in it.
    pub symbols: Vec<String>,
}

/// What one file yields.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub symbols: Vec<Symbol>,
    pub imports: Vec<Import>,
    /// The package (Go `package x`, Java `package a.b;`), if declared.
    pub package: Option<String>,
    /// Whether the tree holds syntax errors.
    pub has_errors: bool,
    /// Lines in the file.
    pub lines: u32,
    pub chunks: Vec<Chunk>,
    /// Names used that may resolve to other files without an import naming them.
    pub references: Vec<String>,
}

/// Files with more lines than this are split into chunks along their syntax.
pub(crate) const CHUNK_THRESHOLD_LINES: u32 = 10_000;
/// The size a chunk aims for, in lines.
const CHUNK_TARGET_LINES: u32 = 400;
/// One file's parse may take this long before it is given up as unparsable.
const PARSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// Declarations nested deeper than this are not looked into (a generated file nesting
/// thousands of levels must not exhaust the stack).
const MAX_DEPTH: usize = 48;
/// Signatures are cut to this many characters.
const MAX_SIGNATURE: usize = 240;

/// Parsers, one per language, reused across files.
pub(crate) struct Parsers {
    parsers: Vec<(Lang, Parser)>,
}

impl Parsers {
    pub(crate) fn new() -> crate::Result<Self> {
        let mut parsers = Vec::new();
        for lang in Lang::ALL {
            let mut parser = Parser::new();
            parser
                .set_language(&lang.grammar())
                .map_err(|_| crate::Error::Grammar(lang.name()))?;
            parsers.push((lang, parser));
        }
        Ok(Self { parsers })
    }

    /// Parses `source`; `None` when tree-sitter gave up (it almost never does: broken code
    /// yields a tree with error nodes).
    pub(crate) fn extract(&mut self, lang: Lang, source: &[u8]) -> Option<Extracted> {
        let parser = &mut self.parsers.iter_mut().find(|(l, _)| *l == lang)?.1;
        let deadline = std::time::Instant::now() + PARSE_TIMEOUT;
        // Returning true cancels the parse: a pathological file is reported, not waited on.
        let mut give_up = |_: &tree_sitter::ParseState| std::time::Instant::now() > deadline;
        let options = tree_sitter::ParseOptions::new().progress_callback(&mut give_up);
        let mut read =
            |offset: usize, _: tree_sitter::Point| source.get(offset..).unwrap_or_default();
        let tree = parser.parse_with_options(&mut read, None, Some(options))?;
        let root = tree.root_node();
        let mut out = Extracted {
            has_errors: root.has_error(),
            lines: line_count(source),
            ..Extracted::default()
        };
        let mut walker = Walker {
            lang,
            depth: 0,
            src: source,
            out: &mut out,
        };
        walker.visit(root, None);
        out.references = references(lang, source);
        if out.lines > CHUNK_THRESHOLD_LINES {
            out.chunks = chunks(root, source);
        }
        Some(out)
    }
}

fn line_count(source: &[u8]) -> u32 {
    let newlines = source.iter().filter(|b| **b == b'\n').count();
    let last = usize::from(!source.is_empty() && source.last() != Some(&b'\n'));
    u32::try_from(newlines + last).unwrap_or(u32::MAX)
}

fn line(row: usize) -> u32 {
    u32::try_from(row + 1).unwrap_or(u32::MAX)
}

struct Walker<'a> {
    lang: Lang,
    depth: usize,
    src: &'a [u8],
    out: &'a mut Extracted,
}

impl Walker<'_> {
    fn text(&self, node: Node<'_>) -> String {
        String::from_utf8_lossy(&self.src[node.byte_range()]).into_owned()
    }

    fn field_text(&self, node: Node<'_>, field: &str) -> Option<String> {
        node.child_by_field_name(field).map(|n| self.text(n))
    }

    /// The declaration's text up to its body, whitespace collapsed.
    fn signature(&self, node: Node<'_>, body_field: &str) -> String {
        let end = node
            .child_by_field_name(body_field)
            .map_or(node.end_byte(), |b| b.start_byte());
        let raw = String::from_utf8_lossy(&self.src[node.start_byte()..end.max(node.start_byte())]);
        let mut sig = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        while sig.ends_with(':') || sig.ends_with('{') || sig.ends_with("=>") {
            sig.pop();
            if sig.ends_with('=') {
                sig.pop();
            }
            sig = sig.trim_end().to_owned();
        }
        if sig.len() > MAX_SIGNATURE {
            let mut cut = MAX_SIGNATURE;
            while !sig.is_char_boundary(cut) {
                cut -= 1;
            }
            sig.truncate(cut);
            sig.push('…');
        }
        sig
    }

    fn push(
        &mut self,
        node: Node<'_>,
        name: String,
        kind: SymbolKind,
        parent: Option<&str>,
        sig: String,
    ) {
        self.out.symbols.push(Symbol {
            name,
            kind,
            parent: parent.map(str::to_owned),
            signature: sig,
            start_line: line(node.start_position().row),
            end_line: line(node.end_position().row),
        });
    }

    fn import(&mut self, node: Node<'_>, module: String, names: Vec<String>) {
        if module.is_empty() {
            return;
        }
        self.out.imports.push(Import {
            module,
            names,
            line: line(node.start_position().row),
        });
    }

    fn visit_children(&mut self, node: Node<'_>, parent: Option<&str>) {
        let mut cursor = node.walk();
        let kids: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
        for child in kids {
            self.visit(child, parent);
        }
    }

    fn visit(&mut self, node: Node<'_>, parent: Option<&str>) {
        if self.depth >= MAX_DEPTH {
            return;
        }
        self.depth += 1;
        self.visit_kind(node, parent);
        self.depth -= 1;
    }

    fn visit_kind(&mut self, node: Node<'_>, parent: Option<&str>) {
        match self.lang {
            Lang::Python => self.python(node, parent),
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => self.js(node, parent),
            Lang::Go => self.go(node, parent),
            Lang::Java => self.java(node, parent),
        }
    }

    fn python(&mut self, node: Node<'_>, parent: Option<&str>) {
        match node.kind() {
            "class_definition" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "body");
                self.push(node, name.clone(), SymbolKind::Class, parent, sig);
                if let Some(body) = node.child_by_field_name("body") {
                    self.visit_children(body, Some(&name));
                }
            }
            "function_definition" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let kind = if parent.is_some() {
                    SymbolKind::Method
                } else {
                    SymbolKind::Function
                };
                let sig = self.signature(node, "body");
                self.push(node, name, kind, parent, sig);
                // Nested functions are implementation detail: not descended into.
            }
            "import_statement" => {
                let mut cursor = node.walk();
                let names: Vec<Node<'_>> =
                    node.children_by_field_name("name", &mut cursor).collect();
                for n in names {
                    let module = match n.kind() {
                        "aliased_import" => self.field_text(n, "name").unwrap_or_default(),
                        _ => self.text(n),
                    };
                    self.import(node, module, Vec::new());
                }
            }
            "import_from_statement" => {
                let module = self.field_text(node, "module_name").unwrap_or_default();
                let mut cursor = node.walk();
                let names: Vec<String> = node
                    .children_by_field_name("name", &mut cursor)
                    .map(|n| match n.kind() {
                        "aliased_import" => self.field_text(n, "name").unwrap_or_default(),
                        _ => self.text(n),
                    })
                    .collect();
                self.import(node, module, names);
            }
            "decorated_definition"
            | "module"
            | "block"
            | "if_statement"
            | "try_statement"
            | "else_clause"
            | "except_clause"
            | "finally_clause" => {
                self.visit_children(node, parent);
            }
            _ => {}
        }
    }

    fn js(&mut self, node: Node<'_>, parent: Option<&str>) {
        match node.kind() {
            "class_declaration" | "abstract_class_declaration" | "class" => {
                let Some(name) = self.field_text(node, "name") else {
                    return;
                };
                let sig = self.signature(node, "body");
                self.push(node, name.clone(), SymbolKind::Class, parent, sig);
                if let Some(body) = node.child_by_field_name("body") {
                    self.visit_children(body, Some(&name));
                }
            }
            "interface_declaration" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "body");
                self.push(node, name, SymbolKind::Interface, parent, sig);
            }
            "enum_declaration" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "body");
                self.push(node, name, SymbolKind::Enum, parent, sig);
            }
            "type_alias_declaration" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "value");
                self.push(node, name, SymbolKind::Type, parent, sig);
            }
            "function_declaration" | "generator_function_declaration" | "function_signature" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "body");
                self.push(node, name, SymbolKind::Function, parent, sig);
            }
            "method_definition" | "method_signature" | "abstract_method_signature" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "body");
                self.push(node, name, SymbolKind::Method, parent, sig);
            }
            "lexical_declaration" | "variable_declaration" => {
                let mut cursor = node.walk();
                let decls: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                for decl in decls {
                    if decl.kind() != "variable_declarator" {
                        continue;
                    }
                    let Some(value) = decl.child_by_field_name("value") else {
                        continue;
                    };
                    match value.kind() {
                        "arrow_function" | "function_expression" | "function" => {
                            let name = self.field_text(decl, "name").unwrap_or_default();
                            let head = self.signature(node, "");
                            let sig = match value.child_by_field_name("body") {
                                Some(body) => {
                                    let raw = String::from_utf8_lossy(
                                        &self.src[node.start_byte()..body.start_byte()],
                                    );
                                    let s = raw.split_whitespace().collect::<Vec<_>>().join(" ");
                                    s.trim_end_matches('{')
                                        .trim_end_matches("=>")
                                        .trim_end()
                                        .to_owned()
                                }
                                None => head,
                            };
                            self.push(node, name, SymbolKind::Function, parent, sig);
                        }
                        "call_expression" => self.js_require(value),
                        "class" => {
                            if let Some(name) = self.field_text(decl, "name") {
                                let sig = format!("class {name}");
                                self.push(node, name.clone(), SymbolKind::Class, parent, sig);
                                if let Some(body) = value.child_by_field_name("body") {
                                    self.visit_children(body, Some(&name));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            "import_statement" => {
                let module = node
                    .child_by_field_name("source")
                    .map(|s| self.string_value(s))
                    .unwrap_or_default();
                let names = self.js_import_names(node);
                self.import(node, module, names);
            }
            "export_statement" => {
                if let Some(source) = node.child_by_field_name("source") {
                    let module = self.string_value(source);
                    self.import(node, module, Vec::new());
                }
                if let Some(decl) = node.child_by_field_name("declaration") {
                    self.visit(decl, parent);
                } else {
                    self.visit_children(node, parent);
                }
            }
            "expression_statement" => {
                let mut cursor = node.walk();
                let kids: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                for kid in kids {
                    match kid.kind() {
                        "call_expression" => self.js_require(kid),
                        "assignment_expression" => {
                            if let Some(right) = kid.child_by_field_name("right")
                                && right.kind() == "call_expression"
                            {
                                self.js_require(right);
                            }
                        }
                        _ => {}
                    }
                }
            }
            "program"
            | "statement_block"
            | "module"
            | "internal_module"
            | "ambient_declaration" => {
                self.visit_children(node, parent);
            }
            _ => {}
        }
    }

    fn js_import_names(&self, node: Node<'_>) -> Vec<String> {
        let mut names = Vec::new();
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            match n.kind() {
                "import_specifier" => {
                    if let Some(name) = self.field_text(n, "name") {
                        names.push(name);
                    }
                }
                "string" => {}
                _ => {
                    let mut cursor = n.walk();
                    stack.extend(n.named_children(&mut cursor));
                }
            }
        }
        names.reverse();
        names
    }

    /// `require('x')` and `import('x')` with a literal argument.
    fn js_require(&mut self, call: Node<'_>) {
        let Some(function) = call.child_by_field_name("function") else {
            return;
        };
        let callee = self.text(function);
        if callee != "require" && callee != "import" {
            return;
        }
        let Some(args) = call.child_by_field_name("arguments") else {
            return;
        };
        let mut cursor = args.walk();
        let first = args.named_children(&mut cursor).next();
        if let Some(arg) = first
            && arg.kind() == "string"
        {
            let module = self.string_value(arg);
            self.import(call, module, Vec::new());
        }
    }

    fn string_value(&self, node: Node<'_>) -> String {
        let text = self.text(node);
        text.trim_matches(|c| c == '"' || c == '\'' || c == '`')
            .to_owned()
    }

    fn go(&mut self, node: Node<'_>, parent: Option<&str>) {
        match node.kind() {
            "source_file" | "import_spec_list" | "type_declaration" => {
                self.visit_children(node, parent);
            }
            "package_clause" => {
                let mut cursor = node.walk();
                let name = node
                    .named_children(&mut cursor)
                    .find(|n| n.kind() == "package_identifier")
                    .map(|n| self.text(n));
                self.out.package = name;
            }
            "import_declaration" => self.visit_children(node, parent),
            "import_spec" => {
                let module = node
                    .child_by_field_name("path")
                    .map(|p| self.string_value(p))
                    .unwrap_or_default();
                let alias = self.field_text(node, "name").into_iter().collect();
                self.import(node, module, alias);
            }
            "function_declaration" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "body");
                self.push(node, name, SymbolKind::Function, None, sig);
            }
            "method_declaration" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let receiver = node
                    .child_by_field_name("receiver")
                    .map(|r| self.go_receiver_type(r));
                let sig = self.signature(node, "body");
                self.push(node, name, SymbolKind::Method, receiver.as_deref(), sig);
            }
            "type_spec" | "type_alias" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let kind = match node.child_by_field_name("type").map(|t| t.kind()) {
                    Some("interface_type") => SymbolKind::Interface,
                    _ => SymbolKind::Type,
                };
                let sig = self.signature(node, "type");
                let ty = node
                    .child_by_field_name("type")
                    .map(|t| t.kind())
                    .unwrap_or("");
                let sig = match ty {
                    "struct_type" => format!("type {sig} struct"),
                    "interface_type" => format!("type {sig} interface"),
                    _ => format!(
                        "type {}",
                        self.text(node)
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                };
                self.push(node, name, kind, None, sig);
            }
            _ => {}
        }
    }

    fn go_receiver_type(&self, receiver: Node<'_>) -> String {
        let text = self.text(receiver);
        let inner = text.trim_matches(|c| c == '(' || c == ')');
        let ty = inner.split_whitespace().last().unwrap_or("");
        let ty = ty.trim_start_matches('*');
        ty.split('[').next().unwrap_or(ty).to_owned()
    }

    fn java(&mut self, node: Node<'_>, parent: Option<&str>) {
        match node.kind() {
            "program" => self.visit_children(node, parent),
            "package_declaration" => {
                let mut cursor = node.walk();
                let name = node
                    .named_children(&mut cursor)
                    .find(|n| matches!(n.kind(), "scoped_identifier" | "identifier"))
                    .map(|n| self.text(n));
                self.out.package = name;
            }
            "import_declaration" => {
                let mut cursor = node.walk();
                let kids: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                let mut module = kids
                    .iter()
                    .find(|n| matches!(n.kind(), "scoped_identifier" | "identifier"))
                    .map(|n| self.text(*n))
                    .unwrap_or_default();
                if kids.iter().any(|n| n.kind() == "asterisk") {
                    module.push_str(".*");
                }
                self.import(node, module, Vec::new());
            }
            "class_declaration"
            | "interface_declaration"
            | "enum_declaration"
            | "record_declaration"
            | "annotation_type_declaration" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let kind = match node.kind() {
                    "interface_declaration" | "annotation_type_declaration" => {
                        SymbolKind::Interface
                    }
                    "enum_declaration" => SymbolKind::Enum,
                    _ => SymbolKind::Class,
                };
                let sig = self.signature(node, "body");
                self.push(node, name.clone(), kind, parent, sig);
                if let Some(body) = node.child_by_field_name("body") {
                    self.visit_children(body, Some(&name));
                }
            }
            "enum_body_declarations" => self.visit_children(node, parent),
            "method_declaration" | "constructor_declaration" => {
                let name = self.field_text(node, "name").unwrap_or_default();
                let sig = self.signature(node, "body");
                self.push(node, name, SymbolKind::Method, parent, sig);
            }
            _ => {}
        }
    }
}

/// What a file names that may live in another file of the repository without an import
/// saying which: for Java the capitalised names it uses (a class of the same package needs no
/// import), for Go every `x.Name` selector of an exported name (which files of an imported
/// package it really depends on). Sorted, without duplicates; empty for other languages.
///
/// A scan of the text outside comments and literals rather than a walk of the syntax tree: it
/// finds the same names for a fraction of the cost, and a stray name only adds an edge within
/// a package the file already uses.
fn references(lang: Lang, src: &[u8]) -> Vec<String> {
    if !matches!(lang, Lang::Java | Lang::Go) {
        return Vec::new();
    }
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    let ident_end = |from: usize| {
        from + src[from..]
            .iter()
            .position(|b| !is_ident(*b))
            .unwrap_or(src.len() - from)
    };
    // The index just past the first `close` at or after `from` (the end when there is none).
    let past = |from: usize, close: &[u8]| {
        src.get(from..)
            .and_then(|rest| rest.windows(close.len()).position(|w| w == close))
            .map_or(src.len(), |at| from + at + close.len())
    };
    let mut found = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        let next = src.get(i + 1).copied();
        i = match (b, next) {
            (b'/', Some(b'/')) => past(i, b"\n"),
            (b'/', Some(b'*')) => past(i + 2, b"*/"),
            (b'"', _) if src[i..].starts_with(b"\"\"\"") => past(i + 3, b"\"\"\""),
            (b'"' | b'\'', _) => {
                let mut j = i + 1;
                while j < src.len() && src[j] != b && src[j] != b'\n' {
                    j += if src[j] == b'\\' { 2 } else { 1 };
                }
                j + 1
            }
            (b'`', _) if lang == Lang::Go => past(i + 1, b"`"),
            (b'0'..=b'9', _) => ident_end(i),
            _ if is_ident(b) => {
                let end = ident_end(i);
                match lang {
                    Lang::Java if b.is_ascii_uppercase() => {
                        found.insert(String::from_utf8_lossy(&src[i..end]).into_owned());
                    }
                    Lang::Go
                        if src.get(end) == Some(&b'.')
                            && src.get(end + 1).is_some_and(u8::is_ascii_uppercase)
                            && (i == 0 || src[i - 1] != b'.') =>
                    {
                        let field_end = ident_end(end + 1);
                        found.insert(String::from_utf8_lossy(&src[i..field_end]).into_owned());
                    }
                    _ => {}
                }
                end
            }
            _ => i + 1,
        };
    }
    found.into_iter().collect()
}

/// Splits a large file along its top-level nodes into chunks of about
/// [`CHUNK_TARGET_LINES`]; a single top-level node larger than that (a bundle's wrapping
/// IIFE) is split along its own children, recursively.
fn chunks(root: Node<'_>, src: &[u8]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut current: Option<Chunk> = None;
    split(root, src, &mut out, &mut current, 0);
    out.extend(current);
    out
}

fn split(
    node: Node<'_>,
    src: &[u8],
    out: &mut Vec<Chunk>,
    current: &mut Option<Chunk>,
    depth: usize,
) {
    let mut cursor = node.walk();
    let kids: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
    for kid in kids {
        let start = line(kid.start_position().row);
        let end = line(kid.end_position().row);
        if end - start + 1 > CHUNK_TARGET_LINES && kid.named_child_count() > 0 && depth < MAX_DEPTH
        {
            out.extend(current.take());
            split(kid, src, out, current, depth + 1);
            continue;
        }
        let name = kid
            .child_by_field_name("name")
            .map(|n| String::from_utf8_lossy(&src[n.byte_range()]).into_owned());
        match current {
            Some(chunk) if end.saturating_sub(chunk.start_line) < CHUNK_TARGET_LINES => {
                chunk.end_line = chunk.end_line.max(end);
                chunk.symbols.extend(name);
            }
            _ => {
                out.extend(current.take());
                *current = Some(Chunk {
                    start_line: start,
                    end_line: end,
                    symbols: name.into_iter().collect(),
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
