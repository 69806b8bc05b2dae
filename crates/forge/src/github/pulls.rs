//! Pull requests on GitHub: opened from the template with CODEOWNERS reviewers and labels,
//! read back with their reviews and diff, reviewed and merged.

use super::*;

impl GitHubForge {
    // ---- pull requests ----

    /// Opens a pull request of `head_branch` into `base_branch`: the body put into the
    /// repository's template when it has one, the CODEOWNERS of the changed paths requested
    /// as reviewers, the configured labels set. A failure to request reviewers or set labels
    /// is logged, not fatal: the pull request exists by then.
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

    /// [`GitHubForge::open_pull_request`] as a draft (GitHub's own draft pull request): a
    /// partial change handed to a human.
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
        validate::repository_id(repository_id)?;
        validate::branch(head_branch)?;
        validate::branch(base_branch)?;
        validate::text("title", title)?;
        if task_id.contains("-->") || task_id.contains('\n') {
            return Err(Error::InvalidArgument {
                field: "task_id",
                reason: "must not hold `-->` or a line break".into(),
            });
        }
        let metadata = self.metadata(repository_id).await?;
        let mut text = match &metadata.pull_request_template {
            Some(template) => template::fill(template, body),
            None => body.trim().to_owned(),
        };
        if !task_id.is_empty() {
            text.push_str(&format!("\n\n{TASK_MARKER}{task_id}{MARKER_END}\n"));
        }
        let reply = self
            .call(
                repository_id,
                Method::POST,
                &format!("/repos/{repository_id}/pulls"),
                Some(serde_json::json!({
                    "title": title,
                    "head": head_branch,
                    "base": base_branch,
                    "body": text,
                    "draft": draft,
                })),
                api::JSON,
            )
            .await?;
        match reply.status {
            StatusCode::CREATED => {}
            StatusCode::UNPROCESSABLE_ENTITY if reply.message().contains("already exists") => {
                return self
                    .existing_pull(repository_id, head_branch, base_branch, task_id)
                    .await;
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                return Err(Error::GitHubRefused {
                    what: "opening the pull request".into(),
                    message: reply.message(),
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(Error::RepositoryNotFound(repository_id.to_owned()));
            }
            _ => return Err(reply.unexpected("pull request")),
        }
        let pull: json::Pull = reply.json("pull request")?;
        let number = pull.number;
        if let Some(codeowners) = &metadata.codeowners {
            self.request_reviewers(repository_id, number, codeowners)
                .await;
        }
        if !self.inner.labels.is_empty() {
            let reply = self
                .call(
                    repository_id,
                    Method::POST,
                    &format!("/repos/{repository_id}/issues/{number}/labels"),
                    Some(serde_json::json!({ "labels": self.inner.labels })),
                    api::JSON,
                )
                .await;
            match reply {
                Ok(reply) if reply.status == StatusCode::OK => {}
                Ok(reply) => {
                    tracing::warn!(%repository_id, number, status = %reply.status, message = %reply.message(), "labels not set")
                }
                Err(error) => {
                    tracing::warn!(%repository_id, number, error = %cap_errors::Chain(&error), "labels not set")
                }
            }
        }
        tracing::info!(%repository_id, number, "opened pull request on GitHub");
        self.get_pull_request(&pull_request_id(repository_id, number))
            .await
    }

    /// The open pull request of the same branches: the task that opened it gets it back (its
    /// first answer lost, or a retry after GitHub made it but answered 5xx), as on the local
    /// forge; anyone else gets [`Error::PullRequestExists`].
    async fn existing_pull(
        &self,
        repository_id: &str,
        head: &str,
        base: &str,
        task_id: &str,
    ) -> Result<PullRequest> {
        let (owner, _) = validate::repository_id(repository_id)?;
        let pulls: Vec<json::Pull> = self
            .get(
                repository_id,
                &format!("/repos/{repository_id}/pulls?state=open&head={owner}:{head}&base={base}"),
                "pull requests",
            )
            .await?
            .unwrap_or_default();
        let Some(pull) = pulls.into_iter().next() else {
            return Err(Error::GitHubRefused {
                what: "opening the pull request".into(),
                message: "GitHub says one already exists, but lists none".into(),
            });
        };
        let id = pull_request_id(repository_id, pull.number);
        let same_task =
            !task_id.is_empty() && pull.body.as_deref().and_then(task_of) == Some(task_id);
        if same_task {
            tracing::info!(%repository_id, %id, %task_id, "pull request already open for this task");
            return self.get_pull_request(&id).await;
        }
        Err(Error::PullRequestExists {
            id,
            number: pull.number,
            head_branch: head.to_owned(),
            base_branch: base.to_owned(),
        })
    }

    /// Requests the CODEOWNERS of the pull request's files as its reviewers.
    async fn request_reviewers(&self, repository_id: &str, number: u64, codeowners: &CodeOwners) {
        let outcome = async {
            let files: Vec<json::PullFile> = self
                .get_pages(
                    repository_id,
                    &format!("/repos/{repository_id}/pulls/{number}/files?per_page=100"),
                    "pull request files",
                )
                .await?
                .unwrap_or_default();
            let reviewers = codeowners.reviewers_for(
                files.iter().map(|file| file.filename.as_str()),
                /*author*/ "",
            );
            if reviewers.is_empty() {
                return Ok(reviewers);
            }
            let reply = self
                .call(
                    repository_id,
                    Method::POST,
                    &format!("/repos/{repository_id}/pulls/{number}/requested_reviewers"),
                    Some(serde_json::json!({
                        "reviewers": reviewers.users,
                        "team_reviewers": reviewers.teams,
                    })),
                    api::JSON,
                )
                .await?;
            if reply.status == StatusCode::CREATED {
                Ok(reviewers)
            } else {
                Err(reply.unexpected("requested reviewers"))
            }
        }
        .await;
        match outcome {
            Ok(reviewers) => {
                tracing::info!(%repository_id, number, users = ?reviewers.users, teams = ?reviewers.teams, codeowners = %codeowners.path, "requested code owners' review")
            }
            Err(error) => {
                tracing::warn!(%repository_id, number, error = %cap_errors::Chain(&error), "code owners not requested")
            }
        }
    }

    /// The pull request `owner:name:number`, with its diff and reviews.
    pub async fn get_pull_request(&self, id: &str) -> Result<PullRequest> {
        let (repository_id, number) = parse_pull_request_id(id)?;
        let pull: json::Pull = self
            .get(
                &repository_id,
                &format!("/repos/{repository_id}/pulls/{number}"),
                "pull request",
            )
            .await?
            .ok_or_else(|| Error::PullRequestNotFound(id.to_owned()))?;
        let diff = self
            .call(
                &repository_id,
                Method::GET,
                &format!("/repos/{repository_id}/pulls/{number}"),
                None,
                api::DIFF,
            )
            .await?;
        if diff.status != StatusCode::OK {
            return Err(diff.unexpected("pull request diff"));
        }
        let mut pr = self.pull_request(&repository_id, pull).await?;
        pr.diff = diff.body;
        Ok(pr)
    }

    /// The platform's pull requests of `repository_id` (those carrying a task marker), newest
    /// first, without their diffs (one more call each; [`Self::get_pull_request`] has it).
    pub async fn list_pull_requests(
        &self,
        repository_id: Option<&str>,
    ) -> Result<Vec<PullRequest>> {
        let Some(repository_id) = repository_id else {
            return Err(Error::InvalidArgument {
                field: "repository_id",
                reason: "the GitHub forge lists the pull requests of one repository at a time"
                    .into(),
            });
        };
        validate::repository_id(repository_id)?;
        let pulls: Vec<json::Pull> = self
            .get_pages(
                repository_id,
                &format!("/repos/{repository_id}/pulls?state=all&per_page=100"),
                "pull requests",
            )
            .await?
            .ok_or_else(|| Error::RepositoryNotFound(repository_id.to_owned()))?;
        let mut out = Vec::new();
        for pull in pulls {
            if pull.body.as_deref().and_then(task_of).is_some() {
                out.push(self.pull_request(repository_id, pull).await?);
            }
        }
        Ok(out)
    }

    /// A pull request from GitHub's answer and its reviews (no diff).
    async fn pull_request(&self, repository_id: &str, pull: json::Pull) -> Result<PullRequest> {
        let number = pull.number;
        let reviews: Vec<json::Review> = self
            .get_pages(
                repository_id,
                &format!("/repos/{repository_id}/pulls/{number}/reviews?per_page=100"),
                "reviews",
            )
            .await?
            .unwrap_or_default();
        let reviews: Vec<Review> = reviews.into_iter().filter_map(review_of).collect();
        let state = if pull.merged.unwrap_or(false) || pull.merged_at.is_some() {
            PullRequestState::Merged
        } else if pull.state == "closed" {
            PullRequestState::Rejected
        } else {
            match reviews.last() {
                None => PullRequestState::Open,
                // A new head makes an approval stale, as on the local forge: nothing
                // unreviewed is merged.
                Some(review)
                    if review.action == ReviewAction::Approve
                        && review.head_sha != pull.head.sha =>
                {
                    PullRequestState::Open
                }
                Some(review) => review.action.resulting_state(),
            }
        };
        let body = pull.body.unwrap_or_default();
        Ok(PullRequest {
            pull_request_id: pull_request_id(repository_id, number),
            repository_id: repository_id.to_owned(),
            number,
            title: pull.title,
            task_id: task_of(&body).unwrap_or_default().to_owned(),
            body,
            head_branch: pull.head.branch,
            base_branch: pull.base.branch,
            head_sha: pull.head.sha,
            base_sha: pull.base.sha,
            merge_sha: pull
                .merge_commit_sha
                .filter(|_| state == PullRequestState::Merged),
            state,
            diff: String::new(),
            reviews,
            url: pull.html_url,
            created_at_ms: auth::timestamp_ms(pull.created_at.as_deref()),
            updated_at_ms: auth::timestamp_ms(pull.updated_at.as_deref()),
            draft: pull.draft,
        })
    }

    /// Records a platform user's review on GitHub (a `COMMENT` review whose marker holds the
    /// verdict; line comments as review comments on the head); a rejection also closes the
    /// pull request.
    pub async fn review(
        &self,
        id: &str,
        action: ReviewAction,
        reviewer: &str,
        comments: Vec<ReviewComment>,
    ) -> Result<PullRequest> {
        validate::text("reviewer", reviewer)?;
        let pr = self.get_pull_request(id).await?;
        if pr.state.is_closed() {
            return Err(Error::PullRequestClosed {
                id: id.to_owned(),
                state: pr.state,
            });
        }
        let repository_id = &pr.repository_id;
        for comment in &comments {
            validate::path(&comment.file)?;
        }
        let marker = ReviewMarker {
            action: action.as_str().to_owned(),
            reviewer: reviewer.to_owned(),
            comments: comments.clone(),
        };
        let verdict = match action {
            ReviewAction::Approve => "Approved",
            ReviewAction::RequestChanges => "Changes requested",
            ReviewAction::Reject => "Rejected",
        };
        let mut body = format!("**{verdict}** by {reviewer} in the coding assistant.\n");
        for comment in comments.iter().filter(|c| c.line == 0) {
            body.push_str(&format!("\n- `{}`: {}\n", comment.file, comment.body));
        }
        body.push_str(&format!(
            "\n{REVIEW_MARKER}{}{MARKER_END}\n",
            marker.encode()?
        ));
        let line_comments: Vec<_> = comments
            .iter()
            .filter(|c| c.line > 0)
            .map(|c| serde_json::json!({ "path": c.file, "line": c.line, "side": "RIGHT", "body": c.body }))
            .collect();
        let reply = self
            .call(
                repository_id,
                Method::POST,
                &format!("/repos/{repository_id}/pulls/{}/reviews", pr.number),
                Some(serde_json::json!({
                    "commit_id": pr.head_sha,
                    "body": body,
                    "event": "COMMENT",
                    "comments": line_comments,
                })),
                api::JSON,
            )
            .await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::UNPROCESSABLE_ENTITY => {
                return Err(Error::GitHubRefused {
                    what: "the review".into(),
                    message: reply.message(),
                });
            }
            _ => return Err(reply.unexpected("review")),
        }
        if action == ReviewAction::Reject {
            let reply = self
                .call(
                    repository_id,
                    Method::PATCH,
                    &format!("/repos/{repository_id}/pulls/{}", pr.number),
                    Some(serde_json::json!({ "state": "closed" })),
                    api::JSON,
                )
                .await?;
            if reply.status != StatusCode::OK {
                return Err(reply.unexpected("closing the pull request"));
            }
        }
        tracing::info!(%id, %action, %reviewer, "reviewed pull request on GitHub");
        self.get_pull_request(id).await
    }

    /// Merges an approved pull request (a merge commit, only if the head is still the reviewed
    /// one); GitHub's own rules (required checks and reviews) may still refuse it.
    pub async fn merge(&self, id: &str) -> Result<PullRequest> {
        let pr = self.get_pull_request(id).await?;
        if pr.state.is_closed() {
            return Err(Error::PullRequestClosed {
                id: id.to_owned(),
                state: pr.state,
            });
        }
        if pr.state != PullRequestState::Approved {
            return Err(Error::NotApproved {
                id: id.to_owned(),
                state: pr.state,
            });
        }
        let repository_id = &pr.repository_id;
        let reply = self
            .call(
                repository_id,
                Method::PUT,
                &format!("/repos/{repository_id}/pulls/{}/merge", pr.number),
                Some(serde_json::json!({ "sha": pr.head_sha, "merge_method": "merge" })),
                api::JSON,
            )
            .await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::CONFLICT => {
                return Err(Error::RefMoved {
                    reference: format!("refs/heads/{}", pr.head_branch),
                });
            }
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNPROCESSABLE_ENTITY => {
                return Err(Error::GitHubRefused {
                    what: "the merge".into(),
                    message: reply.message(),
                });
            }
            _ => return Err(reply.unexpected("merge")),
        }
        tracing::info!(%id, "merged pull request on GitHub");
        self.get_pull_request(id).await
    }
}

/// A pull request's id: `owner:name:number` (`:` is in no repository name, and is safe in a
/// URL path).
pub fn pull_request_id(repository_id: &str, number: u64) -> String {
    format!("{}:{number}", repository_id.replacen('/', ":", 1))
}

/// The repository and number of a pull request id.
pub fn parse_pull_request_id(id: &str) -> Result<(String, u64)> {
    let bad = || Error::InvalidArgument {
        field: "pull_request_id",
        reason: format!("{id:?} is not `owner:name:number`"),
    };
    let mut parts = id.split(':');
    let (Some(owner), Some(name), Some(number), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let repository_id = format!("{owner}/{name}");
    validate::repository_id(&repository_id)?;
    Ok((repository_id, number))
}

/// The task id a body's marker names.
pub(super) fn task_of(body: &str) -> Option<&str> {
    let start = body.rfind(TASK_MARKER)? + TASK_MARKER.len();
    let end = body[start..].find(MARKER_END)?;
    Some(body[start..start + end].trim())
}

/// What a platform review's marker holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ReviewMarker {
    pub(super) action: String,
    pub(super) reviewer: String,
    #[serde(default)]
    pub(super) comments: Vec<ReviewComment>,
}

impl ReviewMarker {
    /// JSON with `<` and `>` escaped, so no text of a comment can end the HTML comment.
    pub(super) fn encode(&self) -> Result<String> {
        let text = serde_json::to_string(self).map_err(|error| Error::InvalidArgument {
            field: "review",
            reason: error.to_string(),
        })?;
        Ok(text.replace('<', "\\u003c").replace('>', "\\u003e"))
    }

    pub(super) fn decode(body: &str) -> Option<Self> {
        let start = body.rfind(REVIEW_MARKER)? + REVIEW_MARKER.len();
        let end = body[start..].find(MARKER_END)?;
        serde_json::from_str(&body[start..start + end]).ok()
    }
}

/// A review as the platform sees it: a platform review by its marker, a human's approval or
/// change request on GitHub by its state; plain comments are no verdict and left out.
fn review_of(review: json::Review) -> Option<Review> {
    let created_at_ms = auth::timestamp_ms(review.submitted_at.as_deref());
    let head_sha = review.commit_id.unwrap_or_default();
    let review_id = review.id.to_string();
    if let Some(marker) = review.body.as_deref().and_then(ReviewMarker::decode) {
        return Some(Review {
            review_id,
            action: marker.action.parse().ok()?,
            reviewer: marker.reviewer,
            comments: marker.comments,
            head_sha,
            created_at_ms,
        });
    }
    let action = match review.state.as_str() {
        "APPROVED" => ReviewAction::Approve,
        "CHANGES_REQUESTED" => ReviewAction::RequestChanges,
        _ => return None,
    };
    Some(Review {
        review_id,
        action,
        reviewer: review.user.map(|user| user.login).unwrap_or_default(),
        comments: Vec::new(),
        head_sha,
        created_at_ms,
    })
}
