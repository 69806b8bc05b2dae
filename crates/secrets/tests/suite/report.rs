//! The SARIF 2.1.0 and JSON shapes.

use cap_secrets::{Scanner, rules::rules};
use serde_json::Value;

use super::support::{Gen, p};

fn report_with_two_findings() -> (cap_secrets::Report, Vec<String>) {
    let mut g = Gen::new(7);
    let token = p(&["gh", "p_"]) + &g.alnum(36);
    let key_id = g.aws_key_id();
    let text = format!("a = 1\nGITHUB_TOKEN = \"{token}\"\n  id: {key_id}\n");
    let scanner = Scanner::new().unwrap();
    let report = cap_secrets::Report {
        findings: scanner.scan_text("dir with space/config.py", &text),
        files_scanned: 1,
        bytes_scanned: text.len() as u64,
        skipped: Vec::new(),
    };
    (report, vec![token, key_id])
}

#[test]
fn sarif_has_the_2_1_0_shape() {
    let (report, secrets) = report_with_two_findings();
    let sarif = report.to_sarif();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(
        sarif["$schema"]
            .as_str()
            .unwrap()
            .ends_with("sarif-schema-2.1.0.json")
    );
    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "cap-secrets");
    let driver_rules = driver["rules"].as_array().unwrap();
    assert_eq!(driver_rules.len(), rules().len());
    for rule in driver_rules {
        assert!(rule["id"].is_string());
        assert!(rule["shortDescription"]["text"].is_string());
    }
    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let expected = [("github-pat", 2, 17), ("aws-access-key-id", 3, 7)];
    for (result, (rule_id, line, column)) in results.iter().zip(expected) {
        assert_eq!(result["ruleId"], rule_id);
        assert_eq!(result["level"], "error");
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(driver_rules[index]["id"], rule_id);
        assert!(result["message"]["text"].as_str().unwrap().contains('…'));
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(
            location["artifactLocation"]["uri"],
            "dir%20with%20space/config.py"
        );
        assert_eq!(location["region"]["startLine"], line);
        assert_eq!(location["region"]["startColumn"], column);
        let fingerprint = result["partialFingerprints"]["secretFingerprint/v1"]
            .as_str()
            .unwrap();
        assert_eq!(fingerprint.len(), 16);
    }
    let text = sarif.to_string();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()));
    }
}

#[test]
fn json_lists_findings_without_secrets() {
    let (report, secrets) = report_with_two_findings();
    let json = report.to_json();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    let first = &findings[0];
    assert_eq!(first["rule_id"], "github-pat");
    assert_eq!(first["file"], "dir with space/config.py");
    assert_eq!(first["line"], 2);
    assert_eq!(first["column"], 17);
    assert!(first["redacted"].as_str().unwrap().starts_with("ghp_…"));
    assert_eq!(json["files_scanned"], 1);
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "column",
            "description",
            "file",
            "fingerprint",
            "line",
            "redacted",
            "rule_id"
        ]
    );
    let text = json.to_string() + &report.to_text() + &format!("{report:?}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()));
    }
    assert!(matches!(json["skipped"], Value::Array(_)));
}
