//! The command lines of uforge: `uforge-scan`, the agent that runs on the source machine
//! ([`agent`]), and `uforge`, the client of a server for people and scripts ([`console`]). Each
//! binary is a `main` that calls its module; what both need lives beside them.

pub mod agent;
pub mod connect;
pub mod console;
pub mod docs;
pub mod exit;
pub mod progress;
