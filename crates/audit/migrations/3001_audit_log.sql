-- The audit log (cap-audit, versions 3xxx): hash-chained records, the chain's head, and signed
-- checkpoints of the head. Portable SQL: the same file runs on SQLite and PostgreSQL. The
-- triggers refusing UPDATE and DELETE differ between the two and are installed by the crate
-- (`guards.rs`) after the migrations.
CREATE TABLE IF NOT EXISTS audit_records (
    seq BIGINT PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    task_id TEXT NOT NULL,
    details_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS audit_records_task ON audit_records (task_id, seq);

-- One row: the last record's sequence number and hash. Every append updates it in its own
-- transaction first, which serializes appenders (PostgreSQL's row lock; SQLite's write lock).
CREATE TABLE IF NOT EXISTS audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS audit_checkpoints (
    record_seq BIGINT PRIMARY KEY,
    head_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    signature TEXT NOT NULL
);
