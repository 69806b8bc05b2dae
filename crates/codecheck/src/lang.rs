//! The languages checked, their grammars and their queries.
//!
//! In a query, a capture named like a rule id (`@python.eval`, it holds a dot) marks the node
//! a finding is reported on; captures named after a [`Constraint`] (`@nonliteral`, `@blob`,
//! ...) must pass that check in Rust for the match to count; captures starting with `_` only
//! feed the query's own predicates.

use std::path::Path;

/// A language the checks understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Python (`.py`, `.pyi`).
    Python,
    /// JavaScript (`.js`, `.jsx`, `.mjs`, `.cjs`).
    JavaScript,
    /// TypeScript (`.ts`, `.mts`, `.cts`).
    TypeScript,
    /// TypeScript with JSX (`.tsx`).
    Tsx,
    /// Go (`.go`).
    Go,
    /// Java (`.java`).
    Java,
}

impl Lang {
    /// The language of a file by its extension; `None` for files the checks skip.
    pub fn from_path(path: &str) -> Option<Self> {
        let ext = Path::new(path).extension()?.to_str()?;
        Some(match ext {
            "py" | "pyi" => Self::Python,
            "js" | "jsx" | "mjs" | "cjs" => Self::JavaScript,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "go" => Self::Go,
            "java" => Self::Java,
            _ => return None,
        })
    }

    /// The language's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::JavaScript => "javascript",
            Self::TypeScript => "typescript",
            Self::Tsx => "tsx",
            Self::Go => "go",
            Self::Java => "java",
        }
    }

    /// Every language, in a fixed order.
    pub const ALL: [Self; 6] = [
        Self::Python,
        Self::JavaScript,
        Self::TypeScript,
        Self::Tsx,
        Self::Go,
        Self::Java,
    ];

    pub(crate) fn grammar(self) -> tree_sitter::Language {
        match self {
            Self::Python => tree_sitter::Language::new(tree_sitter_python::LANGUAGE),
            Self::JavaScript => tree_sitter::Language::new(tree_sitter_javascript::LANGUAGE),
            Self::TypeScript => {
                tree_sitter::Language::new(tree_sitter_typescript::LANGUAGE_TYPESCRIPT)
            }
            Self::Tsx => tree_sitter::Language::new(tree_sitter_typescript::LANGUAGE_TSX),
            Self::Go => tree_sitter::Language::new(tree_sitter_go::LANGUAGE),
            Self::Java => tree_sitter::Language::new(tree_sitter_java::LANGUAGE),
        }
    }

    pub(crate) fn query_source(self) -> &'static str {
        match self {
            Self::Python => PYTHON,
            Self::JavaScript | Self::TypeScript | Self::Tsx => JAVASCRIPT,
            Self::Go => GO,
            Self::Java => JAVA,
        }
    }

    /// Node kinds that are string literals.
    pub(crate) fn is_string(self, kind: &str) -> bool {
        match self {
            Self::Python => kind == "string",
            Self::JavaScript | Self::TypeScript | Self::Tsx => {
                matches!(kind, "string" | "template_string")
            }
            Self::Go => matches!(kind, "interpreted_string_literal" | "raw_string_literal"),
            Self::Java => matches!(kind, "string_literal"),
        }
    }
}

/// A check a query's capture must pass, done in Rust where a query cannot say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Constraint {
    /// The node is not a constant (a literal, or a list or concatenation of literals).
    NonLiteral,
    /// The node is a string built at run time (interpolation, concatenation, formatting).
    Built,
    /// An argument list or list starting (after any non-strings) with a shell (`sh`, `bash`,
    /// ...) that holds a non-constant element: `["sh", "-c", cmd]`.
    ShellArgv,
    /// Its text calls a decoder (base64, hex, zlib, `atob`, `fromCharCode`, ...).
    Decoded,
    /// A string literal holding a long run of base64 or hex.
    Blob,
    /// A string literal on one line, very long.
    LongLiteral,
    /// A block with no statement (comments aside).
    EmptyBody,
    /// A block whose only statement is `return true`.
    ReturnsTrue,
}

impl Constraint {
    pub(crate) fn from_capture(name: &str) -> Option<Self> {
        Some(match name {
            "nonliteral" => Self::NonLiteral,
            "built" => Self::Built,
            "shell_argv" => Self::ShellArgv,
            "decoded" => Self::Decoded,
            "blob" => Self::Blob,
            "long_literal" => Self::LongLiteral,
            "empty_body" => Self::EmptyBody,
            "returns_true" => Self::ReturnsTrue,
            _ => return None,
        })
    }
}

const PYTHON: &str = r#"
((call function: (identifier) @_f arguments: (argument_list . (_) @decoded)) @python.decode_exec
 (#any-of? @_f "eval" "exec"))
((call function: (identifier) @_f) @python.eval
 (#any-of? @_f "eval" "exec"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)) @python.eval
 (#eq? @_o "builtins") (#any-of? @_f "eval" "exec"))
((call function: (identifier) @_f) @python.dynamic_import
 (#eq? @_f "__import__"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)
       arguments: (argument_list . (_) @nonliteral)) @python.dynamic_import
 (#eq? @_o "importlib") (#eq? @_f "import_module"))
((call function: (identifier) @_f arguments: (argument_list . (_) @nonliteral)) @python.dynamic_import
 (#eq? @_f "import_module"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)
       arguments: (argument_list . (_) @nonliteral)) @python.shell
 (#eq? @_o "os") (#any-of? @_f "system" "popen"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)
       arguments: (argument_list . (_) @nonliteral)) @python.shell
 (#eq? @_o "subprocess") (#any-of? @_f "getoutput" "getstatusoutput"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)
       arguments: (argument_list . (_) @nonliteral
                  (keyword_argument name: (identifier) @_k value: (true)))) @python.shell
 (#eq? @_o "subprocess") (#eq? @_k "shell"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)
       arguments: (argument_list . (list) @shell_argv)) @python.shell
 (#eq? @_o "subprocess"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)
       arguments: (argument_list . (_) @built)) @python.subprocess_built
 (#eq? @_o "subprocess") (#any-of? @_f "run" "call" "check_call" "check_output" "Popen"))
((call function: (attribute object: (identifier) @_o)) @python.network
 (#any-of? @_o "requests" "httpx" "urllib3" "aiohttp"))
((call function: (attribute attribute: (identifier) @_f)) @python.network
 (#any-of? @_f "urlopen" "HTTPConnection" "HTTPSConnection" "create_connection"))
((call function: (identifier) @_f) @python.network
 (#any-of? @_f "urlopen" "HTTPConnection" "HTTPSConnection" "create_connection"))
((call function: (attribute object: (identifier) @_o attribute: (identifier) @_f)) @python.network
 (#eq? @_o "socket") (#eq? @_f "socket"))
((string) @python.encoded_blob @blob)
((string) @python.long_literal @long_literal)
((keyword_argument name: (identifier) @_k value: (false)) @python.tls_disabled
 (#eq? @_k "verify"))
((attribute attribute: (identifier) @_a) @python.tls_disabled
 (#any-of? @_a "_create_unverified_context" "CERT_NONE"))
((assignment left: (attribute attribute: (identifier) @_a) right: (false)) @python.tls_disabled
 (#eq? @_a "check_hostname"))
"#;

const JAVASCRIPT: &str = r#"
((call_expression function: (identifier) @_f arguments: (arguments . (_) @decoded)) @js.decode_exec
 (#any-of? @_f "eval" "Function"))
((new_expression constructor: (identifier) @_f arguments: (arguments (_) @decoded)) @js.decode_exec
 (#eq? @_f "Function"))
((call_expression function: (identifier) @_f) @js.eval
 (#any-of? @_f "eval" "Function"))
((new_expression constructor: (identifier) @_f) @js.eval
 (#eq? @_f "Function"))
((call_expression function: (identifier) @_f arguments: (arguments . [(string) (template_string)])) @js.eval
 (#any-of? @_f "setTimeout" "setInterval"))
((call_expression function: (member_expression object: (identifier) @_o property: (property_identifier) @_f)) @js.eval
 (#eq? @_o "vm") (#any-of? @_f "runInThisContext" "runInNewContext" "runInContext" "compileFunction"))
((call_expression function: (identifier) @_f arguments: (arguments . (_) @nonliteral)) @js.dynamic_import
 (#eq? @_f "require"))
((call_expression function: (import) arguments: (arguments . (_) @nonliteral)) @js.dynamic_import)
((call_expression function: (member_expression object: (identifier) @_o property: (property_identifier) @_f)
                  arguments: (arguments . (_) @nonliteral)) @js.shell
 (#any-of? @_o "child_process" "childProcess" "cp") (#any-of? @_f "exec" "execSync"))
((call_expression function: (identifier) @_f arguments: (arguments . (_) @nonliteral)) @js.shell
 (#any-of? @_f "exec" "execSync"))
((call_expression function: (member_expression object: (call_expression function: (identifier) @_r) property: (property_identifier) @_f)
                  arguments: (arguments . (_) @nonliteral)) @js.shell
 (#eq? @_r "require") (#any-of? @_f "exec" "execSync"))
((call_expression function: [(identifier) @_f (member_expression property: (property_identifier) @_f)]
                  arguments: (arguments . (_) @nonliteral (object (pair key: (property_identifier) @_k value: (true))))) @js.shell
 (#any-of? @_f "spawn" "spawnSync" "execFile" "execFileSync") (#eq? @_k "shell"))
((call_expression function: [(identifier) @_f (member_expression property: (property_identifier) @_f)]
                  arguments: (arguments) @shell_argv) @js.shell
 (#any-of? @_f "spawn" "spawnSync" "execFile" "execFileSync"))
((call_expression function: (identifier) @_f) @js.network
 (#any-of? @_f "fetch" "axios"))
((call_expression function: (member_expression object: (identifier) @_o property: (property_identifier) @_f)) @js.network
 (#any-of? @_o "window" "globalThis" "self") (#eq? @_f "fetch"))
((call_expression function: (member_expression object: (identifier) @_o)) @js.network
 (#eq? @_o "axios"))
((call_expression function: (member_expression object: (identifier) @_o property: (property_identifier) @_f)) @js.network
 (#any-of? @_o "http" "https") (#any-of? @_f "request" "get"))
((call_expression function: (member_expression object: (identifier) @_o property: (property_identifier) @_f)) @js.network
 (#any-of? @_o "net" "tls") (#any-of? @_f "connect" "createConnection"))
((new_expression constructor: (identifier) @_f) @js.network
 (#any-of? @_f "XMLHttpRequest" "WebSocket"))
([(string) (template_string)] @js.encoded_blob @blob)
([(string) (template_string)] @js.long_literal @long_literal)
((pair key: (_) @_k value: (false)) @js.tls_disabled
 (#match? @_k "^[\"']?rejectUnauthorized[\"']?$"))
((assignment_expression left: (member_expression property: (property_identifier) @_p) right: (_) @_v) @js.tls_disabled
 (#eq? @_p "NODE_TLS_REJECT_UNAUTHORIZED") (#match? @_v "^[\"'`]?0[\"'`]?$"))
((assignment_expression left: (subscript_expression index: (string) @_p) right: (_) @_v) @js.tls_disabled
 (#match? @_p "NODE_TLS_REJECT_UNAUTHORIZED") (#match? @_v "^[\"'`]?0[\"'`]?$"))
"#;

const GO: &str = r#"
((call_expression function: (selector_expression operand: (identifier) @_o field: (field_identifier) @_f)
                  arguments: (argument_list . (_) @nonliteral)) @go.shell
 (#eq? @_o "exec") (#eq? @_f "Command"))
((call_expression function: (selector_expression operand: (identifier) @_o field: (field_identifier) @_f)
                  arguments: (argument_list . (_) . (_) @nonliteral)) @go.shell
 (#eq? @_o "exec") (#eq? @_f "CommandContext"))
((call_expression function: (selector_expression operand: (identifier) @_o field: (field_identifier) @_f)
                  arguments: (argument_list) @shell_argv) @go.shell
 (#eq? @_o "exec") (#any-of? @_f "Command" "CommandContext"))
((call_expression function: (selector_expression operand: (identifier) @_o field: (field_identifier) @_f)
                  arguments: (argument_list . (_) @nonliteral)) @go.dynamic_import
 (#eq? @_o "plugin") (#eq? @_f "Open"))
((call_expression function: (selector_expression operand: (identifier) @_o field: (field_identifier) @_f)) @go.network
 (#eq? @_o "http") (#any-of? @_f "Get" "Post" "Head" "PostForm" "NewRequest" "NewRequestWithContext"))
((call_expression function: (selector_expression operand: (identifier) @_o field: (field_identifier) @_f)) @go.network
 (#any-of? @_o "net" "tls") (#match? @_f "^Dial"))
((call_expression function: (selector_expression operand: (selector_expression operand: (identifier) @_o field: (field_identifier) @_c))) @go.network
 (#eq? @_o "http") (#eq? @_c "DefaultClient"))
([(interpreted_string_literal) (raw_string_literal)] @go.encoded_blob @blob)
([(interpreted_string_literal) (raw_string_literal)] @go.long_literal @long_literal)
((keyed_element . (_) @_k . (_) @_v) @go.tls_disabled
 (#eq? @_k "InsecureSkipVerify") (#eq? @_v "true"))
((assignment_statement left: (expression_list (selector_expression field: (field_identifier) @_k)) right: (expression_list (true))) @go.tls_disabled
 (#eq? @_k "InsecureSkipVerify"))
"#;

const JAVA: &str = r#"
((method_invocation name: (identifier) @_m arguments: (argument_list (_))) @java.eval
 (#eq? @_m "eval"))
((method_invocation object: (identifier) @_o name: (identifier) @_m arguments: (argument_list . (_) @nonliteral)) @java.reflection
 (#eq? @_o "Class") (#eq? @_m "forName"))
((method_invocation name: (identifier) @_m arguments: (argument_list . (_) @nonliteral)) @java.reflection
 (#eq? @_m "loadClass"))
((method_invocation object: (method_invocation object: (identifier) @_r name: (identifier) @_g) name: (identifier) @_m
                    arguments: (argument_list . (_) @nonliteral)) @java.shell
 (#eq? @_r "Runtime") (#eq? @_g "getRuntime") (#eq? @_m "exec"))
((object_creation_expression type: (_) @_t arguments: (argument_list (_) @nonliteral)) @java.shell
 (#eq? @_t "ProcessBuilder"))
((object_creation_expression type: (_) @_t) @java.network
 (#any-of? @_t "URL" "java.net.URL" "Socket" "java.net.Socket" "DatagramSocket" "HttpGet" "HttpPost"))
((method_invocation object: (identifier) @_o name: (identifier) @_m) @java.network
 (#eq? @_o "HttpClient") (#any-of? @_m "newHttpClient" "newBuilder"))
((method_invocation name: (identifier) @_m) @java.network
 (#eq? @_m "openConnection"))
((string_literal) @java.encoded_blob @blob)
((string_literal) @java.long_literal @long_literal)
((method_declaration name: (identifier) @_n body: (block) @empty_body) @java.tls_disabled
 (#eq? @_n "checkServerTrusted"))
((method_declaration name: (identifier) @_n parameters: (formal_parameters) @_p body: (block) @returns_true) @java.tls_disabled
 (#eq? @_n "verify") (#match? @_p "SSLSession"))
((method_invocation name: (identifier) @_m arguments: (argument_list (lambda_expression body: (true)))) @java.tls_disabled
 (#match? @_m "HostnameVerifier$"))
((object_creation_expression type: (_) @_t) @java.tls_disabled
 (#any-of? @_t "NoopHostnameVerifier" "TrustAllStrategy"))
((field_access field: (identifier) @_f) @java.tls_disabled
 (#eq? @_f "ALLOW_ALL_HOSTNAME_VERIFIER"))
"#;
