use pretty_assertions::assert_eq;

use super::*;

/// A secret made at test time.
fn secret() -> Vec<u8> {
    format!("test-secret-{}", uuid::Uuid::new_v4()).into_bytes()
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[test]
fn a_good_signature_passes_and_every_bad_one_is_refused_naming_why() {
    let secret = secret();
    let body = br#"{"action":"labeled"}"#;
    let good = sign(&secret, body);
    verify_signature(&secret, body, Some(&good)).unwrap();
    let refused = |header: Option<&str>, body: &[u8]| match verify_signature(&secret, body, header)
    {
        Err(Error::WebhookSignature(reason)) => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(None, body), "no X-Hub-Signature-256 header");
    assert_eq!(
        refused(Some(&good.replace("sha256=", "sha1=")), body),
        "X-Hub-Signature-256 does not start with sha256="
    );
    assert_eq!(
        refused(Some("sha256=abc"), body),
        "X-Hub-Signature-256 is not 64 hexadecimal digits"
    );
    assert_eq!(
        refused(Some(&good), br#"{"action":"unlabeled"}"#),
        "X-Hub-Signature-256 does not match the body"
    );
    let other_secret = sign(b"another secret", body);
    assert_eq!(
        refused(Some(&other_secret), body),
        "X-Hub-Signature-256 does not match the body"
    );
    // The message never quotes the body or the secret.
    let message = verify_signature(&secret, b"private body", Some(&good))
        .unwrap_err()
        .to_string();
    assert!(!message.contains("private body"), "{message}");
}

#[test]
fn labelled_issues_closed_pull_requests_and_reviews_are_read() {
    let labeled = serde_json::json!({
        "action": "labeled",
        "issue": {"number": 12, "title": "Fix add", "body": null},
        "label": {"name": "coding-assistant"},
        "repository": {"full_name": "octo/hello"},
        "sender": {"login": "mona"},
    });
    assert_eq!(
        parse_event("issues", labeled.to_string().as_bytes()).unwrap(),
        WebhookEvent::IssueLabeled {
            repository_id: "octo/hello".into(),
            number: 12,
            title: "Fix add".into(),
            body: String::new(),
            label: "coding-assistant".into(),
            sender: "mona".into(),
        }
    );
    let closed = serde_json::json!({
        "action": "closed",
        "pull_request": {"number": 3, "merged": true},
        "repository": {"full_name": "octo/hello"},
        "sender": {"login": "mona"},
    });
    assert_eq!(
        parse_event("pull_request", closed.to_string().as_bytes()).unwrap(),
        WebhookEvent::PullRequestClosed {
            repository_id: "octo/hello".into(),
            number: 3,
            merged: true,
            sender: "mona".into(),
        }
    );
    let review = serde_json::json!({
        "action": "submitted",
        "review": {"state": "APPROVED", "user": {"login": "rev"}},
        "pull_request": {"number": 3},
        "repository": {"full_name": "octo/hello"},
        "sender": {"login": "rev"},
    });
    assert_eq!(
        parse_event("pull_request_review", review.to_string().as_bytes()).unwrap(),
        WebhookEvent::PullRequestReviewed {
            repository_id: "octo/hello".into(),
            number: 3,
            state: "approved".into(),
            reviewer: "rev".into(),
        }
    );
    assert_eq!(
        parse_event("push", br#"{"ref":"refs/heads/main"}"#).unwrap(),
        WebhookEvent::Ignored {
            what: "push/".into()
        }
    );
    let broken = parse_event("issues", br#"{"action":"labeled","issue":{}}"#).unwrap_err();
    assert_eq!(
        broken.to_string(),
        "unreadable webhook delivery: issues delivery has no /repository/full_name"
    );
    assert!(matches!(
        parse_event("issues", b"not json"),
        Err(Error::WebhookPayload(_))
    ));
}

#[tokio::test]
async fn deliveries_are_remembered_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = cap_storage::sqlite_url(&dir.path().join("github.db"));
    let deliveries = Deliveries::open(&url).await.unwrap();
    assert!(deliveries.first_time("d-1", "issues").await.unwrap());
    assert!(!deliveries.first_time("d-1", "issues").await.unwrap());
    assert!(deliveries.first_time("d-2", "issues").await.unwrap());
    deliveries.forget("d-2").await.unwrap();
    assert!(deliveries.first_time("d-2", "issues").await.unwrap());
    drop(deliveries);
    let reopened = Deliveries::open(&url).await.unwrap();
    assert!(!reopened.first_time("d-1", "issues").await.unwrap());
    assert!(matches!(
        reopened.first_time(" ", "issues").await,
        Err(Error::WebhookPayload(_))
    ));
}
