//! Pull requests and reviews in the SQL store; merges in the bare repository.
//!
//! Writes are compare-and-swap on both sides: the state row is updated only from the state it
//! was read in, and refs only from the commit they were read at, so two reviewers or a review
//! racing a merge cannot both win silently.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::repos::{branch_head, commit_tree, is_ancestor, resolve, update_ref};
use crate::{
    Error, Forge, PullRequest, PullRequestState, Result, Review, ReviewAction, ReviewComment,
    validate,
};
use cap_git::Git;

/// How often a write that lost a race is retried before giving up.
const ATTEMPTS: usize = 5;

const PR_COLUMNS: &str = "id, repository_id, number, title, body, head_branch, base_branch, \
     head_sha, base_sha, merge_sha, state, draft, task_id, created_at_ms, updated_at_ms";

/// States in which a pull request still follows its head branch.
const ACTIVE_STATES: &str = "('open', 'approved', 'changes_requested')";

impl Forge {
    /// Opens a pull request from `head_branch` into `base_branch`. The diff is taken against
    /// the base branch's head now (`base_sha`). While one is open for the same branches, the
    /// task that opened it gets it back; anyone else gets [`Error::PullRequestExists`].
    pub async fn open_pull_request(
        &self,
        repository_id: &str,
        head_branch: &str,
        base_branch: &str,
        title: &str,
        body: &str,
        task_id: &str,
    ) -> Result<PullRequest> {
        self.open_as(
            repository_id,
            head_branch,
            base_branch,
            title,
            body,
            task_id,
            false,
        )
        .await
    }

    /// [`Forge::open_pull_request`], marked as a draft: a partial change handed to a human.
    pub async fn open_draft_pull_request(
        &self,
        repository_id: &str,
        head_branch: &str,
        base_branch: &str,
        title: &str,
        body: &str,
        task_id: &str,
    ) -> Result<PullRequest> {
        self.open_as(
            repository_id,
            head_branch,
            base_branch,
            title,
            body,
            task_id,
            true,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)] // the two public doors above name every one
    async fn open_as(
        &self,
        repository_id: &str,
        head_branch: &str,
        base_branch: &str,
        title: &str,
        body: &str,
        task_id: &str,
        draft: bool,
    ) -> Result<PullRequest> {
        let dir = self.existing_repository(repository_id)?;
        validate::branch(head_branch)?;
        validate::branch(base_branch)?;
        if head_branch == base_branch {
            return Err(Error::InvalidArgument {
                field: "head branch",
                reason: format!("{head_branch:?} is also the base branch"),
            });
        }
        validate::text("title", title)?;
        for (field, value) in [("body", body), ("task id", task_id)] {
            if value.contains('\0') {
                return Err(Error::InvalidArgument {
                    field,
                    reason: "must not contain NUL bytes".into(),
                });
            }
        }
        let head_sha = branch_head(&dir, repository_id, head_branch).await?;
        let base_sha = branch_head(&dir, repository_id, base_branch).await?;
        if is_ancestor(&dir, &head_sha, &base_sha).await? {
            return Err(Error::NoChanges(format!(
                "{head_branch:?} has no commits that {base_branch:?} lacks"
            )));
        }
        let existing = sqlx::query(&format!(
            "SELECT id, number, task_id FROM github_pull_requests WHERE repository_id = $1 \
             AND head_branch = $2 AND base_branch = $3 AND state IN {ACTIVE_STATES}"
        ))
        .bind(repository_id)
        .bind(head_branch)
        .bind(base_branch)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = existing {
            // The same task asking again is a caller that died (or lost the answer) after the
            // pull request was opened: it gets that one back, so a resumed run neither fails
            // nor opens a second (found by the chaos tests).
            let opened_by: Option<String> = row.try_get("task_id")?;
            if !task_id.is_empty() && opened_by.as_deref() == Some(task_id) {
                let id: String = row.try_get("id")?;
                tracing::info!(%repository_id, %id, %task_id, "pull request already open for this task");
                return self.full(self.load(&id).await?).await;
            }
            return Err(Error::PullRequestExists {
                id: row.try_get("id")?,
                number: number(row.try_get("number")?)?,
                head_branch: head_branch.to_owned(),
                base_branch: base_branch.to_owned(),
            });
        }
        for attempt in 1..=ATTEMPTS {
            let id = uuid::Uuid::new_v4().to_string();
            let now = cap_storage::now_ms();
            // One statement picks the next number and inserts, so SQLite serialises it; on
            // PostgreSQL a concurrent opener hits the unique (repository, number) and retries.
            let inserted = sqlx::query(
                "INSERT INTO github_pull_requests (id, repository_id, number, title, body, \
                 head_branch, base_branch, head_sha, base_sha, state, task_id, created_at_ms, \
                 updated_at_ms, draft) \
                 SELECT $1, $2, COALESCE(MAX(number), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11, $11, $12 FROM github_pull_requests WHERE repository_id = $2",
            )
            .bind(&id)
            .bind(repository_id)
            .bind(title)
            .bind(body)
            .bind(head_branch)
            .bind(base_branch)
            .bind(&head_sha)
            .bind(&base_sha)
            .bind(PullRequestState::Open.as_str())
            .bind(task_id)
            .bind(now)
            .bind(i64::from(draft))
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => {
                    let pr = self.full(self.load(&id).await?).await?;
                    tracing::info!(%repository_id, number = pr.number, id = %pr.pull_request_id, "opened pull request");
                    return Ok(pr);
                }
                Err(error) if attempt < ATTEMPTS && is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(Error::RefMoved {
            reference: format!("pull request numbers of {repository_id}"),
        })
    }

    /// The pull request `id`, with its reviews and diff.
    pub async fn get_pull_request(&self, id: &str) -> Result<PullRequest> {
        let id = pull_request_id(id)?;
        let pr = self.follow_head(self.load(&id).await?).await?;
        self.full(pr).await
    }

    /// The required checks of the pull request `id`: the local forge runs no CI, so none are
    /// ever required and a pull request is ready for review once opened.
    pub async fn required_checks(&self, id: &str) -> Result<crate::RequiredChecks> {
        let id = pull_request_id(id)?;
        let pr = self.follow_head(self.load(&id).await?).await?;
        Ok(crate::RequiredChecks::none(pr.head_sha))
    }

    /// Pull requests, newest first, of one repository or of all; without diffs and reviews.
    pub async fn list_pull_requests(
        &self,
        repository_id: Option<&str>,
    ) -> Result<Vec<PullRequest>> {
        let rows = match repository_id {
            Some(repository_id) => {
                validate::repository_id(repository_id)?;
                sqlx::query(&format!(
                    "SELECT {PR_COLUMNS} FROM github_pull_requests WHERE repository_id = $1 \
                     ORDER BY created_at_ms DESC, number DESC"
                ))
                .bind(repository_id)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {PR_COLUMNS} FROM github_pull_requests \
                     ORDER BY created_at_ms DESC, repository_id, number DESC"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut pulls = Vec::with_capacity(rows.len());
        for row in &rows {
            pulls.push(self.follow_head(self.pull_request_from_row(row)?).await?);
        }
        Ok(pulls)
    }

    /// Records a review and moves the pull request to the state the action leads to.
    /// A `rejected` or `merged` pull request takes no reviews.
    pub async fn review(
        &self,
        id: &str,
        action: ReviewAction,
        reviewer: &str,
        comments: Vec<ReviewComment>,
    ) -> Result<PullRequest> {
        let id = pull_request_id(id)?;
        validate::text("reviewer", reviewer)?;
        for comment in &comments {
            validate::path(&comment.file)?;
            validate::text("review comment body", &comment.body)?;
        }
        let comments_json =
            serde_json::to_string(&comments).map_err(|error| Error::InvalidArgument {
                field: "review comments",
                reason: error.to_string(),
            })?;
        for _ in 0..ATTEMPTS {
            let pr = self.follow_head(self.load(&id).await?).await?;
            if pr.state.is_closed() {
                return Err(Error::PullRequestClosed {
                    id,
                    state: pr.state,
                });
            }
            let now = cap_storage::now_ms();
            let review_id = uuid::Uuid::new_v4().to_string();
            let mut tx = cap_storage::begin_write(&self.pool, self.backend).await?;
            let inserted = sqlx::query(
                "INSERT INTO github_reviews (id, pull_request_id, seq, action, reviewer, \
                 comments_json, head_sha, created_at_ms) \
                 SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7 \
                 FROM github_reviews WHERE pull_request_id = $2",
            )
            .bind(&review_id)
            .bind(&id)
            .bind(action.as_str())
            .bind(reviewer)
            .bind(&comments_json)
            .bind(&pr.head_sha)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
            let updated = sqlx::query(
                "UPDATE github_pull_requests SET state = $1, updated_at_ms = $2 \
                 WHERE id = $3 AND state = $4 AND head_sha = $5",
            )
            .bind(action.resulting_state().as_str())
            .bind(now)
            .bind(&id)
            .bind(pr.state.as_str())
            .bind(&pr.head_sha)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                // Someone else reviewed, merged or pushed in between: read again.
                tx.rollback().await?;
                continue;
            }
            tx.commit().await?;
            tracing::info!(%id, %action, %reviewer, "reviewed pull request");
            return self.full(self.load(&id).await?).await;
        }
        Err(Error::RefMoved {
            reference: format!("pull request {id}"),
        })
    }

    /// Merges an approved pull request into its base branch: a fast-forward when possible,
    /// else a merge commit written with `git merge-tree`. Anything but `approved` is refused.
    pub async fn merge(&self, id: &str) -> Result<PullRequest> {
        let id = pull_request_id(id)?;
        for _ in 0..ATTEMPTS {
            let pr = self.follow_head(self.load(&id).await?).await?;
            match pr.state {
                PullRequestState::Approved => {}
                PullRequestState::Rejected | PullRequestState::Merged => {
                    return Err(Error::PullRequestClosed {
                        id,
                        state: pr.state,
                    });
                }
                PullRequestState::Open | PullRequestState::ChangesRequested => {
                    return Err(Error::NotApproved {
                        id,
                        state: pr.state,
                    });
                }
            }
            let dir = self.existing_repository(&pr.repository_id)?;
            let base_ref = format!("refs/heads/{}", pr.base_branch);
            let base = branch_head(&dir, &pr.repository_id, &pr.base_branch).await?;
            let head = pr.head_sha.as_str();
            let merged = if is_ancestor(&dir, head, &base).await? {
                // Already in the base (e.g. a merge whose record was not written): nothing to move.
                base.clone()
            } else if is_ancestor(&dir, &base, head).await? {
                head.to_owned()
            } else {
                let tree = merge_tree(&dir, &pr, &base).await?;
                let message = format!(
                    "Merge pull request #{} from {}\n\n{}\n",
                    pr.number, pr.head_branch, pr.title
                );
                commit_tree(&dir, &tree, &[&base, head], &message).await?
            };
            if merged != base {
                match update_ref(&dir, &base_ref, &merged, &base).await {
                    Ok(()) => {}
                    Err(Error::RefMoved { .. }) => continue,
                    Err(error) => return Err(error),
                }
            }
            let now = cap_storage::now_ms();
            let updated = sqlx::query(
                "UPDATE github_pull_requests SET state = $1, merge_sha = $2, updated_at_ms = $3 \
                 WHERE id = $4 AND state = $5 AND head_sha = $6",
            )
            .bind(PullRequestState::Merged.as_str())
            .bind(&merged)
            .bind(now)
            .bind(&id)
            .bind(PullRequestState::Approved.as_str())
            .bind(head)
            .execute(&self.pool)
            .await?;
            if updated.rows_affected() != 1 {
                // The base branch already holds the commits, so the record follows git even if
                // a review raced the merge.
                tracing::warn!(%id, "pull request changed while merging; recording the merge");
                sqlx::query(
                    "UPDATE github_pull_requests SET state = $1, merge_sha = $2, updated_at_ms = $3 \
                     WHERE id = $4",
                )
                .bind(PullRequestState::Merged.as_str())
                .bind(&merged)
                .bind(now)
                .bind(&id)
                .execute(&self.pool)
                .await?;
            }
            tracing::info!(%id, base = %pr.base_branch, commit = %merged, "merged pull request");
            return self.full(self.load(&id).await?).await;
        }
        Err(Error::RefMoved {
            reference: format!("refs/heads of pull request {id}"),
        })
    }

    /// The stored row of `id`, without diff and reviews.
    async fn load(&self, id: &str) -> Result<PullRequest> {
        let row = sqlx::query(&format!(
            "SELECT {PR_COLUMNS} FROM github_pull_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::PullRequestNotFound(id.to_owned()))?;
        self.pull_request_from_row(&row)
    }

    /// Moves an active pull request to its head branch's current commit. A new head makes an
    /// approval stale: the pull request goes back to `open`, so nothing unreviewed is merged.
    async fn follow_head(&self, pr: PullRequest) -> Result<PullRequest> {
        if pr.state.is_closed() {
            return Ok(pr);
        }
        let Ok(dir) = self.existing_repository(&pr.repository_id) else {
            return Ok(pr);
        };
        let Some(current) =
            resolve(&dir, &format!("refs/heads/{}^{{commit}}", pr.head_branch)).await?
        else {
            return Ok(pr);
        };
        if current == pr.head_sha {
            return Ok(pr);
        }
        let state = match pr.state {
            PullRequestState::Approved => PullRequestState::Open,
            other => other,
        };
        sqlx::query(
            "UPDATE github_pull_requests SET head_sha = $1, state = $2, updated_at_ms = $3 \
             WHERE id = $4 AND head_sha = $5 AND state = $6",
        )
        .bind(&current)
        .bind(state.as_str())
        .bind(cap_storage::now_ms())
        .bind(&pr.pull_request_id)
        .bind(&pr.head_sha)
        .bind(pr.state.as_str())
        .execute(&self.pool)
        .await?;
        tracing::info!(id = %pr.pull_request_id, head = %current, "pull request follows its head branch");
        self.load(&pr.pull_request_id).await
    }

    /// Adds the diff and the reviews.
    async fn full(&self, mut pr: PullRequest) -> Result<PullRequest> {
        pr.reviews = self.reviews(&pr.pull_request_id).await?;
        let dir = self.existing_repository(&pr.repository_id)?;
        let diff = Git::with_git_dir(&dir)
            .args([
                "diff",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                &pr.base_sha,
                &pr.head_sha,
            ])
            .run()
            .await?;
        pr.diff = String::from_utf8_lossy(&diff.stdout).into_owned();
        Ok(pr)
    }

    async fn reviews(&self, id: &str) -> Result<Vec<Review>> {
        let rows = sqlx::query(
            "SELECT id, action, reviewer, comments_json, head_sha, created_at_ms \
             FROM github_reviews WHERE pull_request_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let action: String = row.try_get("action")?;
                let comments: String = row.try_get("comments_json")?;
                Ok(Review {
                    review_id: row.try_get("id")?,
                    action: action.parse().map_err(|_| Error::CorruptRecord {
                        what: "review action",
                        value: action,
                    })?,
                    reviewer: row.try_get("reviewer")?,
                    comments: serde_json::from_str(&comments).map_err(|_| {
                        Error::CorruptRecord {
                            what: "review comments",
                            value: comments,
                        }
                    })?,
                    head_sha: row.try_get("head_sha")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    fn pull_request_from_row(&self, row: &AnyRow) -> Result<PullRequest> {
        let id: String = row.try_get("id")?;
        let state: String = row.try_get("state")?;
        let draft: i64 = row.try_get("draft")?;
        Ok(PullRequest {
            url: format!("{}/#/pull-requests/{id}", self.public_url),
            repository_id: row.try_get("repository_id")?,
            number: number(row.try_get("number")?)?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            head_branch: row.try_get("head_branch")?,
            base_branch: row.try_get("base_branch")?,
            head_sha: row.try_get("head_sha")?,
            base_sha: row.try_get("base_sha")?,
            merge_sha: row.try_get("merge_sha")?,
            state: state.parse().map_err(|_| Error::CorruptRecord {
                what: "pull request state",
                value: state,
            })?,
            draft: draft != 0,
            task_id: row.try_get("task_id")?,
            diff: String::new(),
            reviews: Vec::new(),
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
            pull_request_id: id,
        })
    }
}

/// Writes the merged tree of `base` and the pull request's head, or reports the conflicts.
async fn merge_tree(dir: &std::path::Path, pr: &PullRequest, base: &str) -> Result<String> {
    let output = Git::with_git_dir(dir)
        .args([
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            base,
            &pr.head_sha,
        ])
        .output()
        .await?;
    let text = output.text();
    let mut lines = text.lines();
    match (output.code(), lines.next()) {
        (Some(0), Some(tree)) if !tree.is_empty() => Ok(tree.to_owned()),
        (Some(1), Some(_)) => {
            let mut files: Vec<String> = lines
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect();
            files.dedup();
            Err(Error::MergeConflict {
                id: pr.pull_request_id.clone(),
                base_branch: pr.base_branch.clone(),
                files,
            })
        }
        _ => Err(output.error().into()),
    }
}

/// Checks and normalises a pull request id (a UUID).
fn pull_request_id(id: &str) -> Result<String> {
    uuid::Uuid::parse_str(id)
        .map(|uuid| uuid.to_string())
        .map_err(|_| Error::InvalidArgument {
            field: "pull request id",
            reason: format!("{id:?} is not a UUID"),
        })
}

fn number(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::CorruptRecord {
        what: "pull request number",
        value: value.to_string(),
    })
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_unique_violation())
}
