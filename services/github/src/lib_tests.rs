use clap::Parser;
use pretty_assertions::assert_eq;
use tonic::Code;

use super::*;

#[test]
fn defaults_live_in_the_data_dir() {
    let config = Config::try_parse_from(["cap-github", "--data-dir", "/var/cap"]).unwrap();
    let forge = config.forge_config();
    assert_eq!(forge.root, PathBuf::from("/var/cap/forge"));
    assert_eq!(forge.database_url, "sqlite:///var/cap/github.db?mode=rwc");
    assert_eq!(forge.public_url, "http://127.0.0.1:8080");

    let config = Config::try_parse_from([
        "cap-github",
        "--database-url",
        "postgres://postgres@db/cap",
        "--forge-root",
        "/srv/forge",
        "--public-url",
        "https://cap.example",
    ])
    .unwrap();
    let forge = config.forge_config();
    assert_eq!(forge.root, PathBuf::from("/srv/forge"));
    assert_eq!(forge.database_url, "postgres://postgres@db/cap");
    assert_eq!(forge.public_url, "https://cap.example");
}

#[test]
fn maps_errors_to_status_codes() {
    use cap_forge::{Error as E, PullRequestState};
    let cases = [
        (E::EmptyChangeSet, Code::InvalidArgument),
        (E::InvalidSha { sha: "x".into() }, Code::InvalidArgument),
        (E::RepositoryNotFound("a/b".into()), Code::NotFound),
        (E::PullRequestNotFound("id".into()), Code::NotFound),
        (E::RepositoryExists("a/b".into()), Code::AlreadyExists),
        (
            E::NotApproved {
                id: "id".into(),
                state: PullRequestState::Open,
            },
            Code::FailedPrecondition,
        ),
        (
            E::RefMoved {
                reference: "refs/heads/main".into(),
            },
            Code::FailedPrecondition,
        ),
    ];
    for (error, code) in cases {
        let message = error.to_string();
        let status = status(error);
        assert_eq!(status.code(), code, "{message}");
        assert_eq!(status.message(), message);
    }
}

#[test]
fn internal_errors_keep_details_out_of_the_status() {
    let status = status(cap_forge::Error::Git {
        command: "update-ref refs/heads/main".into(),
        status: "exit status: 128".into(),
        stderr: "fatal: /srv/secret/path".into(),
    });
    assert_eq!(status.code(), Code::Internal);
    assert!(!status.message().contains("secret"), "{}", status.message());
}

#[test]
fn the_github_backend_needs_an_app_id_and_a_readable_key() {
    let config = Config::try_parse_from(["cap-github"]).unwrap();
    assert_eq!(config.backend, BackendKind::Local);
    assert_eq!(config.github_api_url, "https://api.github.com");
    assert_eq!(config.github_labels, ["coding-assistant"]);

    let config = Config::try_parse_from(["cap-github", "--backend", "github"]).unwrap();
    let error = config.github_config().unwrap_err().to_string();
    assert!(error.contains("--github-app-id"), "{error}");
    let config =
        Config::try_parse_from(["cap-github", "--backend", "github", "--github-app-id", "12"])
            .unwrap();
    let error = config.github_config().unwrap_err().to_string();
    assert!(error.contains("--github-app-key-file"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    std::fs::write(&key, "not a key").unwrap();
    let config = Config::try_parse_from([
        "cap-github",
        "--backend",
        "github",
        "--github-app-id",
        "12",
        "--github-app-key-file",
        key.to_str().unwrap(),
        "--github-labels",
        "bot, ai,",
    ])
    .unwrap();
    let error = format!("{:#}", config.github_config().unwrap_err());
    assert!(error.contains("app.pem: no `-----BEGIN"), "{error}");
}

#[test]
fn github_failures_name_github_and_keep_their_codes() {
    use cap_forge::Error as E;
    let cases = [
        (
            E::GitHubUnavailable("GET /repos/a/b answered 502".into()),
            Code::Unavailable,
        ),
        (
            E::GitHubCircuitOpen("the GitHub circuit is open".into()),
            Code::Unavailable,
        ),
        (
            E::GitHubRateLimited { retry_in_secs: 60 },
            Code::ResourceExhausted,
        ),
        (
            E::GitHubRefused {
                what: "the merge".into(),
                message: "Required status check \"ci\" is expected.".into(),
            },
            Code::FailedPrecondition,
        ),
        (E::GitHubNotInstalled("a/b".into()), Code::NotFound),
        (
            E::Unsupported("ImportRepository is for the local forge"),
            Code::Unimplemented,
        ),
    ];
    for (error, code) in cases {
        let message = error.to_string();
        let status = status(error);
        assert_eq!(status.code(), code, "{message}");
        assert!(
            status.message().contains("GitHub") || code == Code::Unimplemented,
            "{message}"
        );
    }
}

#[test]
fn the_webhook_secret_comes_from_its_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let value = format!("file-secret-{}", uuid::Uuid::new_v4());
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{value}\n")).unwrap();
    let config = Config::try_parse_from([
        "cap-github",
        "--webhook-secret-file",
        file.to_str().unwrap(),
    ])
    .unwrap();
    let none = std::collections::HashMap::new();
    assert_eq!(webhook_secret(&config, &none).unwrap(), value.as_bytes());

    let config = Config::try_parse_from(["cap-github"]).unwrap();
    let error = webhook_secret(&config, &none).unwrap_err().to_string();
    assert!(error.contains("--webhook-secret-file"), "{error}");
    let env = std::collections::HashMap::from([(WEBHOOK_SECRET_ENV.to_owned(), value.clone())]);
    assert_eq!(webhook_secret(&config, &env).unwrap(), value.as_bytes());
    let empty = std::collections::HashMap::from([(WEBHOOK_SECRET_ENV.to_owned(), " \n".into())]);
    let error = webhook_secret(&config, &empty).unwrap_err().to_string();
    assert_eq!(error, "the webhook secret is empty");

    let config =
        Config::try_parse_from(["cap-github", "--webhook-secret-file", "/nonexistent/secret"])
            .unwrap();
    let error = webhook_secret(&config, &none).unwrap_err().to_string();
    assert!(error.contains("/nonexistent/secret"), "{error}");
}
