//! Content-addressed storage of file contents, keyed by SHA-256.
