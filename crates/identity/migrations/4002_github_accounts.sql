-- Sign-in with GitHub: which platform user each GitHub account is, the OAuth states of
-- sign-ins in flight, and the OAuth token of each session GitHub opened (sealed).

-- Linked by GitHub's numeric account id, not the login: a login can be renamed, and the old
-- one then taken by someone else.
CREATE TABLE identity_github_accounts (
    github_id BIGINT PRIMARY KEY,
    user_name TEXT NOT NULL UNIQUE,
    login TEXT NOT NULL,
    linked_at_ms BIGINT NOT NULL,
    signed_in_at_ms BIGINT NOT NULL
);

-- The `state` of each sign-in started, as its SHA-256: single use, expires in minutes.
CREATE TABLE identity_oauth_states (
    state_hash TEXT PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT
);

-- A GitHub session's OAuth access token, AES-256-GCM-sealed under a key kept in the gateway's
-- data directory (never in this database), bound to the session id; gone with the session.
CREATE TABLE identity_github_tokens (
    session_id TEXT PRIMARY KEY,
    github_id BIGINT NOT NULL,
    sealed_token TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
