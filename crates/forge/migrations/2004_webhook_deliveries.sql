-- GitHub webhook deliveries already handled, by `X-GitHub-Delivery`, so that a redelivery
-- (GitHub retries, or an operator's "Redeliver") is not acted on twice, across restarts.
CREATE TABLE github_webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
