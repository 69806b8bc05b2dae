//! The corpus: for each language, snippets every rule must flag and look-alikes none may.
//! Each case is a file created (or changed from `before`) by the change; it reports how many
//! of each it ran and fails on any miss or any false positive.

use cap_codecheck::{ChangedFile, Report, check};

/// A change to one file and the rule it must raise (`None`: nothing).
struct Case {
    path: &'static str,
    before: Option<String>,
    after: String,
    expect: Option<&'static str>,
}

fn new(path: &'static str, after: impl Into<String>, expect: Option<&'static str>) -> Case {
    Case {
        path,
        before: None,
        after: after.into(),
        expect,
    }
}

fn changed(
    path: &'static str,
    before: impl Into<String>,
    after: impl Into<String>,
    expect: Option<&'static str>,
) -> Case {
    Case {
        path,
        before: Some(before.into()),
        after: after.into(),
        expect,
    }
}

/// A base64 blob built at test time (not a secret: random-looking letters).
fn blob(chars: usize) -> String {
    (0..chars)
        .map(|i| char::from(b"QmFzZTY0IGJsb2IgdGVzdA+/0123456789xyz"[(i * 11 + 5) % 37]))
        .collect()
}

fn python() -> Vec<Case> {
    let p = "app/job.py";
    vec![
        new(p, "x = eval(input())\n", Some("python.eval")),
        new(p, "exec(code)\n", Some("python.eval")),
        new(
            p,
            "import base64\nexec(base64.b64decode(payload))\n",
            Some("python.decode_exec"),
        ),
        new(
            p,
            "eval(codecs.decode(s, 'rot13'))\n",
            Some("python.decode_exec"),
        ),
        new(p, "mod = __import__(name)\n", Some("python.dynamic_import")),
        new(
            p,
            "import importlib\nm = importlib.import_module(plugin)\n",
            Some("python.dynamic_import"),
        ),
        new(
            p,
            "import os\nos.system('rm -rf ' + path)\n",
            Some("python.shell"),
        ),
        new(
            p,
            "import os\nos.system(f\"convert {src} out.png\")\n",
            Some("python.shell"),
        ),
        new(
            p,
            "import subprocess\nsubprocess.call(cmd, shell=True)\n",
            Some("python.shell"),
        ),
        new(
            p,
            "subprocess.run(f\"ls {d}\", shell=True, check=True)\n",
            Some("python.shell"),
        ),
        new(
            p,
            "subprocess.run([\"sh\", \"-c\", script])\n",
            Some("python.shell"),
        ),
        new(
            p,
            "subprocess.check_output(\"git log \" + branch)\n",
            Some("python.subprocess_built"),
        ),
        new(
            p,
            "subprocess.Popen(\"tar xf {}\".format(name))\n",
            Some("python.subprocess_built"),
        ),
        new(
            p,
            "import requests\nr = requests.get(url)\n",
            Some("python.network"),
        ),
        new(
            p,
            "from urllib.request import urlopen\nurlopen(u)\n",
            Some("python.network"),
        ),
        new(
            p,
            "c = http.client.HTTPSConnection(host)\n",
            Some("python.network"),
        ),
        new(
            p,
            "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n",
            Some("python.network"),
        ),
        changed(
            p,
            "def f():\n    return 1\n",
            "def f():\n    return requests.post(u, json=d)\n",
            Some("python.network"),
        ),
        new(
            p,
            format!("DATA = \"{}\"\n", blob(240)),
            Some("python.encoded_blob"),
        ),
        new(
            p,
            format!("DATA = \"{}\"\n", "lorem ipsum ".repeat(100)),
            Some("python.long_literal"),
        ),
        new(
            p,
            "session.get(url, verify=False)\n",
            Some("python.tls_disabled"),
        ),
        new(
            p,
            "ctx = ssl._create_unverified_context()\n",
            Some("python.tls_disabled"),
        ),
        new(
            p,
            "ctx.verify_mode = ssl.CERT_NONE\n",
            Some("python.tls_disabled"),
        ),
        new(
            p,
            "ctx.check_hostname = False\n",
            Some("python.tls_disabled"),
        ),
        // Negatives.
        new(p, "# eval(input()) would be unsafe here\nx = 1\n", None),
        new(
            p,
            "msg = \"never call eval(input()) or os.system(cmd)\"\n",
            None,
        ),
        new(p, "import ast\nv = ast.literal_eval(text)\n", None),
        new(p, "df.eval('a + b')\n", None),
        new(p, "os.system('ls -l')\n", None),
        new(p, "subprocess.run([\"ls\"])\n", None),
        new(
            p,
            "subprocess.run([\"git\", \"log\", branch], check=True)\n",
            None,
        ),
        new(p, "subprocess.run(\"make test\", shell=True)\n", None),
        new(p, "subprocess.run(args)\n", None),
        new(p, "importlib.import_module(\"json\")\n", None),
        new(p, "session.get(url, verify=True)\n", None),
        new(p, "TOKEN_B64 = \"SGVsbG8gd29ybGQ=\"\n", None),
        new(
            p,
            "DIGEST = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
            None,
        ),
        changed(
            p,
            "import requests\n\ndef a():\n    return requests.get(A)\n",
            "import requests\n\ndef a():\n    return requests.get(A)\n\ndef b():\n    return requests.get(B)\n",
            None,
        ),
        changed(p, "x = eval(s)\n", "x = eval(s)\ny = 2\n", None),
        new(p, "def broken(:\n    pass\n", None),
    ]
}

fn javascript() -> Vec<Case> {
    let j = "src/job.js";
    let t = "src/job.ts";
    vec![
        new(j, "const v = eval(req.body.code);\n", Some("js.eval")),
        new(j, "const f = new Function('a', body);\n", Some("js.eval")),
        new(t, "setTimeout(\"doIt()\", 10);\n", Some("js.eval")),
        new(j, "eval(atob(payload));\n", Some("js.decode_exec")),
        new(
            j,
            "eval(Buffer.from(s, 'base64').toString());\n",
            Some("js.decode_exec"),
        ),
        new(j, "const m = require(name);\n", Some("js.dynamic_import")),
        new(
            t,
            "const m = await import(modulePath);\n",
            Some("js.dynamic_import"),
        ),
        new(
            j,
            "const cp = require('child_process');\ncp.exec('ls ' + dir);\n",
            Some("js.shell"),
        ),
        new(
            t,
            "import { execSync } from 'child_process';\nexecSync(`git checkout ${branch}`);\n",
            Some("js.shell"),
        ),
        new(j, "spawn(cmd, [], { shell: true });\n", Some("js.shell")),
        new(j, "spawn('sh', ['-c', script]);\n", Some("js.shell")),
        new(j, "const r = await fetch(url);\n", Some("js.network")),
        new(
            t,
            "const r = await axios.post(url, data);\n",
            Some("js.network"),
        ),
        new(j, "https.request(opts, cb);\n", Some("js.network")),
        new(
            j,
            "const s = net.connect(port, host);\n",
            Some("js.network"),
        ),
        new(
            j,
            format!("const data = '{}';\n", blob(300)),
            Some("js.encoded_blob"),
        ),
        new(
            t,
            format!("const css = `{}`;\n", "a b ".repeat(300)),
            Some("js.long_literal"),
        ),
        new(
            j,
            "const agent = new https.Agent({ rejectUnauthorized: false });\n",
            Some("js.tls_disabled"),
        ),
        new(
            t,
            "process.env.NODE_TLS_REJECT_UNAUTHORIZED = \"0\";\n",
            Some("js.tls_disabled"),
        ),
        new(
            j,
            "process.env['NODE_TLS_REJECT_UNAUTHORIZED'] = '0';\n",
            Some("js.tls_disabled"),
        ),
        new(
            "src/App.tsx",
            "export const App = () => <div onClick={() => eval(code)} />;\n",
            Some("js.eval"),
        ),
        // Negatives.
        new(j, "// eval(x) is banned\nconst a = 1;\n", None),
        new(j, "const s = 'eval(x) and exec(y)';\n", None),
        new(j, "const m = /a+/.exec(text);\n", None),
        new(j, "const fs = require('fs');\n", None),
        new(t, "const m = await import('./util');\n", None),
        new(j, "cp.exec('ls -l');\n", None),
        new(j, "spawn('ls', ['-l', dir]);\n", None),
        new(
            j,
            "const agent = new https.Agent({ rejectUnauthorized: true });\n",
            None,
        ),
        new(j, "const id = 'dGVzdA==';\n", None),
        changed(
            j,
            "async function a() { return fetch(A); }\n",
            "async function a() { return fetch(A); }\nasync function b() { return fetch(B); }\n",
            None,
        ),
    ]
}

fn go() -> Vec<Case> {
    let g = "cmd/job.go";
    let wrap = |body: &str| format!("package main\n\nfunc f() {{\n{body}\n}}\n");
    vec![
        new(
            g,
            wrap("\texec.Command(\"sh\", \"-c\", input).Run()"),
            Some("go.shell"),
        ),
        new(
            g,
            wrap("\texec.Command(prog, \"-v\").Run()"),
            Some("go.shell"),
        ),
        new(
            g,
            wrap("\texec.CommandContext(ctx, \"bash\", \"-c\", script).Run()"),
            Some("go.shell"),
        ),
        new(
            g,
            wrap("\tp, _ := plugin.Open(path)"),
            Some("go.dynamic_import"),
        ),
        new(g, wrap("\tresp, _ := http.Get(url)"), Some("go.network")),
        new(
            g,
            wrap("\tconn, _ := net.Dial(\"tcp\", addr)"),
            Some("go.network"),
        ),
        new(
            g,
            wrap("\tresp, _ := http.DefaultClient.Do(req)"),
            Some("go.network"),
        ),
        new(
            g,
            wrap(&format!("\tdata := \"{}\"", blob(256))),
            Some("go.encoded_blob"),
        ),
        new(
            g,
            wrap("\tcfg := &tls.Config{InsecureSkipVerify: true}"),
            Some("go.tls_disabled"),
        ),
        new(
            g,
            wrap("\tcfg.InsecureSkipVerify = true"),
            Some("go.tls_disabled"),
        ),
        // Negatives.
        new(
            g,
            wrap("\texec.Command(\"go\", \"test\", \"./...\").Run()"),
            None,
        ),
        new(
            g,
            wrap("\texec.Command(\"git\", \"log\", branch).Run()"),
            None,
        ),
        new(
            g,
            wrap("\t// http.Get(url) is not allowed here\n\tx := 1"),
            None,
        ),
        new(
            g,
            wrap("\tcfg := &tls.Config{InsecureSkipVerify: false}"),
            None,
        ),
        new(g, wrap("\ts := \"InsecureSkipVerify: true\""), None),
    ]
}

fn java() -> Vec<Case> {
    let p = "src/main/java/Job.java";
    let wrap =
        |body: &str| format!("class Job {{\n  void f() throws Exception {{\n{body}\n  }}\n}}\n");
    vec![
        new(p, wrap("    engine.eval(script);"), Some("java.eval")),
        new(
            p,
            wrap("    Class<?> c = Class.forName(name);"),
            Some("java.reflection"),
        ),
        new(
            p,
            wrap("    Runtime.getRuntime().exec(cmd);"),
            Some("java.shell"),
        ),
        new(
            p,
            wrap("    Runtime.getRuntime().exec(\"ls \" + dir);"),
            Some("java.shell"),
        ),
        new(
            p,
            wrap("    new ProcessBuilder(\"sh\", \"-c\", cmd).start();"),
            Some("java.shell"),
        ),
        new(
            p,
            wrap("    URL u = new URL(address);"),
            Some("java.network"),
        ),
        new(
            p,
            wrap("    HttpClient c = HttpClient.newHttpClient();"),
            Some("java.network"),
        ),
        new(
            p,
            wrap("    Socket s = new Socket(host, 80);"),
            Some("java.network"),
        ),
        new(
            p,
            wrap(&format!("    String k = \"{}\";", blob(220))),
            Some("java.encoded_blob"),
        ),
        new(
            p,
            "class T implements X509TrustManager {\n  public void checkServerTrusted(X509Certificate[] c, String a) {\n  }\n}\n",
            Some("java.tls_disabled"),
        ),
        new(
            p,
            "class H implements HostnameVerifier {\n  public boolean verify(String h, SSLSession s) {\n    return true;\n  }\n}\n",
            Some("java.tls_disabled"),
        ),
        new(
            p,
            wrap("    conn.setHostnameVerifier((h, s) -> true);"),
            Some("java.tls_disabled"),
        ),
        // Negatives.
        new(
            p,
            wrap("    Class<?> c = Class.forName(\"org.h2.Driver\");"),
            None,
        ),
        new(p, wrap("    int v = expression.eval();"), None),
        new(p, wrap("    Runtime.getRuntime().exec(\"ls\");"), None),
        new(
            p,
            wrap("    new ProcessBuilder(\"git\", \"status\").start();"),
            None,
        ),
        new(
            p,
            wrap("    new ProcessBuilder(List.of(\"mvn\", \"test\")).start();"),
            None,
        ),
        new(
            p,
            wrap("    // engine.eval(script) was removed\n    int x = 1;"),
            None,
        ),
        new(
            p,
            "class T implements X509TrustManager {\n  public void checkServerTrusted(X509Certificate[] c, String a) throws CertificateException {\n    delegate.checkServerTrusted(c, a);\n  }\n}\n",
            None,
        ),
        new(
            p,
            "class H implements HostnameVerifier {\n  public boolean verify(String h, SSLSession s) {\n    return h.equals(expected);\n  }\n}\n",
            None,
        ),
    ]
}

fn run(cases: &[Case]) -> Report {
    let files: Vec<ChangedFile<'_>> = cases
        .iter()
        .map(|case| ChangedFile {
            path: case.path,
            before: case.before.as_deref(),
            after: Some(&case.after),
        })
        .collect();
    check(&files)
}

#[test]
fn corpus_flags_every_positive_and_no_look_alike() {
    let languages = [
        ("python", python()),
        ("javascript/typescript", javascript()),
        ("go", go()),
        ("java", java()),
    ];
    let mut failures = Vec::new();
    for (language, cases) in &languages {
        let (mut positives, mut negatives, mut found, mut false_positives) = (0, 0, 0, 0);
        for case in cases {
            let report = run(std::slice::from_ref(case));
            assert!(report.skipped.is_empty(), "{:?}", report.skipped);
            let rules: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
            match case.expect {
                Some(rule) => {
                    positives += 1;
                    if rules == [rule] {
                        found += 1;
                    } else {
                        failures.push(format!(
                            "{language}: expected [{rule}], got {rules:?} in:\n{}",
                            case.after
                        ));
                    }
                }
                None => {
                    negatives += 1;
                    if rules.is_empty() {
                        continue;
                    }
                    false_positives += 1;
                    failures.push(format!(
                        "{language}: false positive {rules:?} in:\n{}",
                        case.after
                    ));
                }
            }
        }
        println!(
            "{language}: {found}/{positives} positives flagged, {false_positives}/{negatives} look-alikes flagged"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn every_rule_has_a_positive_case_but_long_literals_of_go_and_java() {
    let mut covered: Vec<&str> = [python(), javascript(), go(), java()]
        .iter()
        .flatten()
        .filter_map(|case| case.expect)
        .collect();
    covered.sort_unstable();
    covered.dedup();
    let missing: Vec<&str> = cap_codecheck::rules::RULES
        .iter()
        .map(|rule| rule.id)
        .filter(|id| !covered.contains(id))
        .collect();
    assert_eq!(missing, ["go.long_literal", "java.long_literal"]);
}

#[test]
fn findings_name_the_line_in_the_after_version_and_only_added_code() {
    let before = "import os\n\ndef run(cmd):\n    os.system(cmd)\n";
    let after =
        "import os\n\ndef run(cmd):\n    os.system(cmd)\n\ndef go(x):\n    return eval(x)\n";
    let report = check(&[ChangedFile {
        path: "a/b.py",
        before: Some(before),
        after: Some(after),
    }]);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(
        (finding.rule.as_str(), finding.line, finding.text.as_str()),
        ("python.eval", 7, "return eval(x)")
    );
    assert_eq!(finding.severity, cap_codecheck::Severity::High);
    assert!(
        finding
            .to_string()
            .starts_with("a/b.py:7 [python.eval, high] evaluates code"),
        "{finding}"
    );
}

#[test]
fn deleted_files_and_other_languages_are_skipped_quietly() {
    let report = check(&[
        ChangedFile {
            path: "gone.py",
            before: Some("eval(x)\n"),
            after: None,
        },
        ChangedFile {
            path: "notes.md",
            before: None,
            after: Some("eval(input())\n"),
        },
        ChangedFile {
            path: "run.sh",
            before: None,
            after: Some("eval \"$x\"\n"),
        },
    ]);
    assert_eq!(report, Report::default());
}

#[test]
fn a_file_too_large_is_skipped_with_why() {
    let big = "x = 1\n".repeat(cap_codecheck::MAX_FILE_BYTES / 6 + 1);
    let report = check(&[ChangedFile {
        path: "big.py",
        before: None,
        after: Some(&big),
    }]);
    assert!(report.findings.is_empty());
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].reason.contains("byte limit"),
        "{:?}",
        report.skipped
    );
}

#[test]
fn broken_syntax_is_checked_on_what_parses() {
    let after = "def f(:\n    pass\n\nx = eval(input())\n";
    let report = check(&[ChangedFile {
        path: "bad.py",
        before: None,
        after: Some(after),
    }]);
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["python.eval"]);
}

#[test]
fn findings_survive_json() {
    let report = check(&[ChangedFile {
        path: "a.js",
        before: None,
        after: Some("eval(x);\n"),
    }]);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"severity\":\"high\""), "{json}");
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}
