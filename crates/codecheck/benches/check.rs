//! `cargo bench -p cap-codecheck --bench check`: how long the suspicious-code checks take on
//! a 400-file change (100 files each of Python, JavaScript, Go and Java, about 100 lines
//! each, every other file modified in its second half and the rest created), beside only
//! parsing the same files with the same grammars in the same run: the ratio is what the
//! queries and the line diff add to the parse.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use cap_codecheck::{ChangedFile, Lang, check};

const FILES_PER_LANGUAGE: usize = 100;
const FUNCTIONS_PER_FILE: usize = 20;
const RUNS: usize = 15;

fn python(i: usize, f: usize) -> String {
    let extra = if f == 7 {
        "    subprocess.call(cmd, shell=True)\n"
    } else {
        ""
    };
    format!(
        "def handler_{i}_{f}(request, cmd):\n    value = request.get(\"k{f}\")\n    if value is None:\n        return {{\"id\": {i}, \"v\": []}}\n{extra}    return [x * 2 for x in value]\n\n"
    )
}

fn javascript(i: usize, f: usize) -> String {
    let extra = if f == 7 {
        "  const r = eval(input);\n"
    } else {
        ""
    };
    format!(
        "export function handler_{i}_{f}(req, input) {{\n  const value = req.query['k{f}'];\n  if (!value) {{ return {{ id: {i} }}; }}\n{extra}  return value.map((x) => x * 2);\n}}\n\n"
    )
}

fn go(i: usize, f: usize) -> String {
    let extra = if f == 7 {
        "\tcfg := &tls.Config{InsecureSkipVerify: true}\n\t_ = cfg\n"
    } else {
        ""
    };
    format!(
        "func Handler{i}x{f}(values []int) []int {{\n\tout := make([]int, 0, len(values))\n{extra}\tfor _, v := range values {{\n\t\tout = append(out, v*2)\n\t}}\n\treturn out\n}}\n\n"
    )
}

fn java(i: usize, f: usize) -> String {
    let extra = if f == 7 {
        "    Runtime.getRuntime().exec(cmd);\n"
    } else {
        ""
    };
    format!(
        "  public int[] handler{i}x{f}(int[] values, String cmd) throws Exception {{\n    int[] out = new int[values.length];\n{extra}    for (int k = 0; k < values.length; k++) {{ out[k] = values[k] * 2; }}\n    return out;\n  }}\n\n"
    )
}

struct File {
    path: String,
    before: Option<String>,
    after: String,
}

fn change() -> Vec<File> {
    let mut files = Vec::new();
    for i in 0..FILES_PER_LANGUAGE {
        for (ext, head, tail, body) in [
            (
                "py",
                "import subprocess\n\n",
                "",
                python as fn(usize, usize) -> String,
            ),
            ("js", "", "", javascript),
            ("go", "package main\n\nimport \"crypto/tls\"\n\n", "", go),
            ("java", "class Handlers {\n", "}\n", java),
        ] {
            let all: String = (0..FUNCTIONS_PER_FILE).map(|f| body(i, f)).collect();
            let after = format!("{head}{all}{tail}");
            // Every other file is modified: its first half existed before.
            let before = (i % 2 == 0).then(|| {
                let half: String = (0..FUNCTIONS_PER_FILE / 2)
                    .map(|f| body(i, f + 100))
                    .collect();
                format!("{head}{half}{tail}")
            });
            files.push(File {
                path: format!("src/m{i}.{ext}"),
                before,
                after,
            });
        }
    }
    files
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let files = change();
    let changed: Vec<ChangedFile<'_>> = files
        .iter()
        .map(|file| ChangedFile {
            path: &file.path,
            before: file.before.as_deref(),
            after: Some(&file.after),
        })
        .collect();
    let lines: usize = files.iter().map(|file| file.after.lines().count()).sum();
    let bytes: usize = files.iter().map(|file| file.after.len()).sum();
    // Compiles the queries (once per process) outside the timing.
    let report = check(&changed);

    let mut checked = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let report = check(&changed);
        checked.push(start.elapsed());
        assert!(!report.findings.is_empty());
    }
    let grammars: Vec<(Lang, tree_sitter::Language)> = Lang::ALL
        .iter()
        .map(|lang| (*lang, grammar(*lang)))
        .collect();
    let mut parsed = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut parser = tree_sitter::Parser::new();
        let mut nodes = 0;
        for file in &files {
            let lang = Lang::from_path(&file.path).unwrap();
            let grammar = &grammars.iter().find(|(l, _)| *l == lang).unwrap().1;
            parser.set_language(grammar).unwrap();
            nodes += parser
                .parse(&file.after, None)
                .unwrap()
                .root_node()
                .child_count();
        }
        parsed.push(start.elapsed());
        assert!(nodes > 0);
    }
    let (checked, parsed) = (median(checked), median(parsed));
    println!(
        "change: {} files, {lines} lines, {:.1} MiB; {} findings",
        files.len(),
        bytes as f64 / (1024.0 * 1024.0),
        report.findings.len()
    );
    println!(
        "check (diff, parse, queries): {:.2} ms (median of {RUNS})",
        checked.as_secs_f64() * 1e3
    );
    println!(
        "parse only, same files:       {:.2} ms (median of {RUNS})",
        parsed.as_secs_f64() * 1e3
    );
    println!(
        "ratio check / parse only:     {:.2}",
        checked.as_secs_f64() / parsed.as_secs_f64()
    );
}

fn grammar(lang: Lang) -> tree_sitter::Language {
    match lang {
        Lang::Python => tree_sitter::Language::new(tree_sitter_python::LANGUAGE),
        Lang::JavaScript => tree_sitter::Language::new(tree_sitter_javascript::LANGUAGE),
        Lang::TypeScript => tree_sitter::Language::new(tree_sitter_typescript::LANGUAGE_TYPESCRIPT),
        Lang::Tsx => tree_sitter::Language::new(tree_sitter_typescript::LANGUAGE_TSX),
        Lang::Go => tree_sitter::Language::new(tree_sitter_go::LANGUAGE),
        Lang::Java => tree_sitter::Language::new(tree_sitter_java::LANGUAGE),
    }
}
