use pretty_assertions::assert_eq;

use super::*;

#[test]
fn line_count_counts_a_last_line_without_newline() {
    assert_eq!(line_count(b""), 0);
    assert_eq!(line_count(b"a"), 1);
    assert_eq!(line_count(b"a\n"), 1);
    assert_eq!(line_count(b"a\nb"), 2);
}

#[test]
fn large_files_are_chunked_along_declarations() -> crate::Result<()> {
    let mut source = String::new();
    for i in 0..2_500 {
        source.push_str(&format!(
            "function f{i}(a) {{\n  const x = a + {i};\n  return x;\n}}\n"
        ));
    }
    let mut parsers = Parsers::new()?;
    let out = parsers.extract(Lang::JavaScript, source.as_bytes());
    let out = out.unwrap_or_default();
    assert_eq!(out.lines, 10_000);
    assert!(out.chunks.is_empty(), "10k lines is not over the threshold");
    source.push_str("function last() {}\n");
    let out = parsers
        .extract(Lang::JavaScript, source.as_bytes())
        .unwrap_or_default();
    assert_eq!(out.symbols.len(), 2_501);
    // Chunks never cut a function: each starts where a function starts.
    assert!(out.chunks.len() >= 25, "{} chunks", out.chunks.len());
    for chunk in &out.chunks {
        assert_eq!((chunk.start_line - 1) % 4, 0, "{chunk:?}");
        assert!(chunk.end_line - chunk.start_line < CHUNK_TARGET_LINES);
    }
    let names: usize = out.chunks.iter().map(|c| c.symbols.len()).sum();
    assert_eq!(names, 2_501);
    Ok(())
}

#[test]
fn a_bundle_in_one_wrapper_is_split_inside_it() -> crate::Result<()> {
    let mut source = String::from("(function () {\n");
    for i in 0..3_000 {
        source.push_str(&format!("  function g{i}() {{\n    return {i};\n  }}\n\n"));
    }
    source.push_str("})();\n");
    let mut parsers = Parsers::new()?;
    let out = parsers
        .extract(Lang::JavaScript, source.as_bytes())
        .unwrap_or_default();
    assert!(out.lines > CHUNK_THRESHOLD_LINES);
    assert!(out.chunks.len() >= 25, "{} chunks", out.chunks.len());
    assert!(
        out.chunks
            .iter()
            .all(|c| c.end_line - c.start_line < CHUNK_TARGET_LINES)
    );
    Ok(())
}

#[test]
fn deep_nesting_is_cut_not_a_stack_overflow() -> crate::Result<()> {
    let mut parsers = Parsers::new()?;
    let mut python = String::new();
    for depth in 0..3_000 {
        python.push_str(&" ".repeat(depth));
        python.push_str("if x:\n");
    }
    python.push_str(&" ".repeat(3_000));
    python.push_str("def deep():\n");
    python.push_str(&" ".repeat(3_001));
    python.push_str("pass\n");
    python.push_str("def top():\n    pass\n");
    // What the grammar makes of 3,000 indentation levels is its business; below the depth
    // limit nothing is walked, and nothing overflows.
    let out = parsers
        .extract(Lang::Python, python.as_bytes())
        .unwrap_or_default();
    assert!(!out.symbols.iter().any(|s| s.name == "deep"));

    let mut js = "x = ".to_owned() + &"[".repeat(2_000);
    js.push_str(&"1,\n".repeat(10_500));
    js.push_str(&"]".repeat(2_000));
    js.push_str(";\nfunction after() {}\n");
    let out = parsers
        .extract(Lang::JavaScript, js.as_bytes())
        .unwrap_or_default();
    assert!(out.lines > CHUNK_THRESHOLD_LINES);
    assert!(!out.chunks.is_empty());
    assert_eq!(
        out.symbols
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["after"]
    );
    Ok(())
}

#[test]
fn references_skip_comments_literals_and_numbers() {
    let java = br#"
// Ledger in a comment
/* Journal in a block */
class Bank { Account a = new Account("Vault \" Safe", 'X'); int n = 0xFFL; String t = """
  Report
  """; @Audited void f() {} }
"#;
    assert_eq!(
        super::references(Lang::Java, java),
        ["Account", "Audited", "Bank", "String"]
    );
    let go = b"package m\n\nimport \"x.io/store\"\n\n// store.Comment\nvar s = `store.Raw`\n\
        func f() { v := store.New(); v.Put(1); a.b.Deep(); _ = \"store.Str\"; _ = 'x'; store.lower() }\n";
    assert_eq!(super::references(Lang::Go, go), ["store.New", "v.Put"]);
    assert!(super::references(Lang::Python, b"import Foo.Bar").is_empty());
}
