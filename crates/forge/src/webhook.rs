//! GitHub webhook deliveries: the signature check, de-duplication and the events the
//! platform acts on. The HTTP endpoint that receives them is the GitHub service's
//! (`cap_github_service::webhook`); this is its library half.
//!
//! A delivery is trusted only with a valid `X-Hub-Signature-256` (HMAC-SHA256 of the raw
//! body under the webhook secret, compared in constant time by `ring::hmac::verify`).
//! Deliveries are remembered by `X-GitHub-Delivery` in the forge's store, so one redelivered
//! after a restart is still recognised.

use ring::hmac;

use crate::{AnyPool, Error, MIGRATOR, Result};

/// The signature header's prefix.
const SIGNATURE_PREFIX: &str = "sha256=";

/// Checks `header` (the `X-Hub-Signature-256` value) against `body` under `secret`.
/// The error says what was wrong, never quoting the body or the secret.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<()> {
    let header = header.ok_or(Error::WebhookSignature("no X-Hub-Signature-256 header"))?;
    let hex = header
        .trim()
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(Error::WebhookSignature(
            "X-Hub-Signature-256 does not start with sha256=",
        ))?;
    let tag = decode_hex(hex).ok_or(Error::WebhookSignature(
        "X-Hub-Signature-256 is not 64 hexadecimal digits",
    ))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag)
        .map_err(|_| Error::WebhookSignature("X-Hub-Signature-256 does not match the body"))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// What a delivery asks of the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// An issue got a label (`issues` / `labeled`): a task when it is the configured label.
    IssueLabeled {
        /// `owner/name`.
        repository_id: String,
        /// The issue's number.
        number: u64,
        /// Its title.
        title: String,
        /// Its body (empty when none).
        body: String,
        /// The label just added.
        label: String,
        /// Who added it (GitHub login).
        sender: String,
    },
    /// A pull request was closed (`pull_request` / `closed`), merged or not.
    PullRequestClosed {
        /// `owner/name`.
        repository_id: String,
        /// Its number.
        number: u64,
        /// Whether it was merged.
        merged: bool,
        /// Who closed or merged it.
        sender: String,
    },
    /// A review was submitted on GitHub (`pull_request_review` / `submitted`).
    PullRequestReviewed {
        /// `owner/name`.
        repository_id: String,
        /// The pull request's number.
        number: u64,
        /// `approved`, `changes_requested` or `commented`.
        state: String,
        /// The reviewer's login.
        reviewer: String,
    },
    /// Anything else (another event or action): acknowledged, not acted on.
    Ignored {
        /// `event/action`, for the log.
        what: String,
    },
}

/// Reads the delivery `body` of the `X-GitHub-Event` `event`.
pub fn parse_event(event: &str, body: &[u8]) -> Result<WebhookEvent> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| Error::WebhookPayload(format!("{event} delivery is not JSON: {error}")))?;
    let text = |pointer: &str| -> Result<String> {
        value
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| Error::WebhookPayload(format!("{event} delivery has no {pointer}")))
    };
    let number = |pointer: &str| -> Result<u64> {
        value
            .pointer(pointer)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| Error::WebhookPayload(format!("{event} delivery has no {pointer}")))
    };
    let action = value
        .get("action")
        .and_then(|a| a.as_str())
        .unwrap_or_default()
        .to_owned();
    Ok(match (event, action.as_str()) {
        ("issues", "labeled") => WebhookEvent::IssueLabeled {
            repository_id: text("/repository/full_name")?,
            number: number("/issue/number")?,
            title: text("/issue/title")?,
            // GitHub sends `null` for an issue without a body.
            body: text("/issue/body").unwrap_or_default(),
            label: text("/label/name")?,
            sender: text("/sender/login")?,
        },
        ("pull_request", "closed") => WebhookEvent::PullRequestClosed {
            repository_id: text("/repository/full_name")?,
            number: number("/pull_request/number")?,
            merged: value
                .pointer("/pull_request/merged")
                .and_then(|m| m.as_bool())
                .unwrap_or(false),
            sender: text("/sender/login")?,
        },
        ("pull_request_review", "submitted") => WebhookEvent::PullRequestReviewed {
            repository_id: text("/repository/full_name")?,
            number: number("/pull_request/number")?,
            state: text("/review/state")?.to_ascii_lowercase(),
            reviewer: text("/review/user/login")?,
        },
        _ => WebhookEvent::Ignored {
            what: format!("{event}/{action}"),
        },
    })
}

/// The deliveries already handled, in the forge's store.
#[derive(Debug, Clone)]
pub struct Deliveries {
    pool: AnyPool,
}

impl Deliveries {
    /// Opens (and migrates) the store at `database_url`.
    pub async fn open(database_url: &str) -> Result<Self> {
        Ok(Self {
            pool: cap_storage::open(database_url, &MIGRATOR).await?,
        })
    }

    /// Records the delivery `delivery_id`: `true` the first time, `false` for a redelivery.
    pub async fn first_time(&self, delivery_id: &str, event: &str) -> Result<bool> {
        if delivery_id.trim().is_empty() || delivery_id.len() > 200 {
            return Err(Error::WebhookPayload(
                "X-GitHub-Delivery is missing, empty or longer than 200 characters".into(),
            ));
        }
        // One statement on both SQLite and PostgreSQL: a concurrent redelivery inserts
        // nothing rather than failing.
        let inserted = sqlx::query(
            "INSERT INTO github_webhook_deliveries (delivery_id, event, received_at_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(event)
        .bind(cap_storage::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Forgets `delivery_id`, so that GitHub's redelivery of one that could not be handled
    /// (GitHub or the audit log unreachable) is handled then.
    pub async fn forget(&self, delivery_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM github_webhook_deliveries WHERE delivery_id = $1")
            .bind(delivery_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
