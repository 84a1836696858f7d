-- Image generation jobs. Kept in step with ../../sqlite: the same table and columns, in each
-- database's own spelling.
--
-- A job is `queued` until a worker claims it (an UPDATE that only succeeds while the row is
-- still queued, so that any number of server processes can share the table), `running` while
-- it builds, then `done` or `failed`. `worker` names the process running it and
-- `heartbeat_at` says when it last showed signs of life: a job whose process is gone is
-- marked failed by the next server to notice.
CREATE TABLE images (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scan_id BIGINT REFERENCES scans(id) ON DELETE SET NULL,
    format TEXT NOT NULL,
    target TEXT NOT NULL,
    network TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    phase TEXT,
    progress_files BIGINT NOT NULL DEFAULT 0,
    progress_bytes BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT,
    error TEXT,
    file TEXT,
    size BIGINT,
    sha256 TEXT,
    tuning_log TEXT,
    worker TEXT,
    heartbeat_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX images_user ON images(user_id, id);
CREATE INDEX images_status ON images(status, id);
CREATE INDEX images_scan ON images(scan_id);
