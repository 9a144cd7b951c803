-- Teams and virtual keys. A key is stored as the SHA-256 of its text; the text is shown once.
-- Limits and budgets left NULL are unlimited; models NULL allows every model.
CREATE TABLE IF NOT EXISTS teams (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    rpm_limit     BIGINT,
    tpm_limit     BIGINT,
    budget_usd    DOUBLE PRECISION,
    budget_period TEXT NOT NULL DEFAULT 'monthly',
    created_at    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS virtual_keys (
    id            TEXT PRIMARY KEY,
    key_hash      BYTEA NOT NULL UNIQUE,
    key_hint      TEXT NOT NULL,
    name          TEXT NOT NULL,
    team_id       TEXT REFERENCES teams (id),
    models        TEXT,
    rpm_limit     BIGINT,
    tpm_limit     BIGINT,
    budget_usd    DOUBLE PRECISION,
    budget_period TEXT NOT NULL DEFAULT 'monthly',
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
