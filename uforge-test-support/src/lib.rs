//! uforge-test-support: what the workspace's tests share (not published). The real Debian
//! roots the tests scan ([`fixtures`]), one throwaway PostgreSQL server per test process
//! ([`postgres`]), tar members written by hand ([`tar`]), and the registry, S3 store and libvirt
//! daemon the publish tests run ([`services`]).

pub mod fixtures;
pub mod postgres;
pub mod services;
pub mod tar;

pub use fixtures::{fixture, mirror_line, release_lines, release_root, workspace, RELEASE_ROOTS};
