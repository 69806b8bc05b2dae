//! Languages the index understands.

use std::path::Path;

/// A language with a tree-sitter grammar in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// The language of a file by its extension; `None` for languages the index does not parse.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?;
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

    /// The grammar.
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
    pub(crate) const ALL: [Self; 6] = [
        Self::Python,
        Self::JavaScript,
        Self::TypeScript,
        Self::Tsx,
        Self::Go,
        Self::Java,
    ];
}
