//! uforge-test-support: what the workspace's tests share (not published). The real Debian
//! roots the tests scan ([`fixtures`]), one throwaway PostgreSQL server per test process
//! ([`postgres`]), and tar members written by hand ([`tar`]).

pub mod fixtures;
pub mod postgres;
pub mod tar;

pub use fixtures::{fixture, mirror_line, workspace};
