//! The GitHub forge against the GitHub API stand-in (`cap_testkit::github`) and a real git
//! remote over smart HTTP on loopback. The App's RSA key is generated per test (openssl).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_forge::github::{AppKey, GitHubConfig, GitHubForge, RetryPolicy};
use cap_forge::{CheckState, ChecksState, Error, FileChange, PullRequestState, ReviewAction};
use cap_testkit::git::git;
use cap_testkit::github::{GitHubStandIn, RepoSetup, ScriptedCheck};
use pretty_assertions::assert_eq;
use tempfile::TempDir;

const APP_ID: u64 = 4242;
const REPO: &str = "octo/hello";
const BRANCH: &str = "coding-assistant/20260101000000-greet";

const CODEOWNERS: &str = "* @octo/core\n*.rs @rustacean\n/docs/ @writer\n";
const TEMPLATE: &str =
    "## Summary\n<!-- Describe the change -->\n\n## Checklist\n- [ ] Tests pass\n";

struct Fixture {
    dir: TempDir,
    standin: GitHubStandIn,
    key_path: PathBuf,
}

fn key_pair(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    cap_testkit::github::generate_app_key(dir, name)
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, public) = key_pair(dir.path(), "app");
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::create_dir_all(work.join(".github")).unwrap();
    std::fs::write(work.join("README.md"), "# hello\n").unwrap();
    std::fs::write(work.join("src/lib.rs"), "pub fn one() -> u32 { 1 }\n").unwrap();
    std::fs::write(work.join(".github/CODEOWNERS"), CODEOWNERS).unwrap();
    std::fs::write(work.join(".github/PULL_REQUEST_TEMPLATE.md"), TEMPLATE).unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "Initial commit"]);
    let remote_root = dir.path().join("remote");
    std::fs::create_dir_all(remote_root.join("octo")).unwrap();
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            remote_root.join("octo/hello.git").to_str().unwrap(),
        ],
    );
    let standin = GitHubStandIn::start(APP_ID, public, remote_root)
        .await
        .unwrap();
    standin.add_repository(
        REPO,
        RepoSetup {
            installation: 7,
            default_branch: "main".into(),
            languages: vec![("Shell".into(), 20), ("Rust".into(), 1200)],
            protected: vec![("main".into(), vec!["ci/test".into()])],
        },
    );
    Fixture {
        dir,
        standin,
        key_path,
    }
}

impl Fixture {
    fn config(&self) -> GitHubConfig {
        let mut config = GitHubConfig::new(
            APP_ID,
            AppKey::read(&self.key_path).unwrap(),
            self.dir.path().join("cache"),
        );
        config.api_url = self.standin.url().to_owned();
        config.retry = RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(10),
            max_wait: Duration::from_secs(5),
        };
        config.breaker_failures = 3;
        config.breaker_open_for = Duration::from_secs(60);
        config
    }

    fn forge(&self) -> GitHubForge {
        GitHubForge::new(self.config()).unwrap()
    }

    fn remote(&self, args: &[&str]) -> String {
        git(&self.standin.bare_path(REPO), args)
    }
}

#[tokio::test]
async fn metadata_comes_through_the_installation_token() {
    let f = fixture().await;
    let forge = f.forge();
    let metadata = forge.metadata(REPO).await.unwrap();
    assert_eq!(metadata.repository.default_branch, "main");
    assert_eq!(
        metadata.repository.head_sha,
        f.remote(&["rev-parse", "main"])
    );
    assert_eq!(
        metadata.repository.clone_url,
        format!("{}/git/octo/hello.git", f.standin.url())
    );
    assert_eq!(
        metadata.languages,
        vec![("Rust".to_owned(), 1200), ("Shell".to_owned(), 20)]
    );
    assert!(metadata.default_branch_protected);
    assert_eq!(metadata.required_status_checks, ["ci/test"]);
    let codeowners = metadata.codeowners.unwrap();
    assert_eq!(codeowners.path, ".github/CODEOWNERS");
    assert_eq!(codeowners.owners_of("src/lib.rs"), ["@rustacean"]);
    assert_eq!(metadata.pull_request_template.as_deref(), Some(TEMPLATE));

    // One JWT call for the installation, one token, reused for every other call.
    forge.get_repository(REPO).await.unwrap();
    assert_eq!(f.standin.tokens_issued(), 1);
    let requests = f.standin.requests();
    assert_eq!(requests[0], "GET /repos/octo/hello/installation");
    assert_eq!(requests[1], "POST /app/installations/7/access_tokens");
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let f = fixture().await;
    // Tokens live 20 s; the forge renews 15 s early, so each is used for four to five seconds
    // (GitHub's `expires_at` has whole seconds), time enough on a loaded machine.
    f.standin.set_token_lifetime(Duration::from_secs(20));
    let mut config = f.config();
    config.token_renew_before = Duration::from_secs(15);
    let forge = GitHubForge::new(config).unwrap();
    forge.get_repository(REPO).await.unwrap();
    forge.get_repository(REPO).await.unwrap();
    assert_eq!(f.standin.tokens_issued(), 1);
    tokio::time::sleep(Duration::from_millis(5100)).await;
    forge.get_repository(REPO).await.unwrap();
    assert_eq!(f.standin.tokens_issued(), 2);
}

#[tokio::test]
async fn lists_are_read_page_by_page() {
    let f = fixture().await;
    f.standin.set_page_size(1);
    let forge = f.forge();
    forge.create_branch(REPO, BRANCH, "").await.unwrap();
    forge
        .commit_changes(
            REPO,
            BRANCH,
            "Two files",
            vec![
                FileChange::write("docs/a.md", "a\n"),
                FileChange::write("src/b.rs", "b\n"),
            ],
        )
        .await
        .unwrap();
    let pr = forge
        .open_pull_request(REPO, BRANCH, "main", "Two", "", "task-p")
        .await
        .unwrap();
    // The owners of the file on the second page are asked too.
    assert_eq!(
        f.standin.pull(REPO, 1).unwrap().requested_reviewers,
        ["rustacean", "writer"]
    );
    forge
        .review(
            &pr.pull_request_id,
            ReviewAction::RequestChanges,
            "a",
            Vec::new(),
        )
        .await
        .unwrap();
    let approved = forge
        .review(&pr.pull_request_id, ReviewAction::Approve, "b", Vec::new())
        .await
        .unwrap();
    // The latest verdict is on the second page of reviews.
    assert_eq!(approved.reviews.len(), 2);
    assert_eq!(approved.state, PullRequestState::Approved);
    // Two files at one a page: two requests for them.
    let pages = f
        .standin
        .requests()
        .iter()
        .filter(|r| *r == "GET /repos/octo/hello/pulls/1/files")
        .count();
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn git_failing_on_github_is_github_unavailable() {
    let f = fixture().await;
    let forge = f.forge();
    forge.create_branch(REPO, BRANCH, "").await.unwrap();
    f.standin.set_git_down(true);
    let error = forge
        .commit_changes(REPO, BRANCH, "m", vec![FileChange::write("a", "b")])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::GitHubUnavailable(_)), "{error}");
    assert!(
        error.to_string().contains("git could not reach GitHub"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("standin-installation-token"),
        "{error}"
    );
    f.standin.set_git_down(false);
    forge
        .commit_changes(REPO, BRANCH, "m", vec![FileChange::write("a", "b")])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let f = fixture().await;
    let forge = f.forge();
    forge.get_repository(REPO).await.unwrap();
    f.standin.revoke_tokens();
    forge.get_repository(REPO).await.unwrap();
    assert_eq!(f.standin.tokens_issued(), 2);
}

#[tokio::test]
async fn a_branch_a_pushed_commit_and_a_pull_request_from_the_template() {
    let f = fixture().await;
    let forge = f.forge();
    let main = f.remote(&["rev-parse", "main"]);
    let start = forge.create_branch(REPO, BRANCH, "").await.unwrap();
    assert_eq!(start, main);
    assert_eq!(f.remote(&["rev-parse", BRANCH]), main);
    assert!(matches!(
        forge.create_branch(REPO, BRANCH, "").await,
        Err(Error::BranchExists { .. })
    ));

    let commit = forge
        .commit_changes(
            REPO,
            BRANCH,
            "Add a greeting",
            vec![
                FileChange::write("src/greet.rs", "pub fn hi() {}\n"),
                FileChange::write("docs/guide.md", "Say hi.\n"),
            ],
        )
        .await
        .unwrap();
    // The commit is in the bare remote, pushed over smart HTTP.
    assert_eq!(f.remote(&["rev-parse", BRANCH]), commit);
    assert_eq!(
        f.remote(&["show", &format!("{commit}:src/greet.rs")]),
        "pub fn hi() {}"
    );
    assert_eq!(
        f.remote(&["log", "-1", "--format=%an <%ae>|%s", &commit]),
        format!(
            "{} <{}>|Add a greeting",
            cap_forge::BOT_NAME,
            cap_forge::BOT_EMAIL
        )
    );
    // The token went to git through its environment only: nothing on disk holds it.
    let cache = f.dir.path().join("cache/octo/hello.git");
    let config = std::fs::read_to_string(cache.join("config")).unwrap();
    assert!(!config.contains("standin-installation-token"), "{config}");
    assert!(!config.contains("extraheader"), "{config}");
    assert!(!cache.join("FETCH_HEAD").exists());

    // The default branch is protected and not the forge's own: never written.
    assert!(matches!(
        forge
            .commit_changes(REPO, "main", "x", vec![FileChange::write("a", "b")])
            .await,
        Err(Error::InvalidBranch { .. })
    ));

    let pr = forge
        .open_pull_request(
            REPO,
            BRANCH,
            "main",
            "Add a greeting",
            "Adds `hi`.",
            "task-1",
        )
        .await
        .unwrap();
    assert_eq!(pr.pull_request_id, "octo:hello:1");
    assert_eq!(pr.state, PullRequestState::Open);
    assert_eq!(pr.task_id, "task-1");
    assert_eq!(pr.head_sha, commit);
    assert!(pr.diff.contains("+pub fn hi() {}"), "{}", pr.diff);
    assert!(
        pr.body
            .starts_with("## Summary\n\nAdds `hi`.\n\n## Checklist\n- [ ] Tests pass\n"),
        "{}",
        pr.body
    );
    assert!(!pr.body.contains("Describe the change"));
    let record = f.standin.pull(REPO, 1).unwrap();
    assert_eq!(record.requested_reviewers, ["rustacean", "writer"]);
    assert_eq!(record.requested_teams, Vec::<String>::new());
    assert_eq!(record.labels, ["coding-assistant"]);
    // The same task asking again gets its pull request back; another task is refused.
    let again = forge
        .open_pull_request(REPO, BRANCH, "main", "Again", "", "task-1")
        .await
        .unwrap();
    assert_eq!(again.pull_request_id, pr.pull_request_id);
    assert!(matches!(
        forge
            .open_pull_request(REPO, BRANCH, "main", "Again", "", "task-2")
            .await,
        Err(Error::PullRequestExists { number: 1, .. })
    ));

    let listed = forge.list_pull_requests(Some(REPO)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].pull_request_id, pr.pull_request_id);

    assert!(matches!(
        forge.merge(&pr.pull_request_id).await,
        Err(Error::NotApproved { .. })
    ));
    let reviewed = forge
        .review(
            &pr.pull_request_id,
            ReviewAction::RequestChanges,
            "alice",
            vec![cap_forge::ReviewComment {
                file: "src/greet.rs".into(),
                line: 1,
                body: "Say <hello> -->".into(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(reviewed.state, PullRequestState::ChangesRequested);
    assert_eq!(reviewed.reviews[0].reviewer, "alice");
    assert_eq!(reviewed.reviews[0].comments[0].body, "Say <hello> -->");
    let approved = forge
        .review(
            &pr.pull_request_id,
            ReviewAction::Approve,
            "bob",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(approved.state, PullRequestState::Approved);
    // A new commit after the approval makes it stale.
    let commit = forge
        .commit_changes(
            REPO,
            BRANCH,
            "Polish",
            vec![FileChange::write("src/greet.rs", "pub fn hi() {}\n// hi\n")],
        )
        .await
        .unwrap();
    let stale = forge.get_pull_request(&pr.pull_request_id).await.unwrap();
    assert_eq!(
        (stale.state, stale.head_sha.as_str()),
        (PullRequestState::Open, commit.as_str())
    );
    assert!(matches!(
        forge.merge(&pr.pull_request_id).await,
        Err(Error::NotApproved { .. })
    ));
    forge
        .review(
            &pr.pull_request_id,
            ReviewAction::Approve,
            "bob",
            Vec::new(),
        )
        .await
        .unwrap();
    let merged = forge.merge(&pr.pull_request_id).await.unwrap();
    assert_eq!(merged.state, PullRequestState::Merged);
    let merge_sha = merged.merge_sha.clone().unwrap();
    assert_eq!(f.remote(&["rev-parse", "main"]), merge_sha);
    assert_eq!(f.remote(&["rev-parse", &format!("{merge_sha}^2")]), commit);
    assert!(matches!(
        forge.merge(&pr.pull_request_id).await,
        Err(Error::PullRequestClosed { .. })
    ));
}

#[tokio::test]
async fn a_human_verdict_on_github_counts_and_a_rejection_closes() {
    let f = fixture().await;
    let forge = f.forge();
    forge.create_branch(REPO, BRANCH, "").await.unwrap();
    forge
        .commit_changes(
            REPO,
            BRANCH,
            "Change",
            vec![FileChange::write("README.md", "# hi\n")],
        )
        .await
        .unwrap();
    let pr = forge
        .open_pull_request(REPO, BRANCH, "main", "Change", "", "")
        .await
        .unwrap();
    // No CODEOWNERS line but `*` matches README.md: a team is requested.
    assert_eq!(f.standin.pull(REPO, 1).unwrap().requested_teams, ["core"]);
    f.standin.add_human_review(REPO, 1, "carol", "APPROVE");
    let pr = forge.get_pull_request(&pr.pull_request_id).await.unwrap();
    assert_eq!(pr.state, PullRequestState::Approved);
    assert_eq!(pr.reviews[0].reviewer, "carol");
    let rejected = forge
        .review(
            &pr.pull_request_id,
            ReviewAction::Reject,
            "dave",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(rejected.state, PullRequestState::Rejected);
    assert_eq!(f.standin.pull(REPO, 1).unwrap().state, "closed");
}

#[tokio::test]
async fn rate_limits_are_waited_out_within_bounds() {
    let f = fixture().await;
    let forge = f.forge();
    forge.get_repository(REPO).await.unwrap();
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    f.standin.push_fault(
        403,
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset.to_string()),
        ],
    );
    f.standin.push_fault(429, &[("retry-after", "1")]);
    let started = Instant::now();
    forge.get_repository(REPO).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(f.standin.pending_faults(), 0);

    // A wait longer than the forge's bound fails at once, saying when to come back.
    f.standin.push_fault(429, &[("retry-after", "3600")]);
    let started = Instant::now();
    let error = forge.get_repository(REPO).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::GitHubRateLimited {
                retry_in_secs: 3600
            }
        ),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // A 403 that is no rate limit is GitHub's answer, not retried.
    f.standin.push_fault(403, &[]);
    assert!(matches!(
        forge.get_repository(REPO).await,
        Err(Error::GitHubApi { status: 403, .. })
    ));
}

#[tokio::test]
async fn server_errors_are_retried_then_open_the_circuit() {
    let f = fixture().await;
    let forge = f.forge();
    forge.get_repository(REPO).await.unwrap();
    // One 502 is retried away.
    f.standin.push_fault(502, &[]);
    forge.get_repository(REPO).await.unwrap();
    // Three in a row exhaust the attempts and open the circuit (three failures).
    for _ in 0..3 {
        f.standin.push_fault(503, &[]);
    }
    let error = forge.get_repository(REPO).await.unwrap_err();
    assert!(matches!(error, Error::GitHubUnavailable(_)), "{error}");
    assert!(
        error.to_string().starts_with("GitHub is unavailable"),
        "{error}"
    );
    let before = f.standin.requests().len();
    let error = forge.get_repository(REPO).await.unwrap_err();
    assert!(matches!(error, Error::GitHubCircuitOpen(_)), "{error}");
    assert!(error.to_string().contains("circuit is open"), "{error}");
    assert_eq!(
        f.standin.requests().len(),
        before,
        "an open circuit calls nobody"
    );
}

#[tokio::test]
async fn the_circuit_closes_again_after_a_good_trial_call() {
    let f = fixture().await;
    let mut config = f.config();
    config.retry.attempts = 1;
    config.breaker_failures = 2;
    config.breaker_open_for = Duration::from_secs(1);
    let forge = GitHubForge::new(config).unwrap();
    forge.get_repository(REPO).await.unwrap();
    for _ in 0..2 {
        f.standin.push_fault(500, &[]);
        assert!(matches!(
            forge.get_repository(REPO).await,
            Err(Error::GitHubUnavailable(_))
        ));
    }
    assert!(matches!(
        forge.get_repository(REPO).await,
        Err(Error::GitHubCircuitOpen(_))
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The trial call goes through and closes the circuit.
    forge.get_repository(REPO).await.unwrap();
    forge.get_repository(REPO).await.unwrap();
}

#[tokio::test]
async fn a_secondary_rate_limit_named_only_in_the_message_counts() {
    let f = fixture().await;
    let mut config = f.config();
    // Its wait (a minute) is longer than this bound: the call fails at once, saying so.
    config.retry.max_wait = Duration::from_secs(1);
    let forge = GitHubForge::new(config).unwrap();
    forge.get_repository(REPO).await.unwrap();
    f.standin
        .push_fault_with_message(403, "You have exceeded a secondary rate limit.");
    assert!(matches!(
        forge.get_repository(REPO).await,
        Err(Error::GitHubRateLimited { retry_in_secs: 60 })
    ));
}

#[tokio::test]
async fn bad_inputs_and_bad_credentials_get_clear_errors() {
    let f = fixture().await;
    let forge = f.forge();
    assert!(matches!(
        forge.get_repository("not a repo").await,
        Err(Error::InvalidRepositoryId { .. })
    ));
    assert!(matches!(
        forge.get_repository("octo/missing").await,
        Err(Error::GitHubNotInstalled(_))
    ));
    assert!(matches!(
        forge.create_branch(REPO, "feature/mine", "").await,
        Err(Error::InvalidBranch { .. })
    ));
    assert!(matches!(
        forge.create_branch(REPO, BRANCH, "zzzz").await,
        Err(Error::InvalidSha { .. })
    ));
    assert!(matches!(
        forge.create_branch(REPO, BRANCH, "abcdef0123").await,
        Err(Error::CommitNotFound { .. })
    ));
    assert!(matches!(
        forge
            .commit_changes(
                REPO,
                "coding-assistant/none",
                "m",
                vec![FileChange::write("a", "b")]
            )
            .await,
        Err(Error::BranchNotFound { .. })
    ));
    assert!(matches!(
        forge.get_pull_request("42").await,
        Err(Error::InvalidArgument {
            field: "pull_request_id",
            ..
        })
    ));
    assert!(matches!(
        forge.get_pull_request("octo:hello:99").await,
        Err(Error::PullRequestNotFound(_))
    ));
    assert!(matches!(
        forge.list_pull_requests(None).await,
        Err(Error::InvalidArgument {
            field: "repository_id",
            ..
        })
    ));

    // A key GitHub does not know: its JWT is refused, and the error says so.
    let (other, _) = key_pair(f.dir.path(), "other");
    let mut config = f.config();
    config.key = AppKey::read(&other).unwrap();
    let error = GitHubForge::new(config)
        .unwrap()
        .get_repository(REPO)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::GitHubApi { status: 401, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("A JSON web token could not be decoded"),
        "{error}"
    );

    // A key file that is no key; the key's bytes never show in Debug.
    let bad = f.dir.path().join("bad.pem");
    std::fs::write(&bad, "hello").unwrap();
    assert!(matches!(AppKey::read(&bad), Err(Error::GitHubKey { .. })));
    let key = AppKey::read(&f.key_path).unwrap();
    assert_eq!(format!("{key:?}"), "AppKey(<redacted>)");
    // PKCS#8 keys work too.
    let pkcs8 = f.dir.path().join("pkcs8.pem");
    let output = Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            f.key_path.to_str().unwrap(),
            "-out",
            pkcs8.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut config = f.config();
    config.key = AppKey::read(&pkcs8).unwrap();
    GitHubForge::new(config)
        .unwrap()
        .get_repository(REPO)
        .await
        .unwrap();
}

/// Opens a pull request from a one-file commit on [`BRANCH`].
async fn opened(forge: &GitHubForge) -> cap_forge::PullRequest {
    forge.create_branch(REPO, BRANCH, "").await.unwrap();
    forge
        .commit_changes(
            REPO,
            BRANCH,
            "Add a greeting",
            vec![FileChange::write("src/greet.rs", "pub fn hi() {}\n")],
        )
        .await
        .unwrap();
    forge
        .open_pull_request(REPO, BRANCH, "main", "Greet", "Say hi.", "task-checks")
        .await
        .unwrap()
}

#[tokio::test]
async fn required_checks_are_read_from_check_runs_and_statuses_on_the_head() {
    let f = fixture().await;
    let forge = f.forge();
    let pr = opened(&forge).await;
    // Nothing reported yet: the required `ci/test` is pending (CI has not started).
    let checks = forge.required_checks(&pr.pull_request_id).await.unwrap();
    assert_eq!(checks.state, ChecksState::Pending);
    assert_eq!(checks.head_sha, pr.head_sha);
    assert_eq!(checks.checks.len(), 1);
    assert_eq!(checks.checks[0].name, "ci/test");
    assert_eq!(checks.checks[0].summary, "not reported yet");

    f.standin
        .set_checks(REPO, vec![ScriptedCheck::running("ci/test")]);
    let checks = forge.required_checks(&pr.pull_request_id).await.unwrap();
    assert_eq!(checks.state, ChecksState::Pending);

    // A check run that is not required does not count; the required one passing does.
    f.standin.set_checks(
        REPO,
        vec![
            ScriptedCheck::run("lint", "failure", "3 warnings"),
            ScriptedCheck::run("ci/test", "success", "12 passed"),
        ],
    );
    let checks = forge.required_checks(&pr.pull_request_id).await.unwrap();
    assert_eq!(checks.state, ChecksState::Success);
    assert_eq!(checks.checks[0].summary, "ci/test: success: 12 passed");
    assert!(checks.checks[0].url.ends_with("/octo/hello/runs/ci/test"));

    // A commit status of the context counts like a check run of the name.
    f.standin.set_checks(
        REPO,
        vec![ScriptedCheck::status(
            "ci/test",
            "failure",
            "test_add failed: expected 3, got 4",
        )],
    );
    let checks = forge.required_checks(&pr.pull_request_id).await.unwrap();
    assert_eq!(checks.state, ChecksState::Failure);
    assert_eq!(checks.checks[0].state, CheckState::Failure);
    assert_eq!(
        checks.checks[0].summary,
        "test_add failed: expected 3, got 4"
    );
    let requests = f.standin.requests();
    let head = &pr.head_sha;
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /repos/{REPO}/commits/{head}/check-runs"))),
        "{requests:?}"
    );
}

#[tokio::test]
async fn an_unprotected_base_requires_no_checks() {
    let f = fixture().await;
    f.standin.add_repository(
        REPO,
        RepoSetup {
            installation: 7,
            ..RepoSetup::new()
        },
    );
    let forge = f.forge();
    let pr = opened(&forge).await;
    f.standin
        .set_checks(REPO, vec![ScriptedCheck::run("ci/test", "failure", "red")]);
    let checks = forge.required_checks(&pr.pull_request_id).await.unwrap();
    assert_eq!(checks.state, ChecksState::NoneRequired);
    assert!(checks.checks.is_empty());
    assert!(matches!(
        forge.required_checks("octo:hello:999").await,
        Err(Error::PullRequestNotFound(_))
    ));
}
