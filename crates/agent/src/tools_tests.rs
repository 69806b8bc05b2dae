use std::time::Duration;

use cap_llm::ModelConfig;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;
use crate::memory::MemoryWorkspace;

fn config() -> AgentConfig {
    AgentConfig::new(
        ModelConfig {
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: None,
            model: "m".into(),
            timeout: Duration::from_secs(1),
            ..ModelConfig::default()
        },
        5,
    )
}

async fn call(
    ws: &MemoryWorkspace,
    overlay: &mut Overlay,
    tool: &str,
    args: serde_json::Value,
) -> ToolOutput {
    let config = config();
    let mut toolbox = Toolbox {
        ws,
        overlay,
        config: &config,
        test_command: None,
    };
    toolbox.call(tool, &args.to_string()).await.unwrap()
}

#[test]
fn every_tool_has_a_schema() {
    let specs = tool_specs();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, TOOL_NAMES.to_vec());
    for spec in &specs {
        assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
        for required in spec.parameters["required"].as_array().unwrap() {
            let required = required.as_str().unwrap();
            assert!(
                spec.parameters["properties"].get(required).is_some(),
                "{}: {required}",
                spec.name
            );
        }
        assert!(
            crate::SYSTEM_PROMPT.contains(&spec.name),
            "system prompt should mention {}",
            spec.name
        );
    }
    assert_eq!(spec("parse_ast"), None);
}

#[tokio::test]
async fn read_file_numbers_lines_and_checks_ranges() {
    let ws = MemoryWorkspace::with_files([("f.txt", "a\r\nb\nc\n"), ("empty.txt", "")]);
    ws.insert_bytes("bin", &[0xc3, 0x28]);
    let mut overlay = Overlay::default();
    let out = call(
        &ws,
        &mut overlay,
        "read_file",
        json!({"path": "f.txt", "line_start": 2}),
    )
    .await;
    assert_eq!(out.content, "     2\tb\n     3\tc\n");
    let out = call(
        &ws,
        &mut overlay,
        "read_file",
        json!({"path": "f.txt", "line_end": 99}),
    )
    .await;
    assert_eq!(out.content, "     1\ta\n     2\tb\n     3\tc\n");
    let cases = [
        (
            json!({"path": "f.txt", "line_start": 0}),
            "Error: line_start is 1-based; 0 is not a line",
        ),
        (
            json!({"path": "f.txt", "line_start": 4}),
            "Error: line_start 4 is past the end of f.txt, which has 3 lines",
        ),
        (
            json!({"path": "f.txt", "line_start": 3, "line_end": 2}),
            "Error: line_end 2 is before line_start 3",
        ),
        (
            json!({"path": "f.txt", "line_start": -1}),
            "Error: invalid arguments for read_file at `line_start`: invalid value: integer `-1`, expected u64",
        ),
        (
            json!({"path": "missing.txt"}),
            "Error: missing.txt does not exist",
        ),
        (
            json!({"path": "bin"}),
            "Error: bin is a binary file (2 bytes); only text files can be read or edited",
        ),
        (
            json!({"path": "."}),
            "Error: invalid path \".\": a file path is required, not the workspace root",
        ),
    ];
    for (args, expected) in cases {
        let out = call(&ws, &mut overlay, "read_file", args.clone()).await;
        assert!(out.is_error, "{args}");
        assert_eq!(out.content, expected, "{args}");
    }
    let out = call(&ws, &mut overlay, "read_file", json!({"path": "empty.txt"})).await;
    assert_eq!(out.content, "empty.txt is empty");
}

#[tokio::test]
async fn read_file_limits_what_it_returns() {
    let long: String = (1..=3000).map(|n| format!("line {n}\n")).collect();
    let wide = format!("{}\n", "x".repeat(100 * 1024));
    let ws =
        MemoryWorkspace::with_files([("long.txt", long.as_str()), ("wide.txt", wide.as_str())]);
    let mut overlay = Overlay::default();
    let out = call(&ws, &mut overlay, "read_file", json!({"path": "long.txt"})).await;
    assert!(out.content.ends_with(
        "  2000\tline 2000\n... long.txt has 3000 lines; showing 1-2000. Use line_start/line_end for more.\n"
    ));
    let out = call(&ws, &mut overlay, "read_file", json!({"path": "wide.txt"})).await;
    assert_eq!(
        out.content.len(),
        "     1\t".len() + 2000 + " [line cut]\n".len()
    );
    let many: String = (1..=2000).map(|n| format!("{n:0>100}\n")).collect();
    let ws = MemoryWorkspace::with_files([("many.txt", many.as_str())]);
    let out = call(
        &ws,
        &mut overlay,
        "read_file",
        json!({"path": "many.txt", "line_end": 2000}),
    )
    .await;
    assert!(out.content.len() < 70_000, "{}", out.content.len());
    assert!(
        out.content.contains("many.txt has 2000 lines; showing 1-"),
        "{}",
        &out.content[out.content.len() - 200..]
    );
}

#[tokio::test]
async fn a_directory_is_not_a_file() {
    let ws = MemoryWorkspace::with_files([("src/a.py", "")]);
    let mut overlay = Overlay::default();
    let out = call(&ws, &mut overlay, "read_file", json!({"path": "src"})).await;
    assert_eq!(out.content, "Error: \"src\" is not a regular file");
    let out = call(
        &ws,
        &mut overlay,
        "create_file",
        json!({"path": "src", "content": ""}),
    )
    .await;
    assert_eq!(
        out.content,
        "Error: cannot create src: \"src\" is not a regular file"
    );
    let out = call(
        &ws,
        &mut overlay,
        "list_directory",
        json!({"path": "src/a.py"}),
    )
    .await;
    assert_eq!(out.content, "Error: \"src/a.py\" is not a directory");
}

#[tokio::test]
async fn create_and_delete() {
    let ws = MemoryWorkspace::with_files([("keep.txt", "k\n")]);
    let mut overlay = Overlay::default();
    let out = call(
        &ws,
        &mut overlay,
        "create_file",
        json!({"path": "keep.txt", "content": "x"}),
    )
    .await;
    assert_eq!(
        out.content,
        "Error: keep.txt already exists; use edit_file or apply_diff to change it"
    );
    let out = call(
        &ws,
        &mut overlay,
        "create_file",
        json!({"path": "new/a.txt", "content": "1\n2\n"}),
    )
    .await;
    assert_eq!(out.content, "created new/a.txt (2 lines)");
    assert_eq!(
        out.detail,
        Some(observation::Detail::FileModified(FileModified {
            path: "new/a.txt".into(),
            change: "created".into(),
            additions: 2,
            deletions: 0
        }))
    );
    let out = call(
        &ws,
        &mut overlay,
        "create_file",
        json!({"path": "new/a.txt", "content": "again"}),
    )
    .await;
    assert!(out.is_error);
    let out = call(
        &ws,
        &mut overlay,
        "delete_file",
        json!({"path": "keep.txt"}),
    )
    .await;
    assert_eq!(out.content, "deleted keep.txt");
    let out = call(
        &ws,
        &mut overlay,
        "delete_file",
        json!({"path": "keep.txt"}),
    )
    .await;
    assert_eq!(out.content, "Error: keep.txt does not exist");
    let out = call(
        &ws,
        &mut overlay,
        "edit_file",
        json!({"path": "keep.txt", "old_string": "k", "new_string": "j"}),
    )
    .await;
    assert_eq!(
        out.content,
        "Error: keep.txt does not exist (use create_file to create it)"
    );
    // Nothing reached the workspace yet.
    assert_eq!(ws.paths(), vec!["keep.txt"]);
}

#[tokio::test]
async fn edit_file_refuses_degenerate_edits() {
    let ws = MemoryWorkspace::with_files([("f.txt", "abc\n")]);
    let mut overlay = Overlay::default();
    let out = call(
        &ws,
        &mut overlay,
        "edit_file",
        json!({"path": "f.txt", "old_string": "", "new_string": "x"}),
    )
    .await;
    assert!(
        out.content.starts_with("Error: old_string is empty"),
        "{}",
        out.content
    );
    let out = call(
        &ws,
        &mut overlay,
        "edit_file",
        json!({"path": "f.txt", "old_string": "abc", "new_string": "abc"}),
    )
    .await;
    assert_eq!(out.content, "Error: old_string and new_string are the same");
}

#[tokio::test]
async fn search_files_validates_its_inputs() {
    let ws = MemoryWorkspace::with_files([("a.py", "import os\n"), ("b.rs", "use std;\n")]);
    let mut overlay = Overlay::default();
    let out = call(
        &ws,
        &mut overlay,
        "search_files",
        json!({"pattern": "(unclosed"}),
    )
    .await;
    assert!(
        out.content
            .starts_with("Error: pattern \"(unclosed\" is not a valid regular expression"),
        "{}",
        out.content
    );
    let out = call(
        &ws,
        &mut overlay,
        "search_files",
        json!({"pattern": "x", "glob": "a["}),
    )
    .await;
    assert!(
        out.content.starts_with("Error: glob \"a[\" is not valid"),
        "{}",
        out.content
    );
    let out = call(&ws, &mut overlay, "search_files", json!({"pattern": ""})).await;
    assert_eq!(out.content, "Error: pattern is empty");
    for glob in ["../**", "/etc/*", "**/.git/**"] {
        let out = call(
            &ws,
            &mut overlay,
            "search_files",
            json!({"pattern": "x", "glob": glob}),
        )
        .await;
        assert!(out.refused, "{glob}: {}", out.content);
        assert!(
            out.content
                .starts_with(&format!("Error: invalid path {glob:?}: ")),
            "{}",
            out.content
        );
    }
    let out = call(
        &ws,
        &mut overlay,
        "search_files",
        json!({"pattern": "import|use", "glob": "*.py"}),
    )
    .await;
    assert_eq!(out.content, "a.py:1: import os\n");
    let out = call(
        &ws,
        &mut overlay,
        "search_files",
        json!({"pattern": "nothing"}),
    )
    .await;
    assert_eq!(out.content, "no matches for \"nothing\"");
}

#[tokio::test]
async fn fatal_sandbox_errors_are_not_observations() {
    let ws = MemoryWorkspace::with_files([("f.txt", "x")]);
    ws.go_down(0, tonic::Status::unavailable("gone"));
    let mut overlay = Overlay::default();
    let config = config();
    let mut toolbox = Toolbox {
        ws: &ws,
        overlay: &mut overlay,
        config: &config,
        test_command: None,
    };
    let err = toolbox
        .call("read_file", "{\"path\": \"f.txt\"}")
        .await
        .unwrap_err();
    assert!(err.is_fatal());
    // The model's own mistakes are still just observations.
    let out = toolbox.call("read_file", "{}").await.unwrap();
    assert_eq!(
        out.content,
        "Error: invalid arguments for read_file: missing field `path`"
    );
}

#[tokio::test]
async fn run_command_reports_timeouts_and_refused_flushes() {
    let ws = MemoryWorkspace::with_files([("f.txt", "x")]);
    let mut overlay = Overlay::default();
    let out = call(&ws, &mut overlay, "run_command", json!({"cmd": "false"})).await;
    assert!(!out.is_error);
    assert!(out.content.starts_with("exit code: 1\n"), "{}", out.content);
    let out = call(&ws, &mut overlay, "run_command", json!({"cmd": "  "})).await;
    assert_eq!(out.content, "Error: cmd is empty");
    let out = call(
        &ws,
        &mut overlay,
        "run_command",
        json!({"cmd": "true", "timeout": 0}),
    )
    .await;
    assert_eq!(
        out.content,
        "Error: timeout 0 is out of range; give 1 to 600 seconds"
    );
    overlay.stage("f.txt", Some("y".into()), true);
    ws.go_down(0, tonic::Status::invalid_argument("path refused"));
    let out = call(&ws, &mut overlay, "run_command", json!({"cmd": "true"})).await;
    assert_eq!(
        out.content,
        "Error: the staged edits could not be written, nothing ran: path refused"
    );
}

#[test]
fn tails_cut_on_character_boundaries() {
    assert_eq!(tail_chars("héllo", 3), "llo");
    assert_eq!(tail_chars("héllo", 4), "éllo");
    assert_eq!(tail_chars("hi", 5), "hi");
    assert_eq!(line_counts("a\nb\n", "a\nc\nd\n"), (2, 1));
}

/// FR-005: an edit of a file the repository's formatter handles is written and formatted at
/// once; the model is told, and reads the formatted text next. Other files stay staged.
#[tokio::test]
async fn edits_are_formatted_after_each_modification() {
    let ws = MemoryWorkspace::with_files([("calc.py", "x = 1\n"), ("README.md", "# calc\n")]);
    ws.set_formatter(LintTool::Black);
    let mut overlay = Overlay::default();
    let out = call(
        &ws,
        &mut overlay,
        "edit_file",
        json!({"path": "calc.py", "old_string": "x = 1\n", "new_string": "x = 1   \ny = 2\n"}),
    )
    .await;
    assert_eq!(
        out.content,
        "edited calc.py (+2 -1 lines)\ncalc.py was reformatted by black (+1 -1 lines); read it \
         again before editing it"
    );
    assert!(!out.is_error);
    assert_eq!(ws.file("calc.py").as_deref(), Some("x = 1\ny = 2\n"));
    let out = call(&ws, &mut overlay, "read_file", json!({"path": "calc.py"})).await;
    assert_eq!(out.content, "     1\tx = 1\n     2\ty = 2\n");

    // Already formatted: written and formatted, nothing to report.
    let out = call(
        &ws,
        &mut overlay,
        "create_file",
        json!({"path": "util.py", "content": "z = 3\n"}),
    )
    .await;
    assert_eq!(out.content, "created util.py (1 lines)");
    assert_eq!(ws.file("util.py").as_deref(), Some("z = 3\n"));

    // A file no formatter handles stays staged.
    let out = call(
        &ws,
        &mut overlay,
        "edit_file",
        json!({"path": "README.md", "old_string": "# calc", "new_string": "# calc   "}),
    )
    .await;
    assert_eq!(out.content, "edited README.md (+1 -1 lines)");
    assert_eq!(ws.file("README.md").as_deref(), Some("# calc\n"));

    // What the formatter cannot format goes back to the model; the edit stands.
    let out = call(
        &ws,
        &mut overlay,
        "create_file",
        json!({"path": "bad.py", "content": "def f(:  syntax error\n"}),
    )
    .await;
    assert!(!out.is_error);
    assert_eq!(
        out.content,
        "created bad.py (1 lines)\nblack could not format bad.py: cannot format bad.py: \
         cannot parse"
    );
    assert_eq!(
        ws.file("bad.py").as_deref(),
        Some("def f(:  syntax error\n")
    );
    // The write is one atomic flush of everything staged, the README's edit included.
    assert_eq!(ws.file("README.md").as_deref(), Some("# calc   \n"));
}

#[tokio::test]
async fn without_formatters_edits_stay_staged() {
    let ws = MemoryWorkspace::with_files([("calc.py", "x = 1\n")]);
    let mut overlay = Overlay::default();
    let out = call(
        &ws,
        &mut overlay,
        "edit_file",
        json!({"path": "calc.py", "old_string": "x = 1", "new_string": "x = 2   "}),
    )
    .await;
    assert_eq!(out.content, "edited calc.py (+1 -1 lines)");
    assert_eq!(ws.file("calc.py").as_deref(), Some("x = 1\n"));
    assert!(overlay.is_dirty());
}

/// A sandbox that fails while the formatter runs ends the task like any other tool.
#[tokio::test]
async fn a_sandbox_lost_while_formatting_is_fatal() {
    let ws = MemoryWorkspace::with_files([("calc.py", "x = 1\n")]);
    ws.set_formatter(LintTool::Black);
    let mut overlay = Overlay::default();
    let config = config();
    let mut toolbox = Toolbox {
        ws: &ws,
        overlay: &mut overlay,
        config: &config,
        test_command: None,
    };
    // The edit reads calc.py, the formatters are listed, the edit is written: then it is gone.
    ws.go_down(3, tonic::Status::unavailable("sandbox restarted"));
    let arguments = json!({"path": "calc.py", "old_string": "x = 1", "new_string": "x = 2"});
    let error = toolbox
        .call("edit_file", &arguments.to_string())
        .await
        .unwrap_err();
    assert!(error.is_fatal(), "{error:?}");
}
