//! `/api/v1/pull-requests`: list, show (with diff and reviews), review and merge.

use axum::Json;
use axum::extract::State;
use cap_proto::github::v1::{
    GetPullRequestRequest, ListPullRequestsRequest, MergePullRequestRequest, PullRequest, Review,
    ReviewAction, ReviewComment, ReviewPullRequestRequest,
};
use serde::{Deserialize, Serialize};

use axum::Extension;
use cap_identity::Principal;

use crate::auth::{acting, four_eyes};
use crate::error::{Error, Result};
use crate::events::rfc3339_ms;
use crate::input::{self, ApiJson, JsonBody, OptionalJson, PathParam, QueryParams};
use crate::state::AppState;
use cap_proto::supervisor::v1::GetTaskRequest;

/// Most comments one review may carry.
pub const MAX_COMMENTS: usize = 500;
/// Longest comment body, in characters.
pub const MAX_COMMENT_CHARS: usize = 20_000;

/// A pull request as the REST API shows it.
#[derive(Debug, Serialize)]
pub struct PullRequestView {
    /// The forge's identifier.
    pub pull_request_id: String,
    /// The repository.
    pub repository_id: String,
    /// The number within the repository.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub body: String,
    /// The branch with the change.
    pub head_branch: String,
    /// The branch it goes into.
    pub base_branch: String,
    /// Head commit.
    pub head_sha: String,
    /// Base commit.
    pub base_sha: String,
    /// `open`, `approved`, `changes_requested`, `rejected` or `merged`.
    pub state: String,
    /// Opened as a draft: a partial change handed to a human (a task that ran out of time).
    pub draft: bool,
    /// The task that opened it, if any.
    pub task_id: Option<String>,
    /// Unified diff of base..head; only on the single pull-request routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Reviews, oldest first.
    pub reviews: Vec<ReviewView>,
    /// Where the forge shows it.
    pub url: String,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub updated_at: Option<String>,
}

/// One review of a pull request.
#[derive(Debug, Serialize)]
pub struct ReviewView {
    /// The forge's identifier.
    pub review_id: String,
    /// `approve`, `request_changes`, `reject` (or `unspecified`).
    pub action: &'static str,
    /// Who reviewed.
    pub reviewer: String,
    /// Line comments.
    pub comments: Vec<CommentBody>,
    /// RFC 3339.
    pub created_at: Option<String>,
}

impl PullRequestView {
    /// The view of `pr`; the diff is kept only when `with_diff`.
    pub fn new(pr: PullRequest, with_diff: bool) -> Self {
        Self {
            pull_request_id: pr.pull_request_id,
            repository_id: pr.repository_id,
            number: pr.number,
            title: pr.title,
            body: pr.body,
            head_branch: pr.head_branch,
            base_branch: pr.base_branch,
            head_sha: pr.head_sha,
            base_sha: pr.base_sha,
            state: pr.state,
            draft: pr.draft,
            task_id: (!pr.task_id.is_empty()).then_some(pr.task_id),
            diff: with_diff.then_some(pr.diff),
            reviews: pr.reviews.into_iter().map(ReviewView::new).collect(),
            url: pr.url,
            created_at: rfc3339_ms(pr.created_at_ms),
            updated_at: rfc3339_ms(pr.updated_at_ms),
        }
    }
}

impl ReviewView {
    fn new(review: Review) -> Self {
        let action = match ReviewAction::try_from(review.action) {
            Ok(ReviewAction::Approve) => "approve",
            Ok(ReviewAction::RequestChanges) => "request_changes",
            Ok(ReviewAction::Reject) => "reject",
            Ok(ReviewAction::Unspecified) | Err(_) => "unspecified",
        };
        Self {
            review_id: review.review_id,
            action,
            reviewer: review.reviewer,
            comments: review
                .comments
                .into_iter()
                .map(|c| CommentBody {
                    file: c.file,
                    line: c.line,
                    body: c.body,
                })
                .collect(),
            created_at: rfc3339_ms(review.created_at_ms),
        }
    }
}

/// Answer of `GET /api/v1/pull-requests`.
#[derive(Debug, Serialize)]
pub struct PullRequestList {
    /// The pull requests, without their diffs.
    pub pull_requests: Vec<PullRequestView>,
}

/// `GET /api/v1/pull-requests?repository_id=`.
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    query: QueryParams,
) -> Result<Json<PullRequestList>> {
    query.only(&["repository_id"])?;
    let repository_id = query.get("repository_id").unwrap_or_default().to_owned();
    if !repository_id.is_empty() && repository_id.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "invalid_value",
            Some("repository_id"),
            "query parameter `repository_id` must not contain control characters",
        ));
    }
    let request = ListPullRequestsRequest { repository_id };
    let response = state
        .call(
            "github",
            "ListPullRequests",
            state.github().list_pull_requests(acting(&actor, request)),
        )
        .await?;
    let pull_requests = response
        .pull_requests
        .into_iter()
        .map(|pr| PullRequestView::new(pr, /*with_diff*/ false))
        .collect();
    Ok(Json(PullRequestList { pull_requests }))
}

/// `GET /api/v1/pull-requests/{pr_id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(pr_id): PathParam,
    query: QueryParams,
) -> Result<Json<PullRequestView>> {
    let pull_request_id = input::pull_request_id(&pr_id)?;
    query.only(&[])?;
    let pr = fetch(&state, &actor, pull_request_id).await?;
    Ok(Json(PullRequestView::new(pr, /*with_diff*/ true)))
}

async fn fetch(
    state: &AppState,
    actor: &Principal,
    pull_request_id: String,
) -> Result<PullRequest> {
    let request = GetPullRequestRequest { pull_request_id };
    state
        .call(
            "github",
            "GetPullRequest",
            state.github().get_pull_request(acting(actor, request)),
        )
        .await
}

/// Refuses `what` on a pull request the actor's own task opened, unless the repository's
/// policy allows it.
async fn check_four_eyes(
    state: &AppState,
    actor: &Principal,
    pull_request_id: &str,
    what: &str,
) -> Result<()> {
    let pr = fetch(state, actor, pull_request_id.to_owned()).await?;
    if pr.task_id.is_empty() {
        // Not opened by a task: nobody here asked for it.
        return Ok(());
    }
    let task = state
        .call(
            "supervisor",
            "GetTask",
            state.tasks().get_task(acting(
                actor,
                GetTaskRequest {
                    task_id: pr.task_id,
                },
            )),
        )
        .await?;
    four_eyes(state, actor, &task, what).await
}

/// Body of `POST /api/v1/pull-requests/{pr_id}/review`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// The decision.
    pub action: ReviewDecision,
    /// Line comments.
    #[serde(default)]
    pub comments: Option<Vec<CommentBody>>,
    /// Who reviews: the signed-in user; a different name is refused.
    #[serde(default)]
    pub reviewer: Option<String>,
}

impl JsonBody for ReviewBody {
    const OBJECTS: &'static [&'static str] = &["", "comments[]"];
}

/// A review decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// Approve the change.
    Approve,
    /// Ask for changes.
    RequestChanges,
    /// Reject the change.
    Reject,
}

/// A line comment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// Repository-relative path.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// The comment.
    pub body: String,
}

impl ReviewBody {
    /// Checks every field and builds the github service's request.
    pub fn into_request(
        self,
        pull_request_id: String,
        reviewer: &str,
    ) -> Result<ReviewPullRequestRequest> {
        if let Some(named) = &self.reviewer {
            input::name("reviewer", named)?;
            if named != reviewer {
                return Err(Error::invalid(
                    "invalid_value",
                    "reviewer",
                    format!(
                        "`reviewer` is the signed-in user ({reviewer}); a review cannot be made \
                         in another's name"
                    ),
                ));
            }
        }
        let reviewer = reviewer.to_owned();
        let comments = self.comments.unwrap_or_default();
        if comments.len() > MAX_COMMENTS {
            return Err(Error::invalid(
                "invalid_value",
                "comments",
                format!("`comments` has more than {MAX_COMMENTS} entries"),
            ));
        }
        for (index, comment) in comments.iter().enumerate() {
            input::relative_path(&format!("comments[{index}].file"), &comment.file)?;
            if comment.line == 0 {
                let field = format!("comments[{index}].line");
                return Err(Error::invalid(
                    "invalid_value",
                    &field,
                    format!("`{field}` must be 1 or more"),
                ));
            }
            input::text(
                &format!("comments[{index}].body"),
                &comment.body,
                MAX_COMMENT_CHARS,
            )?;
        }
        let action = match self.action {
            ReviewDecision::Approve => ReviewAction::Approve,
            ReviewDecision::RequestChanges => ReviewAction::RequestChanges,
            ReviewDecision::Reject => ReviewAction::Reject,
        };
        Ok(ReviewPullRequestRequest {
            pull_request_id,
            action: action.into(),
            reviewer,
            comments: comments
                .into_iter()
                .map(|c| ReviewComment {
                    file: c.file,
                    line: c.line,
                    body: c.body,
                })
                .collect(),
        })
    }
}

/// `POST /api/v1/pull-requests/{pr_id}/review`: answers with the updated pull request.
pub async fn review(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(pr_id): PathParam,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Json<PullRequestView>> {
    let request = body.into_request(input::pull_request_id(&pr_id)?, &actor.user)?;
    if request.action == i32::from(ReviewAction::Approve) {
        check_four_eyes(&state, &actor, &request.pull_request_id, "approve").await?;
    }
    let pr = state
        .call(
            "github",
            "ReviewPullRequest",
            state.github().review_pull_request(acting(&actor, request)),
        )
        .await?;
    Ok(Json(PullRequestView::new(pr, /*with_diff*/ true)))
}

/// Body of `POST /api/v1/pull-requests/{pr_id}/merge`: empty, or an empty object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {}

impl JsonBody for MergeBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// `POST /api/v1/pull-requests/{pr_id}/merge`: answers with the merged pull request.
pub async fn merge(
    State(state): State<AppState>,
    Extension(actor): Extension<Principal>,
    PathParam(pr_id): PathParam,
    OptionalJson(_body): OptionalJson<MergeBody>,
) -> Result<Json<PullRequestView>> {
    let pull_request_id = input::pull_request_id(&pr_id)?;
    check_four_eyes(&state, &actor, &pull_request_id, "merge").await?;
    let request = MergePullRequestRequest { pull_request_id };
    let pr = state
        .call(
            "github",
            "MergePullRequest",
            state.github().merge_pull_request(acting(&actor, request)),
        )
        .await?;
    Ok(Json(PullRequestView::new(pr, /*with_diff*/ true)))
}
