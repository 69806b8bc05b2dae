use super::*;

fn parse(text: &str) -> Result<AllowList> {
    AllowList::parse(text, Path::new("allow.json"))
}

#[test]
fn paths_fingerprints_values_and_rules_are_allowed() {
    let list = parse(
        r#"{"paths": ["tests/fixtures/**", "*.snap"], "fingerprints": ["00112233AABBCCDD"],
            "values": ["published-emulator-key"], "rules": ["jwt"]}"#,
    )
    .unwrap();
    assert!(list.allows_path("tests/fixtures/creds/.env"));
    assert!(list.allows_path("a.snap"));
    assert!(!list.allows_path("src/tests/fixtures.rs"));
    assert!(list.allows("src/main.rs", "github-pat", "00112233aabbccdd"));
    assert!(list.allows(
        "src/main.rs",
        "github-pat",
        &fingerprint("published-emulator-key")
    ));
    assert!(list.allows("src/main.rs", "jwt", "ffffffffffffffff"));
    assert!(!list.allows("src/main.rs", "github-pat", "ffffffffffffffff"));
}

#[test]
fn bad_entries_are_named() {
    let cases = [
        (r#"{"paths": ["a/[b"]}"#, "path glob \"a/[b\""),
        (r#"{"fingerprints": ["abc"]}"#, "fingerprint \"abc\""),
        (
            r#"{"rules": ["no-such-rule"]}"#,
            "no rule has the id \"no-such-rule\"",
        ),
        (r#"{"path": []}"#, "unknown field `path`"),
        (r#"{"values": [""]}"#, "an empty string"),
        ("not json", "expected"),
    ];
    for (text, expected) in cases {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains("allow.json"), "{error}");
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn a_tree_without_a_file_gets_an_empty_list_and_a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let list = AllowList::load_for_tree(dir.path()).unwrap();
    assert!(!list.allows("a", "jwt", "0000000000000000"));
    let error = AllowList::load(&dir.path().join("missing.json")).unwrap_err();
    assert!(error.to_string().contains("missing.json"), "{error}");
}

#[test]
fn json_of_a_list_reads_back_to_the_same_list_without_values_in_clear() {
    let list = parse(
        r#"{"paths": ["tests/fixtures/**"], "fingerprints": ["00112233AABBCCDD"],
            "values": ["published-emulator-key"], "rules": ["jwt"]}"#,
    )
    .unwrap();
    let json = list.to_json();
    assert!(!json.contains("published-emulator-key"), "{json}");
    let again = parse(&json).unwrap();
    assert!(again.allows_path("tests/fixtures/a.env"));
    assert!(again.allows("a", "github-pat", "00112233aabbccdd"));
    assert!(again.allows("a", "github-pat", &fingerprint("published-emulator-key")));
    assert!(again.allows("a", "jwt", "ffffffffffffffff"));
    assert!(!again.allows("a", "github-pat", "ffffffffffffffff"));
    assert_eq!(again.to_json(), json);
    assert_eq!(AllowList::new().to_json(), "{}");
}
