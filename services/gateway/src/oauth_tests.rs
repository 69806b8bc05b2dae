#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn args(client_id: Option<&str>, secret: Option<&str>) -> OAuthArgs {
    OAuthArgs {
        client_id: client_id.map(str::to_owned),
        client_secret: secret.map(|secret| ClientSecret(secret.to_owned())),
        client_secret_file: None,
        web_url: "https://github.com".into(),
        api_url: "https://api.github.com".into(),
        redirect_url: None,
        default_role: Role::Viewer,
        organisations: Vec::new(),
    }
}

fn config_error(args: &OAuthArgs) -> String {
    let dir = tempfile::tempdir().unwrap();
    GitHubOAuth::from_args(args, dir.path())
        .unwrap_err()
        .to_string()
}

#[test]
fn the_client_secret_never_shows_in_debug_output() {
    let secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let args = args(Some("Iv1.client"), Some(&secret));
    assert!(!format!("{args:?}").contains(&secret));
    let dir = tempfile::tempdir().unwrap();
    let oauth = GitHubOAuth::from_args(&args, dir.path()).unwrap().unwrap();
    assert!(!format!("{oauth:?}").contains(&secret));
    assert_eq!(oauth.client_secret.expose(), secret);
}

#[test]
fn oauth_is_off_without_a_client_id_and_refuses_half_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        GitHubOAuth::from_args(&args(None, Some("s")), dir.path())
            .unwrap()
            .is_none()
    );
    let error = config_error(&args(Some("Iv1.client"), None));
    assert!(error.contains("client secret is not"), "{error}");
    let error = config_error(&args(Some("Iv1.client"), Some("  ")));
    assert!(error.contains("secret is empty"), "{error}");
    let error = config_error(&args(Some("has space"), Some("s")));
    assert!(error.contains("--github-oauth-client-id"), "{error}");

    let mut both = args(Some("Iv1.client"), Some("s"));
    both.client_secret_file = Some(dir.path().join("secret"));
    let error = config_error(&both);
    assert!(error.contains("once"), "{error}");

    let mut missing_file = args(Some("Iv1.client"), None);
    missing_file.client_secret_file = Some(dir.path().join("absent"));
    let error = config_error(&missing_file);
    assert!(error.contains("cannot read"), "{error}");

    let mut from_file = args(Some("Iv1.client"), None);
    std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
    from_file.client_secret_file = Some(dir.path().join("secret"));
    let oauth = GitHubOAuth::from_args(&from_file, dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(oauth.client_secret.expose(), "from-file");

    let mut org = args(Some("Iv1.client"), Some("s"));
    org.organisations = vec!["not an org".into()];
    let error = config_error(&org);
    assert!(error.contains("--github-org"), "{error}");
}

#[test]
fn base_urls_are_https_or_loopback_http() {
    assert_eq!(
        base_url("--x", "https://github.example/").unwrap(),
        "https://github.example"
    );
    assert_eq!(
        base_url("--x", "http://127.0.0.1:4000").unwrap(),
        "http://127.0.0.1:4000"
    );
    assert_eq!(
        base_url("--x", "https://ghe.example/api/v3").unwrap(),
        "https://ghe.example/api/v3"
    );
    for bad in [
        "http://github.com",
        "http://127.0.0.1.evil.example",
        "ftp://github.com",
        "github.com",
        "https://",
    ] {
        let error = base_url("--github-api-url", bad).unwrap_err().to_string();
        assert!(error.contains("--github-api-url"), "{bad}: {error}");
    }
}

#[test]
fn repository_ids_split_into_github_owner_and_name() {
    assert_eq!(github_repository("acme/widgets"), Some(("acme", "widgets")));
    assert_eq!(
        github_repository("my-org/repo.rs_2"),
        Some(("my-org", "repo.rs_2"))
    );
    for bad in [
        "widgets",
        "acme/",
        "/widgets",
        "a/b/c",
        "acme/..",
        "acme/wid gets",
        "acme/w?x",
    ] {
        assert_eq!(github_repository(bad), None, "{bad}");
    }
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(
        encode("repo read:org write:discussion"),
        "repo%20read:org%20write:discussion"
    );
    assert_eq!(
        encode("http://h:1/a?b=c&d"),
        "http:%2F%2Fh:1%2Fa%3Fb%3Dc%26d"
    );
}

#[derive(Debug, clap::Parser)]
struct Flags {
    #[command(flatten)]
    oauth: OAuthArgs,
}

#[test]
fn the_flags_parse_with_their_defaults_and_name_a_bad_role() {
    use clap::Parser as _;
    let flags = Flags::try_parse_from([
        "cap-gateway",
        "--github-oauth-client-id=Iv1.client",
        "--github-oauth-client-secret= s3cret ",
        "--github-default-role=developer",
        "--github-org=acme",
        "--github-org=beta",
    ])
    .unwrap()
    .oauth;
    assert_eq!(flags.client_id.as_deref(), Some("Iv1.client"));
    assert_eq!(flags.client_secret.unwrap().expose(), "s3cret");
    assert_eq!(flags.default_role, Role::Developer);
    assert_eq!(flags.organisations, ["acme", "beta"]);
    assert_eq!(flags.web_url, "https://github.com");
    assert_eq!(flags.api_url, "https://api.github.com");

    let defaults = Flags::try_parse_from(["cap-gateway"]).unwrap().oauth;
    assert_eq!(defaults.default_role, Role::Viewer);
    assert!(defaults.client_id.is_none());

    let error = Flags::try_parse_from(["cap-gateway", "--github-default-role=owner"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown role \"owner\""), "{error}");
}
