//! Pull requests, reviews and merges, on SQLite and on PostgreSQL.

use cap_forge::{Error, FileChange, PullRequestState, ReviewAction, ReviewComment};
use pretty_assertions::assert_eq;

use super::support::{Db, Fixture, forge, git_text, on_both_stores, sample_repo};

on_both_stores!(
    pull_request_flow,
    open_refuses_bad_requests,
    the_same_task_opening_again_gets_its_pull_request,
    drafts_are_stored_and_shown_as_drafts,
    rejected_pull_requests_are_closed,
    merges_diverged_branches_with_a_merge_commit,
    reports_merge_conflicts,
    new_head_commits_make_approvals_stale,
    bad_pull_request_ids,
);

/// A repository with branch `branch` one commit ahead of `main`, changing README.md.
async fn repo_with_change(fx: &Fixture, branch: &str) -> anyhow::Result<(String, String)> {
    let id = sample_repo(fx).await?;
    let head = fx.forge.create_branch(&id, branch, "").await?;
    let _ = head;
    let commit = fx
        .forge
        .commit_changes(
            &id,
            branch,
            "Update README",
            vec![FileChange::write("README.md", "hello\nnew line\n")],
        )
        .await?;
    Ok((id, commit))
}

fn comment(file: &str, line: u32, body: &str) -> ReviewComment {
    ReviewComment {
        file: file.to_owned(),
        line,
        body: body.to_owned(),
    }
}

async fn pull_request_flow(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, commit) = repo_with_change(&fx, "coding-assistant/1-readme").await?;
    let base = fx.forge.get_repository(&id).await?.head_sha;

    let pr = fx
        .forge
        .open_pull_request(
            &id,
            "coding-assistant/1-readme",
            "main",
            "Update README",
            "Body",
            "task-1",
        )
        .await?;
    assert_eq!(pr.number, 1);
    assert_eq!(pr.repository_id, id);
    assert_eq!(pr.state, PullRequestState::Open);
    assert_eq!(
        (pr.head_sha.as_str(), pr.base_sha.as_str()),
        (commit.as_str(), base.as_str())
    );
    assert_eq!(
        pr.url,
        format!(
            "http://127.0.0.1:8080/#/pull-requests/{}",
            pr.pull_request_id
        )
    );
    assert_eq!(
        (pr.title.as_str(), pr.body.as_str(), pr.task_id.as_str()),
        ("Update README", "Body", "task-1")
    );
    assert!(
        pr.diff.contains("diff --git a/README.md b/README.md"),
        "{}",
        pr.diff
    );
    assert!(pr.diff.contains("\n-old line\n+new line\n"), "{}", pr.diff);
    assert!(pr.reviews.is_empty());
    assert_eq!(fx.forge.get_pull_request(&pr.pull_request_id).await?, pr);
    assert_eq!(
        fx.forge
            .get_pull_request(&pr.pull_request_id.to_uppercase())
            .await?,
        pr
    );

    let listed = fx.forge.list_pull_requests(Some(&id)).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].pull_request_id, pr.pull_request_id);
    assert!(listed[0].diff.is_empty() && listed[0].reviews.is_empty());
    let all = fx.forge.list_pull_requests(None).await?;
    assert!(all.iter().any(|p| p.pull_request_id == pr.pull_request_id));

    // Nothing is merged without an approval.
    let err = fx.forge.merge(&pr.pull_request_id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pull request {} is open: nothing is merged without an approval",
            pr.pull_request_id
        )
    );
    let changes = fx
        .forge
        .review(
            &pr.pull_request_id,
            ReviewAction::RequestChanges,
            "alice",
            vec![
                comment("README.md", 2, "Say more"),
                comment("README.md", 0, "Whole file"),
            ],
        )
        .await?;
    assert_eq!(changes.state, PullRequestState::ChangesRequested);
    assert_eq!(changes.reviews.len(), 1);
    assert_eq!(changes.reviews[0].action, ReviewAction::RequestChanges);
    assert_eq!(changes.reviews[0].reviewer, "alice");
    assert_eq!(changes.reviews[0].head_sha, commit);
    assert_eq!(
        changes.reviews[0].comments,
        vec![
            comment("README.md", 2, "Say more"),
            comment("README.md", 0, "Whole file")
        ]
    );
    let err = fx.forge.merge(&pr.pull_request_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotApproved {
                state: PullRequestState::ChangesRequested,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        fx.forge.get_repository(&id).await?.head_sha,
        base,
        "base untouched"
    );

    let approved = fx
        .forge
        .review(&pr.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    assert_eq!(approved.state, PullRequestState::Approved);
    assert_eq!(
        approved
            .reviews
            .iter()
            .map(|r| (r.action, r.reviewer.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (ReviewAction::RequestChanges, "alice"),
            (ReviewAction::Approve, "bob")
        ]
    );

    let merged = fx.forge.merge(&pr.pull_request_id).await?;
    assert_eq!(merged.state, PullRequestState::Merged);
    assert_eq!(
        merged.merge_sha.as_deref(),
        Some(commit.as_str()),
        "fast-forward"
    );
    assert_eq!(fx.forge.get_repository(&id).await?.head_sha, commit);
    assert_eq!(merged.diff, pr.diff, "the diff stays base_sha..head_sha");

    let err = fx.forge.merge(&pr.pull_request_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::PullRequestClosed {
                state: PullRequestState::Merged,
                ..
            }
        ),
        "{err:?}"
    );
    let err = fx
        .forge
        .review(&pr.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("pull request {} is merged and closed", pr.pull_request_id)
    );

    // Numbers count per repository.
    fx.forge.create_branch(&id, "second", "").await?;
    fx.forge
        .commit_changes(
            &id,
            "second",
            "Two",
            vec![FileChange::write("two.txt", "2\n")],
        )
        .await?;
    let second = fx
        .forge
        .open_pull_request(&id, "second", "main", "Second", "", "")
        .await?;
    assert_eq!(second.number, 2);
    let (other, _) = repo_with_change(&fx, "b").await?;
    assert_eq!(
        fx.forge
            .open_pull_request(&other, "b", "main", "Other", "", "")
            .await?
            .number,
        1
    );
    Ok(())
}

async fn open_refuses_bad_requests(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, _) = repo_with_change(&fx, "work").await?;
    let open = |head: &'static str, base: &'static str, title: &'static str| {
        let id = id.clone();
        let forge = fx.forge.clone();
        async move {
            forge
                .open_pull_request(&id, head, base, title, "", "")
                .await
        }
    };
    let err = open("work", "work", "t").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "head branch",
                ..
            }
        ),
        "{err:?}"
    );
    let err = open("work", "main", " ").await.unwrap_err();
    assert_eq!(err.to_string(), "invalid title: must not be empty");
    let err = open("missing", "main", "t").await.unwrap_err();
    assert!(matches!(err, Error::BranchNotFound { .. }), "{err:?}");
    let err = open("work", "a..b", "t").await.unwrap_err();
    assert!(matches!(err, Error::InvalidBranch { .. }), "{err:?}");
    // `main` has nothing `work` lacks.
    let err = open("main", "work", "t").await.unwrap_err();
    assert!(matches!(err, Error::NoChanges(_)), "{err:?}");
    let err = fx
        .forge
        .open_pull_request("no/repo", "work", "main", "t", "", "")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RepositoryNotFound(_)), "{err:?}");

    let pr = open("work", "main", "t").await?;
    let err = open("work", "main", "again").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pull request #1 ({}) is already open for work -> main",
            pr.pull_request_id
        )
    );
    assert_eq!(
        fx.forge.list_pull_requests(Some(&id)).await?.len(),
        1,
        "refusals store nothing"
    );
    let err = fx
        .forge
        .list_pull_requests(Some("bad id"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRepositoryId { .. }), "{err:?}");
    Ok(())
}

/// A task resumed after its supervisor died asks again for the pull request the forge opened
/// for it: it gets that one back; any other caller is still refused.
async fn the_same_task_opening_again_gets_its_pull_request(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, _) = repo_with_change(&fx, "work").await?;
    let first = fx
        .forge
        .open_pull_request(&id, "work", "main", "t", "", "task-1")
        .await?;
    let again = fx
        .forge
        .open_pull_request(&id, "work", "main", "t", "", "task-1")
        .await?;
    assert_eq!(again.pull_request_id, first.pull_request_id);
    assert_eq!(again.number, 1);
    for other_task in ["task-2", ""] {
        let err = fx
            .forge
            .open_pull_request(&id, "work", "main", "t", "", other_task)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PullRequestExists { .. }), "{err:?}");
    }
    assert_eq!(fx.forge.list_pull_requests(Some(&id)).await?.len(), 1);
    Ok(())
}

/// A draft (a partial change handed to a human) is kept as one: read back, listed, and given
/// back to its task as a draft; a plain pull request is not one.
async fn drafts_are_stored_and_shown_as_drafts(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, _) = repo_with_change(&fx, "partial").await?;
    let draft = fx
        .forge
        .open_draft_pull_request(&id, "partial", "main", "Partial", "Hand-off", "task-1")
        .await?;
    assert!(draft.draft);
    assert_eq!(draft.state, PullRequestState::Open);
    assert_eq!(
        fx.forge.get_pull_request(&draft.pull_request_id).await?,
        draft
    );
    let listed = fx.forge.list_pull_requests(Some(&id)).await?;
    assert_eq!(listed.iter().map(|pr| pr.draft).collect::<Vec<_>>(), [true]);
    let again = fx
        .forge
        .open_draft_pull_request(&id, "partial", "main", "Partial", "Hand-off", "task-1")
        .await?;
    assert_eq!(again.pull_request_id, draft.pull_request_id);
    assert!(again.draft);

    fx.forge.create_branch(&id, "whole", "").await?;
    fx.forge
        .commit_changes(
            &id,
            "whole",
            "Whole",
            vec![FileChange::write("OTHER.md", "x\n")],
        )
        .await?;
    let plain = fx
        .forge
        .open_pull_request(&id, "whole", "main", "Whole", "", "task-2")
        .await?;
    assert!(!plain.draft);
    assert!(
        !fx.forge
            .get_pull_request(&plain.pull_request_id)
            .await?
            .draft
    );
    Ok(())
}

async fn rejected_pull_requests_are_closed(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, _) = repo_with_change(&fx, "work").await?;
    let pr = fx
        .forge
        .open_pull_request(&id, "work", "main", "t", "", "")
        .await?;

    let err = fx
        .forge
        .review(&pr.pull_request_id, ReviewAction::Approve, " ", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid reviewer: must not be empty");
    let err = fx
        .forge
        .review(
            &pr.pull_request_id,
            ReviewAction::Approve,
            "bob",
            vec![comment("../x", 1, "b")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
    let err = fx
        .forge
        .review(
            &pr.pull_request_id,
            ReviewAction::Approve,
            "bob",
            vec![comment("a", 1, "")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "review comment body",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        fx.forge
            .get_pull_request(&pr.pull_request_id)
            .await?
            .reviews
            .is_empty()
    );

    let rejected = fx
        .forge
        .review(&pr.pull_request_id, ReviewAction::Reject, "carol", vec![])
        .await?;
    assert_eq!(rejected.state, PullRequestState::Rejected);
    for action in [
        ReviewAction::Approve,
        ReviewAction::RequestChanges,
        ReviewAction::Reject,
    ] {
        let err = fx
            .forge
            .review(&pr.pull_request_id, action, "bob", vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::PullRequestClosed {
                    state: PullRequestState::Rejected,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = fx.forge.merge(&pr.pull_request_id).await.unwrap_err();
    assert!(matches!(err, Error::PullRequestClosed { .. }), "{err:?}");
    assert_eq!(
        fx.forge
            .get_pull_request(&pr.pull_request_id)
            .await?
            .reviews
            .len(),
        1
    );
    // A rejected pull request does not block a new one for the same branches.
    let again = fx
        .forge
        .open_pull_request(&id, "work", "main", "t2", "", "")
        .await?;
    assert_eq!(again.number, 2);
    Ok(())
}

async fn merges_diverged_branches_with_a_merge_commit(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, first_head) = repo_with_change(&fx, "first").await?;
    let dir = fx.forge.get_repository(&id).await?.clone_url;
    fx.forge.create_branch(&id, "second", "").await?;
    let second_head = fx
        .forge
        .commit_changes(
            &id,
            "second",
            "Add file",
            vec![FileChange::write("src/two.rs", "pub fn two() {}\n")],
        )
        .await?;
    let first = fx
        .forge
        .open_pull_request(&id, "first", "main", "First", "", "")
        .await?;
    let second = fx
        .forge
        .open_pull_request(&id, "second", "main", "Second", "", "")
        .await?;
    fx.forge
        .review(&first.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    fx.forge
        .review(
            &second.pull_request_id,
            ReviewAction::Approve,
            "bob",
            vec![],
        )
        .await?;
    fx.forge.merge(&first.pull_request_id).await?;

    let merged = fx.forge.merge(&second.pull_request_id).await?;
    let merge_sha = merged.merge_sha.clone().unwrap_or_default();
    assert_eq!(fx.forge.get_repository(&id).await?.head_sha, merge_sha);
    assert_eq!(
        git_text(&dir, &["rev-list", "--parents", "-n1", &merge_sha])?,
        format!("{merge_sha} {first_head} {second_head}")
    );
    assert_eq!(
        git_text(&dir, &["log", "-1", "--format=%an|%s", &merge_sha])?,
        "coding-assistant[bot]|Merge pull request #2 from second"
    );
    assert_eq!(
        git_text(&dir, &["show", "main:README.md"])?,
        "hello\nnew line"
    );
    assert_eq!(
        git_text(&dir, &["show", "main:src/two.rs"])?,
        "pub fn two() {}"
    );
    Ok(())
}

async fn reports_merge_conflicts(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, _) = repo_with_change(&fx, "first").await?;
    fx.forge.create_branch(&id, "rival", "").await?;
    fx.forge
        .commit_changes(
            &id,
            "rival",
            "Rival",
            vec![FileChange::write("README.md", "hello\nrival line\n")],
        )
        .await?;
    let first = fx
        .forge
        .open_pull_request(&id, "first", "main", "First", "", "")
        .await?;
    let rival = fx
        .forge
        .open_pull_request(&id, "rival", "main", "Rival", "", "")
        .await?;
    fx.forge
        .review(&first.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    fx.forge
        .review(&rival.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    let main_after_first = fx
        .forge
        .merge(&first.pull_request_id)
        .await?
        .merge_sha
        .unwrap_or_default();

    let err = fx.forge.merge(&rival.pull_request_id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pull request {} conflicts with main in: README.md",
            rival.pull_request_id
        )
    );
    assert_eq!(
        fx.forge.get_repository(&id).await?.head_sha,
        main_after_first
    );
    assert_eq!(
        fx.forge
            .get_pull_request(&rival.pull_request_id)
            .await?
            .state,
        PullRequestState::Approved
    );
    Ok(())
}

async fn new_head_commits_make_approvals_stale(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let (id, first) = repo_with_change(&fx, "work").await?;
    let pr = fx
        .forge
        .open_pull_request(&id, "work", "main", "t", "", "")
        .await?;
    fx.forge
        .review(&pr.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    let pushed = fx
        .forge
        .commit_changes(
            &id,
            "work",
            "More",
            vec![FileChange::write("more.txt", "unreviewed\n")],
        )
        .await?;

    let current = fx.forge.get_pull_request(&pr.pull_request_id).await?;
    assert_eq!(current.head_sha, pushed);
    assert_eq!(
        current.state,
        PullRequestState::Open,
        "the approval was for {first}"
    );
    assert!(current.diff.contains("+unreviewed"), "{}", current.diff);
    let err = fx.forge.merge(&pr.pull_request_id).await.unwrap_err();
    assert!(matches!(err, Error::NotApproved { .. }), "{err:?}");

    let approved = fx
        .forge
        .review(&pr.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    assert_eq!(
        approved
            .reviews
            .iter()
            .map(|r| r.head_sha.as_str())
            .collect::<Vec<_>>(),
        vec![first.as_str(), pushed.as_str()]
    );
    assert_eq!(
        fx.forge.merge(&pr.pull_request_id).await?.merge_sha,
        Some(pushed)
    );
    Ok(())
}

async fn bad_pull_request_ids(db: Db) -> anyhow::Result<()> {
    let fx = forge(db).await?;
    let unknown = uuid::Uuid::new_v4().to_string();
    let err = fx.forge.get_pull_request(&unknown).await.unwrap_err();
    assert_eq!(err.to_string(), format!("pull request {unknown} not found"));
    let err = fx.forge.merge(&unknown).await.unwrap_err();
    assert!(matches!(err, Error::PullRequestNotFound(_)), "{err:?}");
    let err = fx
        .forge
        .review(&unknown, ReviewAction::Approve, "bob", vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PullRequestNotFound(_)), "{err:?}");
    for bad in ["", "1", "'; DROP TABLE github_pull_requests; --"] {
        let err = fx.forge.get_pull_request(bad).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    field: "pull request id",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    Ok(())
}
