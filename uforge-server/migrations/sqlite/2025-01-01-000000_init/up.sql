-- The first schema. Kept in step with ../../postgres: the same tables and columns, in each
-- database's own spelling.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_sha256 BLOB NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE repos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    line TEXT NOT NULL,
    packages BIGINT,
    synced_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX repos_user ON repos(user_id);

CREATE TABLE machines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    machine_id INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('created', 'analyzed', 'complete')),
    created_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP,
    summary TEXT
);
CREATE INDEX scans_user ON scans(user_id, id);
CREATE INDEX scans_machine ON scans(machine_id, status);

CREATE TABLE recreated_packages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scan_id INTEGER REFERENCES scans(id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    arch TEXT NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, file)
);
