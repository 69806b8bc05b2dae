//! The few GitHub calls GitHub sign-in needs, with the documented shapes: the OAuth code
//! exchange (`POST /login/oauth/access_token`), `GET /user`, `GET /user/orgs` and
//! `GET /repos/{owner}/{repo}` (its `permissions`).

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::{Error, Result};

/// GitHub REST API version the gateway speaks.
const API_VERSION: &str = "2022-11-28";

/// A client of GitHub's web host (OAuth) and REST API.
#[derive(Debug, Clone)]
pub struct GitHubApi {
    http: reqwest::Client,
    web_url: String,
    api_url: String,
}

/// A successful code exchange.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    /// Set instead of the token when GitHub refuses (the answer is still HTTP 200).
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /user`, the parts used.
#[derive(Debug, Deserialize)]
pub struct GitHubUser {
    /// The numeric account id.
    pub id: i64,
    /// The login.
    pub login: String,
}

/// One of `GET /user/orgs`.
#[derive(Debug, Deserialize)]
struct GitHubOrg {
    login: String,
}

/// `GET /repos/{owner}/{repo}`, the parts used.
#[derive(Debug, Deserialize)]
struct GitHubRepo {
    /// Present when the request was authenticated.
    #[serde(default)]
    permissions: Option<Permissions>,
}

#[derive(Debug, Deserialize)]
struct Permissions {
    #[serde(default)]
    push: bool,
}

/// What GitHub says the token's user may do with a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryAccess {
    /// They may push.
    Push,
    /// They see it but may not push.
    ReadOnly,
    /// GitHub answers 404: no such repository, or one they cannot see.
    NotFound,
    /// GitHub no longer accepts the token (revoked or expired): 401.
    TokenRefused,
}

impl GitHubApi {
    /// A client for `web_url` (OAuth pages) and `api_url` (REST), both without a trailing
    /// slash.
    pub fn new(web_url: String, api_url: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            // GitHub refuses requests without a User-Agent.
            .user_agent(concat!("cap-gateway/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(20))
            // A redirect from the token endpoint would carry the client secret elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| Error::GitHub {
                message: "the gateway could not build its GitHub client".into(),
                source: Some(source),
            })?;
        Ok(Self {
            http,
            web_url,
            api_url,
        })
    }

    /// The authorize page's URL base, `<web>/login/oauth/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.web_url)
    }

    /// Exchanges a callback's `code` for an access token.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<String> {
        let response = self
            .http
            .post(format!("{}/login/oauth/access_token", self.web_url))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ])
            .send()
            .await
            .map_err(unreachable("exchange the sign-in code"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::GitHub {
                message: format!("GitHub answered the code exchange with HTTP {status}"),
                source: None,
            });
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(unusable("the code exchange"))?;
        if let Some(error) = answer.error {
            let description = answer.error_description.unwrap_or_default();
            return Err(match error.as_str() {
                // The user's side: the code is wrong, used or older than ten minutes.
                "bad_verification_code" => Error::Invalid {
                    status: StatusCode::BAD_REQUEST,
                    code: "bad_verification_code",
                    message: format!(
                        "GitHub refused the sign-in code (bad_verification_code: {description}): \
                         start the sign-in again"
                    ),
                    field: Some("code".into()),
                },
                // The rest (incorrect_client_credentials, redirect_uri_mismatch, ...) are the
                // operator's to fix; the caller gets the name, not the details.
                _ => Error::GitHub {
                    message: format!(
                        "GitHub refused the gateway's OAuth app ({error}): the operator checks \
                         its client id, secret and callback URL"
                    ),
                    source: None,
                },
            });
        }
        answer
            .access_token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Error::GitHub {
                message: "GitHub's code exchange answered without an access token".into(),
                source: None,
            })
    }

    /// The token's user.
    pub async fn user(&self, token: &str) -> Result<GitHubUser> {
        let response = self.get(token, "/user", "read the signed-in user").await?;
        check_status(&response, "/user")?;
        response.json().await.map_err(unusable("/user"))
    }

    /// The logins of the organisations the token's user belongs to (as far as the token may
    /// see: `read:org`).
    pub async fn organisations(&self, token: &str) -> Result<Vec<String>> {
        let response = self
            .get(
                token,
                "/user/orgs?per_page=100",
                "read the user's organisations",
            )
            .await?;
        check_status(&response, "/user/orgs")?;
        let orgs: Vec<GitHubOrg> = response.json().await.map_err(unusable("/user/orgs"))?;
        Ok(orgs.into_iter().map(|org| org.login).collect())
    }

    /// What the token's user may do with `owner/name`.
    pub async fn repository_access(
        &self,
        token: &str,
        owner: &str,
        name: &str,
    ) -> Result<RepositoryAccess> {
        let response = self
            .get(
                token,
                &format!("/repos/{owner}/{name}"),
                "check the repository",
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(RepositoryAccess::NotFound),
            StatusCode::UNAUTHORIZED => return Ok(RepositoryAccess::TokenRefused),
            _ => {}
        }
        check_status(&response, "/repos/{owner}/{repo}")?;
        let repo: GitHubRepo = response
            .json()
            .await
            .map_err(unusable("/repos/{owner}/{repo}"))?;
        Ok(match repo.permissions {
            Some(Permissions { push: true }) => RepositoryAccess::Push,
            Some(_) | None => RepositoryAccess::ReadOnly,
        })
    }

    async fn get(&self, token: &str, path: &str, what: &'static str) -> Result<reqwest::Response> {
        self.http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(unreachable(what))
    }
}

fn check_status(response: &reqwest::Response, endpoint: &str) -> Result<()> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(Error::GitHub {
        message: format!("GitHub answered {endpoint} with HTTP {status}"),
        source: None,
    })
}

fn unreachable(what: &'static str) -> impl FnOnce(reqwest::Error) -> Error {
    move |source| Error::GitHub {
        message: format!("the gateway could not reach GitHub to {what}"),
        source: Some(source),
    }
}

fn unusable(endpoint: &'static str) -> impl FnOnce(reqwest::Error) -> Error {
    move |source| Error::GitHub {
        message: format!("GitHub's answer to {endpoint} is not the documented JSON"),
        source: Some(source),
    }
}
