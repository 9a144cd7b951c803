-- L3 of the tiered memory: answers keyed by the SHA-256 of everything that shaped them.
CREATE TABLE IF NOT EXISTS cache_entries (
    key        BYTEA PRIMARY KEY,
    value      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_entries_expires_at ON cache_entries (expires_at);
