//! Repositories on GitHub: metadata through the REST API, branches and commits through git
//! on the forge's own bare copy.

use super::*;

impl GitHubForge {
    // ---- repositories ----

    async fn repo(&self, repository_id: &str) -> Result<json::Repo> {
        validate::repository_id(repository_id)?;
        self.get(
            repository_id,
            &format!("/repos/{repository_id}"),
            "repository",
        )
        .await?
        .ok_or_else(|| Error::RepositoryNotFound(repository_id.to_owned()))
    }

    pub(super) async fn branch(
        &self,
        repository_id: &str,
        branch: &str,
    ) -> Result<Option<json::Branch>> {
        self.get(
            repository_id,
            &format!("/repos/{repository_id}/branches/{branch}"),
            "branch",
        )
        .await
    }

    /// The repository: its clone URL (the plain HTTPS one: a clone needs a token of its own),
    /// default branch and that branch's head.
    pub async fn get_repository(&self, repository_id: &str) -> Result<Repository> {
        let repo = self.repo(repository_id).await?;
        let head = self
            .branch(repository_id, &repo.default_branch)
            .await?
            .ok_or_else(|| Error::BranchNotFound {
                repository_id: repository_id.to_owned(),
                branch: repo.default_branch.clone(),
            })?;
        Ok(Repository {
            repository_id: repository_id.to_owned(),
            clone_url: repo.clone_url,
            default_branch: repo.default_branch,
            head_sha: head.commit.sha,
        })
    }

    /// The repository with its languages, the default branch's protection, CODEOWNERS and
    /// pull request template.
    pub async fn metadata(&self, repository_id: &str) -> Result<RepositoryMetadata> {
        let repo = self.repo(repository_id).await?;
        let branch = repo.default_branch.clone();
        let head =
            self.branch(repository_id, &branch)
                .await?
                .ok_or_else(|| Error::BranchNotFound {
                    repository_id: repository_id.to_owned(),
                    branch: branch.clone(),
                })?;
        let languages: HashMap<String, u64> = self
            .get(
                repository_id,
                &format!("/repos/{repository_id}/languages"),
                "languages",
            )
            .await?
            .unwrap_or_default();
        let mut languages: Vec<_> = languages.into_iter().collect();
        languages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        // Three listings find both files whatever their case, instead of a probe per name.
        let mut listings = Vec::new();
        for directory in template::DIRECTORIES {
            let listing: Option<serde_json::Value> = self
                .get(
                    repository_id,
                    &format!("/repos/{repository_id}/contents/{directory}?ref={branch}"),
                    "directory listing",
                )
                .await?;
            // A file named `docs` (an object, not a list) holds neither file.
            let entries: Vec<json::Content> = listing
                .filter(serde_json::Value::is_array)
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| Error::GitHubResponse {
                    what: "directory listing".into(),
                    reason: error.to_string(),
                })?
                .unwrap_or_default();
            listings.push((directory, entries));
        }
        let find = |directory: &str, name: &str| {
            listings
                .iter()
                .filter(|(dir, _)| *dir == directory)
                .flat_map(|(_, entries)| entries)
                .find(|entry| entry.kind == "file" && entry.name.eq_ignore_ascii_case(name))
                .map(|entry| entry.path.clone())
        };
        let codeowners_path = codeowners::LOCATIONS.iter().find_map(|location| {
            let (directory, name) = location.rsplit_once('/').unwrap_or(("", location));
            find(directory, name)
        });
        let codeowners = match codeowners_path {
            Some(path) => self
                .file(repository_id, &path, &branch)
                .await?
                .map(|text| CodeOwners::parse(&path, &text)),
            None => None,
        };
        let template_path = template::DIRECTORIES
            .iter()
            .find_map(|directory| find(directory, template::FILE_NAME));
        let pull_request_template = match template_path {
            Some(path) => self.file(repository_id, &path, &branch).await?,
            None => None,
        };
        Ok(RepositoryMetadata {
            repository: Repository {
                repository_id: repository_id.to_owned(),
                clone_url: repo.clone_url,
                default_branch: branch,
                head_sha: head.commit.sha,
            },
            languages,
            default_branch_protected: head.protected,
            required_status_checks: head
                .protection
                .and_then(|p| p.required_status_checks)
                .map(|checks| checks.contexts)
                .unwrap_or_default(),
            codeowners,
            pull_request_template,
        })
    }

    /// A text file of `branch` through the contents API.
    async fn file(&self, repository_id: &str, path: &str, branch: &str) -> Result<Option<String>> {
        let Some(content) = self
            .get::<json::Content>(
                repository_id,
                &format!("/repos/{repository_id}/contents/{path}?ref={branch}"),
                "file",
            )
            .await?
        else {
            return Ok(None);
        };
        let bad = |reason: &str| Error::GitHubResponse {
            what: format!("contents of {path}"),
            reason: reason.to_owned(),
        };
        if content.encoding.as_deref() != Some("base64") {
            return Err(bad("not base64-encoded"));
        }
        let encoded: String = content
            .content
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let bytes = STANDARD.decode(encoded).map_err(|_| bad("bad base64"))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    // ---- git ----

    /// The `Authorization` header git sends: GitHub takes an installation token as the
    /// password of `x-access-token`.
    fn git_header(token: &str) -> String {
        let credential = STANDARD.encode(format!("x-access-token:{token}"));
        format!("Authorization: Basic {credential}")
    }

    fn protocols(&self) -> &'static [Protocol] {
        if self.inner.plain_http {
            &[Protocol::Https, Protocol::Http]
        } else {
            &[Protocol::Https]
        }
    }

    /// The clone URL GitHub gave, checked to be one git may use here.
    fn clone_url(&self, repo: &json::Repo) -> Result<String> {
        let allowed = repo.clone_url.starts_with("https://")
            || (self.inner.plain_http && repo.clone_url.starts_with("http://"));
        if !allowed {
            return Err(Error::GitHubResponse {
                what: "repository".into(),
                reason: format!("clone_url {:?} is not an HTTPS URL", repo.clone_url),
            });
        }
        Ok(repo.clone_url.clone())
    }

    /// The forge's bare copy of `repository_id` (made when missing) and the lock to hold
    /// while using it.
    async fn copy(&self, repository_id: &str) -> Result<(PathBuf, Arc<Mutex<()>>)> {
        let (owner, name) = validate::repository_id(repository_id)?;
        let dir = self.inner.cache_dir.join(owner).join(format!("{name}.git"));
        let lock = self
            .inner
            .copies
            .lock()
            .await
            .entry(repository_id.to_owned())
            .or_default()
            .clone();
        if !dir.join("HEAD").is_file() {
            Git::new()
                .args(["init", "--bare", "--quiet"])
                .args([dir.as_os_str()])
                .run()
                .await?;
        }
        Ok((dir, lock))
    }

    /// Fetches `branch` of `url` into the copy's `refs/heads/{branch}` (the copy follows the
    /// remote; this moves only the local copy's ref) and returns its head.
    async fn fetch(&self, dir: &Path, url: &str, token: &str, branch: &str) -> Result<String> {
        let output = Git::with_git_dir(dir)
            .allow_protocols(self.protocols())
            .http_header(Self::git_header(token))
            .args([
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
            ])
            .args([url, &format!("+refs/heads/{branch}:refs/heads/{branch}")])
            .output()
            .await?;
        if !output.success() {
            return Err(remote_git_error(&output));
        }
        Git::with_git_dir(dir)
            .args([
                "rev-parse",
                "--verify",
                &format!("refs/heads/{branch}^{{commit}}"),
            ])
            .text()
            .await
            .map_err(Error::from)
    }

    /// Pushes `sha` to `branch` of `url`, never forced: a branch that moved on GitHub refuses
    /// it ([`Error::RefMoved`]).
    async fn push(
        &self,
        dir: &Path,
        url: &str,
        token: &str,
        sha: &str,
        branch: &str,
    ) -> Result<()> {
        let output = Git::with_git_dir(dir)
            .allow_protocols(self.protocols())
            .http_header(Self::git_header(token))
            .args(["push", "--quiet", "--porcelain", "--"])
            .args([url, &format!("{sha}:refs/heads/{branch}")])
            .output()
            .await?;
        if output.success() {
            return Ok(());
        }
        let text = format!(
            "{}\n{}",
            output.text(),
            String::from_utf8_lossy(&output.stderr)
        );
        if text.contains("[rejected]")
            || text.contains("non-fast-forward")
            || text.contains("fetch first")
        {
            return Err(Error::RefMoved {
                reference: format!("refs/heads/{branch}"),
            });
        }
        if text.contains("protected branch") || text.contains("[remote rejected]") {
            return Err(Error::GitHubRefused {
                what: format!("push to {branch}"),
                message: output.stderr_tail(3),
            });
        }
        Err(remote_git_error(&output))
    }

    /// Refuses a branch this forge does not own.
    pub(super) fn own_branch(branch: &str) -> Result<()> {
        validate::branch(branch)?;
        if !branch.starts_with(BRANCH_PREFIX) || branch.len() == BRANCH_PREFIX.len() {
            return Err(Error::InvalidBranch {
                branch: branch.to_owned(),
                reason: "the GitHub forge creates and pushes only branches under `coding-assistant/`",
            });
        }
        Ok(())
    }

    /// Creates `branch` on GitHub at `from_sha` (the default branch's head when empty) by a
    /// push; returns the commit it points at.
    pub async fn create_branch(
        &self,
        repository_id: &str,
        branch: &str,
        from_sha: &str,
    ) -> Result<String> {
        Self::own_branch(branch)?;
        if !from_sha.is_empty() {
            validate::sha(from_sha)?;
        }
        let repo = self.repo(repository_id).await?;
        let url = self.clone_url(&repo)?;
        if self.branch(repository_id, branch).await?.is_some() {
            return Err(Error::BranchExists {
                repository_id: repository_id.to_owned(),
                branch: branch.to_owned(),
            });
        }
        let token = self.token(repository_id).await?;
        let (dir, lock) = self.copy(repository_id).await?;
        let _held = lock.lock().await;
        let head = self.fetch(&dir, &url, &token, &repo.default_branch).await?;
        let start = if from_sha.is_empty() {
            head
        } else {
            crate::repos::resolve(&dir, &format!("{from_sha}^{{commit}}"))
                .await?
                .ok_or_else(|| Error::CommitNotFound {
                    repository_id: repository_id.to_owned(),
                    sha: from_sha.to_owned(),
                })?
        };
        self.push(&dir, &url, &token, &start, branch).await?;
        tracing::info!(%repository_id, %branch, %start, "created branch on GitHub");
        Ok(start)
    }

    /// Commits `changes` on top of `branch` as the bot (the local forge's plumbing, on the
    /// forge's copy) and pushes the commit, never forced. A protected branch is refused before
    /// anything is written.
    pub async fn commit_changes(
        &self,
        repository_id: &str,
        branch: &str,
        message: &str,
        changes: Vec<FileChange>,
    ) -> Result<String> {
        Self::own_branch(branch)?;
        validate::text("commit message", message)?;
        if changes.is_empty() {
            return Err(Error::EmptyChangeSet);
        }
        let repo = self.repo(repository_id).await?;
        let url = self.clone_url(&repo)?;
        match self.branch(repository_id, branch).await? {
            None => {
                return Err(Error::BranchNotFound {
                    repository_id: repository_id.to_owned(),
                    branch: branch.to_owned(),
                });
            }
            Some(found) if found.protected => {
                return Err(Error::GitHubRefused {
                    what: format!("commit to {branch}"),
                    message: "the branch is protected on GitHub; the forge pushes only to \
                              unprotected branches of its own"
                        .into(),
                });
            }
            Some(_) => {}
        }
        let token = self.token(repository_id).await?;
        let (dir, lock) = self.copy(repository_id).await?;
        let _held = lock.lock().await;
        self.fetch(&dir, &url, &token, branch).await?;
        let commit =
            crate::repos::commit_on_branch(&dir, repository_id, branch, message, changes).await?;
        self.push(&dir, &url, &token, &commit, branch).await?;
        tracing::info!(%repository_id, %branch, %commit, "pushed commit to GitHub");
        Ok(commit)
    }
}

/// The error of a fetch or push that failed: GitHub unreachable or answering 5xx is
/// [`Error::GitHubUnavailable`] (so the caller hears that GitHub is down, not of an internal
/// error); anything else stays a git failure.
fn remote_git_error(output: &cap_git::Output) -> Error {
    let stderr = output.stderr_tail(2);
    let down = [
        "returned error: 5",
        "Failed to connect",
        "Could not resolve host",
        "timed out",
    ]
    .iter()
    .any(|sign| stderr.contains(sign));
    if down {
        Error::GitHubUnavailable(format!("git could not reach GitHub: {stderr}"))
    } else {
        output.error().into()
    }
}
