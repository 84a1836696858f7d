-- The contents each scan holds in the blob store, by SHA-256 (lower-case hex): those of its
-- verified overlay, and those an interrupted upload of an unfinished scan kept. An overlay may
-- leave out a file whose content a scan of the same user holds.
CREATE TABLE scan_blobs (
    scan_id BIGINT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (scan_id, sha256)
);
CREATE INDEX scan_blobs_sha256 ON scan_blobs(sha256);
