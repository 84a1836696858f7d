//! Package repositories: what they hold and the official digests of their files.
