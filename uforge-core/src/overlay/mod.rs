//! The overlay: a tar of exactly the wanted paths, written as a stream and verified on reading.
//!
//! The format is POSIX pax, written and read here rather than through a tar library because
//! the overlay needs sparse files (PAX sparse format 1.0, as GNU tar writes and extracts them)
//! and a reader strict enough for archives sent by machines that are not trusted. GNU tar and
//! bsdtar extract an overlay with `--xattrs` (xattrs, including file capabilities, travel as
//! `SCHILY.xattr.*` records).
//!
//! Member names are in-root paths without the leading `/` (`etc/nginx/nginx.conf`), the root
//! itself being `./` and directories ending in `/`. Metadata comes from the report entry, so an
//! overlay restores what was scanned; contents come from disk and are checked against the
//! report's digest as they are streamed.

mod amend;
mod names;
mod output;
mod pax;
mod read;
mod sparse;
mod ustar;
mod write;

pub use amend::amend_report;
pub use read::{
    held_entries, read_overlay, read_overlay_for, read_overlay_resumable, HeldEntries, Interrupted,
    OverlayReceipt, ReadLimits,
};
pub use write::{write_overlay, write_tree, OverlayStats};

#[cfg(test)]
mod tests;
