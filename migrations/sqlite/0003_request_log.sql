-- One row per request; written in batches off the hot path. created_at is in milliseconds.
CREATE TABLE IF NOT EXISTS request_log (
    id                TEXT PRIMARY KEY,
    created_at        BIGINT NOT NULL,
    key_id            TEXT,
    team_id           TEXT,
    endpoint          TEXT NOT NULL,
    requested_model   TEXT,
    model             TEXT,
    provider          TEXT,
    status            INTEGER NOT NULL,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd          REAL NOT NULL DEFAULT 0,
    cache             TEXT,
    router_scores     TEXT,
    error_kind        TEXT,
    prompt            TEXT
);
CREATE INDEX IF NOT EXISTS request_log_created_at ON request_log (created_at);
CREATE INDEX IF NOT EXISTS request_log_key_spend ON request_log (key_id, created_at);
CREATE INDEX IF NOT EXISTS request_log_team_spend ON request_log (team_id, created_at);
-- Feedback on a logged request: the router's training signal.
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY,
    score      REAL NOT NULL,
    comment    TEXT,
    created_at BIGINT NOT NULL
);
