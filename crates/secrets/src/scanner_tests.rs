use super::*;

fn scanner() -> Scanner {
    Scanner::new().unwrap()
}

/// `len` characters of `alphabet` picked by a fixed linear congruential sequence, so tests
/// get token-like values while the source holds none.
fn generated(alphabet: &[u8], len: usize, seed: u64) -> String {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(alphabet[(state >> 33) as usize % alphabet.len()])
        })
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// 36 alphanumerics.
fn random36() -> String {
    generated(ALNUM, 36, 1)
}

#[test]
fn every_rule_compiles_and_has_keywords() {
    let scanner = scanner();
    assert_eq!(scanner.rules.len(), rules().len());
    for rule in rules() {
        assert!(!rule.keywords.is_empty(), "{}", rule.id);
        let mut ids = rules().iter().filter(|other| other.id == rule.id);
        ids.next();
        assert!(ids.next().is_none(), "duplicate rule id {}", rule.id);
    }
}

#[test]
fn line_and_column_count_characters() {
    let token = format!("{}{}", "ghp_", random36());
    let text = format!("first\n  é = \"{token}\"\n");
    let findings = scanner().scan_text("a.py", &text);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!((findings[0].line, findings[0].column), (2, 8));
    assert_eq!(findings[0].rule_id, "github-pat");
}

#[test]
fn specific_rules_win_over_generic_ones() {
    let token = format!("{}{}", "ghp_", random36());
    let findings = scanner().scan_text("a.env", &format!("GITHUB_TOKEN={token}\n"));
    let ids: Vec<_> = findings.iter().map(|f| f.rule_id).collect();
    assert_eq!(ids, ["github-pat"]);
}

#[test]
fn redaction_keeps_text_around_the_secret() {
    let token = format!("{}{}", "ghp_", random36());
    let text = format!("push with {token} please");
    let redacted = scanner().redact(&text);
    assert_eq!(
        redacted,
        format!("push with {} please", redacted_form(&token))
    );
    // Redacting again changes nothing: the redacted form is not a secret.
    assert_eq!(scanner().redact(&redacted), redacted);
}

#[test]
fn text_without_a_secret_is_borrowed_not_copied() {
    let clean = "INFO listening bound=127.0.0.1:4000";
    assert!(matches!(
        scanner().redacted(clean),
        std::borrow::Cow::Borrowed(text) if text == clean
    ));
    let token = format!("{}{}", "ghp_", random36());
    let dirty = format!("token {token} sent");
    let redacted = scanner().redacted(&dirty);
    assert!(matches!(redacted, std::borrow::Cow::Owned(_)));
    assert_eq!(redacted, scanner().redact(&dirty));
    assert!(!redacted.contains(&token));
}

#[test]
fn an_aws_secret_without_a_telling_name_is_paired_with_its_key_id() {
    let id = ["AK", "IA"].concat() + &generated(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 2);
    let secret = generated(ALNUM, 38, 3) + "/+";
    let text = format!("id,{id}\nkey,{secret}\nregion,eu-west-1\n");
    let findings = scanner().scan_text("creds.csv", &text);
    let found: Vec<_> = findings.iter().map(|f| (f.rule_id, f.line)).collect();
    assert_eq!(
        found,
        [("aws-access-key-id", 1), ("aws-secret-access-key", 2)]
    );
    // Without the key id nearby the same token is not taken for a secret key.
    assert!(
        scanner()
            .scan_text("x.csv", &format!("key,{secret}\n"))
            .is_empty()
    );
}

#[test]
fn assignments_are_parsed_in_their_many_spellings() {
    let value = generated(ALNUM, 16, 4);
    let cases = [
        format!("password = \"{value}\""),
        format!("PASSWORD={value}"),
        format!("password: {value}"),
        format!("\"password\": \"{value}\""),
        format!("\\\"password\\\": \\\"{value}\\\""),
        format!("const PASSWORD: &str = \"{value}\";"),
        format!("let password: string = '{value}';"),
        format!("'password' => '{value}',"),
        format!("password := \"{value}\""),
        format!("--password={value}"),
        format!("env['PASSWORD'] = r\"{value}\""),
    ];
    for case in cases {
        let findings = scanner().scan_text("x", &case);
        assert_eq!(findings.len(), 1, "{case}");
        assert_eq!(findings[0].fingerprint, fingerprint(&value), "{case}");
    }
    for clean in [
        format!("password == \"{value}\""),
        "password: str".to_owned(),
        format!("password_hash = \"{value}\""),
        format!("password = {value}("),
    ] {
        assert!(scanner().scan_text("x", &clean).is_empty(), "{clean}");
    }
}
