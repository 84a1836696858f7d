-- Publish targets and publication jobs. Kept in step with ../../sqlite: the same tables and
-- columns, in each database's own spelling.
--
-- A target is a user's: its name is unique per user. `spec` is the target as the library
-- describes it (JSON, no credentials); `credentials` is the sealed JSON of its credentials
-- (XChaCha20-Poly1305 under the server key DATA/secret.key, bound to the user and name), and
-- null when it has none.
CREATE TABLE targets (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    options TEXT NOT NULL,
    spec TEXT NOT NULL,
    credentials BYTEA,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, name)
);

-- Publications are jobs like image builds: `queued`, claimed by a worker and `running`,
-- then `done` (`result` says what was put where) or `failed` (`error` says why).
CREATE TABLE publications (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    image_id BIGINT REFERENCES images(id) ON DELETE SET NULL,
    target_id BIGINT NOT NULL REFERENCES targets(id),
    name TEXT,
    instance TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    phase TEXT,
    progress_bytes BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT,
    error TEXT,
    error_kind TEXT,
    result TEXT,
    worker TEXT,
    heartbeat_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX publications_user ON publications(user_id, id);
CREATE INDEX publications_status ON publications(status, id);
CREATE INDEX publications_image ON publications(image_id);
CREATE INDEX publications_target ON publications(target_id);
