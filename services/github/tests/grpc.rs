//! The GitHub service over mutual TLS on port 0, in-process, with a real forge behind it.

use cap_forge::{Forge, ForgeConfig};
use cap_proto::common::v1::FileChange;
use cap_proto::common::v1::file_change::Change;
use cap_proto::github::v1::git_hub_client::GitHubClient;
use cap_proto::github::v1::{
    CommitChangesRequest, CreateBranchRequest, GetPullRequestRequest, GetRepositoryRequest,
    GetRequiredChecksRequest, ImportRepositoryRequest, ImportedFile, ListPullRequestsRequest,
    MergePullRequestRequest, OpenPullRequestRequest, ReviewAction, ReviewComment,
    ReviewPullRequestRequest,
};
use pretty_assertions::assert_eq;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Served {
    _dir: tempfile::TempDir,
    channel: Channel,
    audit: cap_audit::AuditLog,
    server: tokio::task::JoinHandle<()>,
    repository_id: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve() -> anyhow::Result<Served> {
    let dir = tempfile::tempdir()?;
    let forge = Forge::open(ForgeConfig {
        root: dir.path().join("forge"),
        database_url: cap_storage::sqlite_url(&dir.path().join("github.db")),
        public_url: "http://dash.local".into(),
    })
    .await?;
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree)?;
    std::fs::write(tree.join("README.md"), "hello\n")?;
    let repository_id = "acme/demo".to_owned();
    forge
        .import_directory(&repository_id, &tree, "main")
        .await?;

    let pki = cap_mtls::Pki::ensure_dev(dir.path().join("pki"))?;
    let audit = cap_audit::AuditLog::open(
        &cap_storage::sqlite_url(&dir.path().join("github.db")),
        None,
        cap_audit::AuditConfig::default(),
    )
    .await?;
    let router =
        cap_github_service::router(&pki.service("github")?, forge.clone(), audit.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = cap_runtime::https_url(listener.local_addr()?);
    let server = tokio::spawn(async move {
        if let Err(error) = router
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
        {
            eprintln!("server stopped: {error}");
        }
    });
    // The gateway: it names the humans who review and merge.
    let channel = pki.service("gateway")?.channel(&url)?;
    Ok(Served {
        _dir: dir,
        channel,
        audit,
        server,
        repository_id,
    })
}

#[tokio::test]
async fn opens_and_reviews_pull_requests_over_mtls() -> anyhow::Result<()> {
    let served = serve().await?;
    let mut health = HealthClient::new(served.channel.clone());
    let reply = health
        .check(HealthCheckRequest {
            service: "cap.github.v1.GitHub".into(),
        })
        .await?
        .into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving);

    let mut client = GitHubClient::new(served.channel.clone());
    let id = served.repository_id.clone();
    let repo = client
        .get_repository(GetRepositoryRequest {
            repository_id: id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(repo.default_branch, "main");
    let branch = client
        .create_branch(CreateBranchRequest {
            repository_id: id.clone(),
            branch: "coding-assistant/1-greet".into(),
            from_sha: repo.head_sha.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(branch.head_sha, repo.head_sha);
    let commit = client
        .commit_changes(CommitChangesRequest {
            repository_id: id.clone(),
            branch: branch.branch.clone(),
            message: "Greet".into(),
            changes: vec![
                FileChange {
                    path: "greet.txt".into(),
                    change: Some(Change::Content(b"hi\n".to_vec())),
                },
                FileChange {
                    path: "README.md".into(),
                    change: Some(Change::Deleted(true)),
                },
            ],
        })
        .await?
        .into_inner();

    let pr = client
        .open_pull_request(OpenPullRequestRequest {
            repository_id: id.clone(),
            head_branch: branch.branch.clone(),
            base_branch: "main".into(),
            title: "Greet".into(),
            body: "Adds a greeting".into(),
            task_id: "task-7".into(),
            draft: false,
        })
        .await?
        .into_inner();
    assert_eq!((pr.number, pr.state.as_str(), pr.draft), (1, "open", false));
    assert_eq!(pr.head_sha, commit.commit_sha);
    assert_eq!(
        pr.url,
        format!("http://dash.local/#/pull-requests/{}", pr.pull_request_id)
    );
    assert!(
        pr.diff.contains("+hi") && pr.diff.contains("-hello"),
        "{}",
        pr.diff
    );
    // The local forge runs no CI: no required checks, the pull request is ready at once.
    let checks = client
        .get_required_checks(GetRequiredChecksRequest {
            pull_request_id: pr.pull_request_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(
        (
            checks.state.as_str(),
            checks.head_sha.as_str(),
            checks.checks.len()
        ),
        ("none", commit.commit_sha.as_str(), 0)
    );

    let status = client
        .review_pull_request(ReviewPullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
            action: ReviewAction::Unspecified.into(),
            reviewer: "alice".into(),
            comments: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("review action 0"),
        "{}",
        status.message()
    );
    let status = client
        .merge_pull_request(MergePullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("nothing is merged without an approval"),
        "{}",
        status.message()
    );

    let reviewed = client
        .review_pull_request(as_alice(ReviewPullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
            action: ReviewAction::Approve.into(),
            reviewer: "alice".into(),
            comments: vec![ReviewComment {
                file: "greet.txt".into(),
                line: 1,
                body: "Nice".into(),
            }],
        }))
        .await?
        .into_inner();
    assert_eq!(reviewed.state, "approved");
    assert_eq!(reviewed.reviews.len(), 1);
    assert_eq!(reviewed.reviews[0].action(), ReviewAction::Approve);
    assert_eq!(reviewed.reviews[0].comments[0].body, "Nice");

    let merged = client
        .merge_pull_request(as_alice(MergePullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
        }))
        .await?
        .into_inner();
    assert_eq!(merged.state, "merged");
    // Who reviewed and merged is in the audit log, in order, once each.
    let records = served.audit.records(None, 10).await?;
    let trail: Vec<(String, String)> = records
        .iter()
        .map(|record| (record.actor.clone(), record.action.clone()))
        .collect();
    assert_eq!(
        trail,
        [
            ("alice".to_owned(), "pull_request.reviewed".to_owned()),
            ("alice".to_owned(), "pull_request.merged".to_owned()),
        ]
    );
    let reviewed_details: serde_json::Value = serde_json::from_str(&records[0].details_json)?;
    assert_eq!(reviewed_details["review"], "Approve");
    assert_eq!(reviewed_details["comments"], 1);
    let fetched = client
        .get_pull_request(GetPullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(fetched, merged);
    let listed = client
        .list_pull_requests(ListPullRequestsRequest {
            repository_id: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(listed.pull_requests.len(), 1);
    assert_eq!(
        client
            .get_repository(GetRepositoryRequest { repository_id: id })
            .await?
            .into_inner()
            .head_sha,
        commit.commit_sha
    );
    Ok(())
}

/// The status code of a call that must fail.
fn code<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(response) => panic!("expected an error, got {response:?}"),
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn maps_bad_requests_to_status_codes() -> anyhow::Result<()> {
    let served = serve().await?;
    let mut client = GitHubClient::new(served.channel.clone());
    let id = served.repository_id.clone();

    assert_eq!(
        code(
            client
                .get_repository(GetRepositoryRequest {
                    repository_id: "../x".into()
                })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            client
                .get_repository(GetRepositoryRequest {
                    repository_id: "no/such".into()
                })
                .await
        ),
        Code::NotFound
    );
    let branch = |name: &str| CreateBranchRequest {
        repository_id: id.clone(),
        branch: name.into(),
        from_sha: String::new(),
    };
    assert_eq!(
        code(client.create_branch(branch("a b")).await),
        Code::InvalidArgument
    );
    client.create_branch(branch("work")).await?;
    assert_eq!(
        code(client.create_branch(branch("work")).await),
        Code::AlreadyExists
    );

    let commit = |changes: Vec<FileChange>| CommitChangesRequest {
        repository_id: id.clone(),
        branch: "work".into(),
        message: "m".into(),
        changes,
    };
    assert_eq!(
        code(client.commit_changes(commit(vec![])).await),
        Code::InvalidArgument
    );
    let no_change = FileChange {
        path: "a.txt".into(),
        change: None,
    };
    let status = client
        .commit_changes(commit(vec![no_change]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("neither content nor deleted"),
        "{}",
        status.message()
    );
    let escape = FileChange {
        path: "../etc/passwd".into(),
        change: Some(Change::Content(b"x".to_vec())),
    };
    assert_eq!(
        code(client.commit_changes(commit(vec![escape])).await),
        Code::InvalidArgument
    );
    let missing = FileChange {
        path: "missing.txt".into(),
        change: Some(Change::Deleted(true)),
    };
    assert_eq!(
        code(client.commit_changes(commit(vec![missing])).await),
        Code::NotFound
    );

    let open = OpenPullRequestRequest {
        repository_id: id.clone(),
        head_branch: "work".into(),
        base_branch: "main".into(),
        title: "t".into(),
        body: String::new(),
        task_id: String::new(),
        draft: false,
    };
    // `work` has no commits `main` lacks yet.
    assert_eq!(
        code(client.open_pull_request(open).await),
        Code::FailedPrecondition
    );
    let get = |id: &str| GetPullRequestRequest {
        pull_request_id: id.into(),
    };
    assert_eq!(
        code(client.get_pull_request(get("nope")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            client
                .get_pull_request(get(&uuid::Uuid::new_v4().to_string()))
                .await
        ),
        Code::NotFound
    );
    let review = ReviewPullRequestRequest {
        pull_request_id: uuid::Uuid::new_v4().to_string(),
        action: 42,
        reviewer: "bob".into(),
        comments: vec![],
    };
    assert_eq!(
        code(client.review_pull_request(review).await),
        Code::InvalidArgument
    );
    Ok(())
}

fn imported(path: &str, content: &str) -> ImportedFile {
    ImportedFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
        executable: false,
    }
}

fn import(repository_id: &str, files: Vec<ImportedFile>) -> ImportRepositoryRequest {
    ImportRepositoryRequest {
        repository_id: repository_id.into(),
        default_branch: String::new(),
        message: String::new(),
        files,
    }
}

#[tokio::test]
async fn imports_a_repository_once_and_answers_a_repeat_with_it() -> anyhow::Result<()> {
    let served = serve().await?;
    let mut client = GitHubClient::new(served.channel.clone());
    let files = vec![
        imported("calc.py", "def add(a, b):\n    return a - b\n"),
        ImportedFile {
            executable: true,
            ..imported("scripts/check.sh", "#!/bin/sh\npytest -q\n")
        },
    ];
    let first = client
        .import_repository(import("demo/calculator", files.clone()))
        .await?
        .into_inner();
    assert!(first.created);
    let repository = first.repository.expect("the import answers its repository");
    assert_eq!(repository.repository_id, "demo/calculator");
    assert_eq!(repository.default_branch, "main");
    assert_eq!(repository.head_sha.len(), 40, "{}", repository.head_sha);
    let fetched = client
        .get_repository(GetRepositoryRequest {
            repository_id: "demo/calculator".into(),
        })
        .await?
        .into_inner();
    assert_eq!(fetched, repository);
    // The first commit is the forge's, with the default message, and holds the files as sent.
    let bare = std::path::Path::new(&repository.clone_url);
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let output = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(bare)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()?;
        anyhow::ensure!(output.status.success(), "git {args:?} failed");
        Ok(String::from_utf8(output.stdout)?)
    };
    assert_eq!(
        git(&["log", "--format=%s <%ae>", "main"])?,
        format!("Import demo/calculator <{}>\n", cap_forge::BOT_EMAIL)
    );
    assert_eq!(
        git(&["show", "main:calc.py"])?,
        "def add(a, b):\n    return a - b\n"
    );
    assert!(
        git(&["ls-tree", "main", "scripts/check.sh"])?.starts_with("100755 "),
        "the executable bit is kept"
    );

    // The same files again (as `cap up` sends them on every start): the same repository.
    let again = client
        .import_repository(import("demo/calculator", files.clone()))
        .await?
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.repository, Some(repository.clone()));

    // Other files under the same name: ALREADY_EXISTS, and the repository is left as it was.
    let status = client
        .import_repository(import(
            "demo/calculator",
            vec![imported("calc.py", "other\n")],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains("demo/calculator already exists"),
        "{}",
        status.message()
    );
    // So does another default branch.
    let status = client
        .import_repository(ImportRepositoryRequest {
            default_branch: "trunk".into(),
            ..import("demo/calculator", files.clone())
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(
        client
            .get_repository(GetRepositoryRequest {
                repository_id: "demo/calculator".into(),
            })
            .await?
            .into_inner(),
        repository
    );

    // A branch and message of the caller's choosing.
    let custom = client
        .import_repository(ImportRepositoryRequest {
            default_branch: "trunk".into(),
            message: "Seed the demo".into(),
            ..import("demo/other", files)
        })
        .await?
        .into_inner();
    assert!(custom.created);
    let custom = custom
        .repository
        .expect("the import answers its repository");
    assert_eq!(custom.default_branch, "trunk");
    let bare = std::path::Path::new(&custom.clone_url);
    let output = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["log", "--format=%s", "trunk"])
        .output()?;
    assert_eq!(String::from_utf8(output.stdout)?, "Seed the demo\n");
    Ok(())
}

#[tokio::test]
async fn refuses_bad_imports_naming_what_is_wrong() -> anyhow::Result<()> {
    let served = serve().await?;
    let mut client = GitHubClient::new(served.channel.clone());
    let one = || vec![imported("a.txt", "a\n")];
    let cases = [
        (import("", one()), "invalid repository id \"\""),
        (
            import("no-slash", one()),
            "invalid repository id \"no-slash\"",
        ),
        (import("../etc", one()), "invalid repository id"),
        (
            ImportRepositoryRequest {
                default_branch: "a..b".into(),
                ..import("acme/new", one())
            },
            "invalid branch name \"a..b\"",
        ),
        (
            ImportRepositoryRequest {
                message: "bad\0message".into(),
                ..import("acme/new", one())
            },
            "invalid commit message",
        ),
        (
            import("acme/new", vec![]),
            "invalid files: an import needs at least one file",
        ),
        (
            import("acme/new", vec![imported("../escape", "x")]),
            "invalid path \"../escape\"",
        ),
        (
            import("acme/new", vec![imported(".git/hooks/post-update", "x")]),
            "invalid path \".git/hooks/post-update\"",
        ),
        (
            import("acme/new", vec![imported("/etc/passwd", "x")]),
            "invalid path \"/etc/passwd\"",
        ),
        (
            import("acme/new", vec![imported("a", "1"), imported("a", "2")]),
            "invalid path \"a\": listed more than once",
        ),
        (
            import("acme/new", vec![imported("a", "1"), imported("a/b", "2")]),
            "invalid path \"a/b\"",
        ),
    ];
    for (request, expected) in cases {
        let status = client.import_repository(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(
            status.message().contains(expected),
            "{:?} does not contain {expected:?}",
            status.message()
        );
    }
    assert_eq!(
        code(
            client
                .get_repository(GetRepositoryRequest {
                    repository_id: "acme/new".into()
                })
                .await
        ),
        Code::NotFound
    );
    Ok(())
}

/// A request acting for `alice`, as the gateway sends it.
fn as_alice<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        cap_proto::ACTOR_METADATA,
        tonic::metadata::MetadataValue::from_static("alice"),
    );
    request
}

/// The service with `--backend github` against the GitHub API stand-in.
struct ServedGitHub {
    _dir: tempfile::TempDir,
    standin: cap_testkit::github::GitHubStandIn,
    forge: cap_forge::github::GitHubForge,
    channel: Channel,
    audit: cap_audit::AuditLog,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ServedGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_github() -> anyhow::Result<ServedGitHub> {
    use cap_testkit::git::git;
    let dir = tempfile::tempdir()?;
    let (key, public) = cap_testkit::github::generate_app_key(dir.path(), "app");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("README.md"), "hello\n")?;
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "Initial"]);
    let remote = dir.path().join("remote");
    std::fs::create_dir_all(remote.join("octo"))?;
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap_or_default(),
            remote.join("octo/demo.git").to_str().unwrap_or_default(),
        ],
    );
    let standin = cap_testkit::github::GitHubStandIn::start(99, public, remote).await?;
    standin.add_repository("octo/demo", cap_testkit::github::RepoSetup::new());

    // The service's own flags, as an operator gives them.
    let config = <cap_github_service::Config as clap::Parser>::try_parse_from([
        "cap-github",
        "--data-dir",
        dir.path().to_str().unwrap_or_default(),
        "--backend",
        "github",
        "--github-app-id",
        "99",
        "--github-app-key-file",
        key.to_str().unwrap_or_default(),
        "--github-api-url",
        standin.url(),
    ])?;
    let mut github = config.github_config()?;
    github.retry.backoff = std::time::Duration::from_millis(5);
    let forge = cap_forge::github::GitHubForge::new(github)?;

    let pki = cap_mtls::Pki::ensure_dev(dir.path().join("pki"))?;
    let audit = cap_audit::AuditLog::open(
        &cap_storage::sqlite_url(&dir.path().join("github.db")),
        None,
        cap_audit::AuditConfig::default(),
    )
    .await?;
    let router =
        cap_github_service::router(&pki.service("github")?, forge.clone(), audit.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = cap_runtime::https_url(listener.local_addr()?);
    let server = tokio::spawn(async move {
        if let Err(error) = router
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
        {
            eprintln!("server stopped: {error}");
        }
    });
    let channel = pki.service("gateway")?.channel(&url)?;
    Ok(ServedGitHub {
        _dir: dir,
        standin,
        forge,
        channel,
        audit,
        server,
    })
}

#[tokio::test]
async fn the_github_backend_serves_the_same_contract() -> anyhow::Result<()> {
    let served = serve_github().await?;
    let mut client = GitHubClient::new(served.channel.clone());
    let id = "octo/demo".to_owned();
    let repo = client
        .get_repository(GetRepositoryRequest {
            repository_id: id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(repo.default_branch, "main");
    let branch = "coding-assistant/20260101000000-greet".to_owned();
    client
        .create_branch(CreateBranchRequest {
            repository_id: id.clone(),
            branch: branch.clone(),
            from_sha: String::new(),
        })
        .await?;
    let commit = client
        .commit_changes(CommitChangesRequest {
            repository_id: id.clone(),
            branch: branch.clone(),
            message: "Greet".into(),
            changes: vec![FileChange {
                path: "greet.txt".into(),
                change: Some(Change::Content(b"hi\n".to_vec())),
            }],
        })
        .await?
        .into_inner();
    let pr = client
        .open_pull_request(OpenPullRequestRequest {
            repository_id: id.clone(),
            head_branch: branch.clone(),
            base_branch: "main".into(),
            title: "Greet".into(),
            body: "Adds a greeting".into(),
            task_id: "task-9".into(),
            // A draft on GitHub too: the flag reaches GitHub and comes back.
            draft: true,
        })
        .await?
        .into_inner();
    assert!(pr.draft);
    assert_eq!(
        (
            pr.pull_request_id.as_str(),
            pr.state.as_str(),
            pr.task_id.as_str()
        ),
        ("octo:demo:1", "open", "task-9")
    );
    assert_eq!(pr.head_sha, commit.commit_sha);
    // `main` is not protected: no checks required.
    let checks = client
        .get_required_checks(GetRequiredChecksRequest {
            pull_request_id: pr.pull_request_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(
        (checks.state.as_str(), checks.head_sha.as_str()),
        ("none", commit.commit_sha.as_str())
    );
    // Protected with a required check that failed on the head: the failure and its summary.
    served.standin.add_repository(
        "octo/demo",
        cap_testkit::github::RepoSetup {
            protected: vec![("main".into(), vec!["ci".into()])],
            ..cap_testkit::github::RepoSetup::new()
        },
    );
    served.standin.set_checks(
        "octo/demo",
        vec![cap_testkit::github::ScriptedCheck::run(
            "ci",
            "failure",
            "test_greet failed",
        )],
    );
    let checks = client
        .get_required_checks(GetRequiredChecksRequest {
            pull_request_id: pr.pull_request_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(checks.state, "failure");
    assert_eq!(
        checks
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.state.as_str(), c.summary.as_str()))
            .collect::<Vec<_>>(),
        [("ci", "failure", "ci: failure: test_greet failed")]
    );
    served
        .standin
        .add_repository("octo/demo", cap_testkit::github::RepoSetup::new());
    client
        .review_pull_request(ReviewPullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
            action: ReviewAction::Approve.into(),
            reviewer: "alice".into(),
            comments: Vec::new(),
        })
        .await?;
    let merged = client
        .merge_pull_request(MergePullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(merged.state, "merged");
    // Reviews and merges on GitHub are audited like the local forge's.
    let actions: Vec<String> = served
        .audit
        .records(Some("task-9"), 10)
        .await?
        .into_iter()
        .map(|record| record.action)
        .collect();
    assert_eq!(actions, ["pull_request.reviewed", "pull_request.merged"]);

    let refused = client
        .import_repository(ImportRepositoryRequest {
            repository_id: "octo/new".into(),
            default_branch: String::new(),
            message: String::new(),
            files: vec![ImportedFile {
                path: "a".into(),
                content: b"a".to_vec(),
                executable: false,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);

    // GitHub down: retried, then a clear UNAVAILABLE naming GitHub.
    for _ in 0..4 {
        served.standin.push_fault(502, &[]);
    }
    let down = client
        .get_pull_request(GetPullRequestRequest {
            pull_request_id: pr.pull_request_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(
        down.message().starts_with("GitHub is unavailable"),
        "{down:?}"
    );
    let listed = client
        .list_pull_requests(ListPullRequestsRequest {
            repository_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(listed.code(), Code::InvalidArgument);
    Ok(())
}

fn signed(
    secret: &[u8],
    event: &str,
    delivery: &str,
    body: &[u8],
) -> anyhow::Result<axum::http::HeaderMap> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag: String = ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-github-event", event.parse()?);
    headers.insert("x-github-delivery", delivery.parse()?);
    headers.insert("x-hub-signature-256", format!("sha256={tag}").parse()?);
    Ok(headers)
}

#[tokio::test]
async fn webhook_deliveries_are_verified_deduplicated_and_audited() -> anyhow::Result<()> {
    use axum::http::StatusCode;
    let served = serve_github().await?;
    let mut client = GitHubClient::new(served.channel.clone());
    let branch = "coding-assistant/20260101000000-hook".to_owned();
    client
        .create_branch(CreateBranchRequest {
            repository_id: "octo/demo".into(),
            branch: branch.clone(),
            from_sha: String::new(),
        })
        .await?;
    client
        .commit_changes(CommitChangesRequest {
            repository_id: "octo/demo".into(),
            branch: branch.clone(),
            message: "Hook".into(),
            changes: vec![FileChange {
                path: "hook.txt".into(),
                change: Some(Change::Content(b"hi\n".to_vec())),
            }],
        })
        .await?;
    let pr = client
        .open_pull_request(OpenPullRequestRequest {
            repository_id: "octo/demo".into(),
            head_branch: branch,
            base_branch: "main".into(),
            title: "Hook".into(),
            body: "Hooked".into(),
            task_id: "task-hook".into(),
            ..Default::default()
        })
        .await?
        .into_inner();

    let dir = tempfile::tempdir()?;
    let secret = format!("hook-secret-{}", uuid::Uuid::new_v4()).into_bytes();
    let deliveries = cap_forge::webhook::Deliveries::open(&cap_storage::sqlite_url(
        &dir.path().join("hooks.db"),
    ))
    .await?;
    let state = cap_github_service::webhook::WebhookState::new(
        secret.clone(),
        deliveries,
        served.forge.clone().into(),
        served.audit.clone(),
    );
    let merged = serde_json::json!({
        "action": "closed",
        "pull_request": {"number": pr.number, "merged": true},
        "repository": {"full_name": "octo/demo"},
        "sender": {"login": "mona"},
    })
    .to_string();
    let handle = |headers: axum::http::HeaderMap, body: String| {
        let state = state.clone();
        async move { cap_github_service::webhook::handle(&state, &headers, body.as_bytes()).await }
    };

    // A wrong secret or no signature: 401, nothing recorded.
    let (status, text) = handle(
        signed(b"wrong", "pull_request", "d-1", merged.as_bytes())?,
        merged.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let mut unsigned = signed(&secret, "pull_request", "d-1", merged.as_bytes())?;
    unsigned.remove("x-hub-signature-256");
    let (status, _) = handle(unsigned, merged.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, text) = handle(
        signed(&secret, "pull_request", "d-1", merged.as_bytes())?,
        merged.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // The same delivery again (GitHub's redelivery): not acted on twice.
    let (status, text) = handle(
        signed(&secret, "pull_request", "d-1", merged.as_bytes())?,
        merged.clone(),
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, "delivery d-1 already handled")
    );
    let review = serde_json::json!({
        "action": "submitted",
        "review": {"state": "CHANGES_REQUESTED", "user": {"login": "rev"}},
        "pull_request": {"number": pr.number},
        "repository": {"full_name": "octo/demo"},
        "sender": {"login": "rev"},
    })
    .to_string();
    let (status, text) = handle(
        signed(&secret, "pull_request_review", "d-2", review.as_bytes())?,
        review,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");

    let records = served.audit.records(Some("task-hook"), 10).await?;
    let seen: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.actor.clone(), r.action.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("github:mona".to_owned(), "pull_request.merged".to_owned()),
            ("github:rev".to_owned(), "pull_request.reviewed".to_owned())
        ]
    );
    Ok(())
}
