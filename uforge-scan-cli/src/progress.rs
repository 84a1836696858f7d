//! Progress bars on a terminal, nothing otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use uforge_core::progress::Progress;

/// Draws a spinner with entries, bytes and rate on stderr when it is a terminal.
pub struct Bar {
    bar: ProgressBar,
    files: Arc<AtomicU64>,
}

impl Bar {
    /// A bar if stderr is a terminal and `quiet` is not set, otherwise a hidden one.
    pub fn new(quiet: bool) -> Self {
        let target = if !quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(8)
        } else {
            ProgressDrawTarget::hidden()
        };
        let files = Arc::new(AtomicU64::new(0));
        let counter = files.clone();
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:>9} {files} entries  {bytes} hashed  {binary_bytes_per_sec}  {elapsed}",
        )
        .expect("static template")
        .with_key("files", move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", counter.load(Ordering::Relaxed));
        });
        let bar = ProgressBar::with_draw_target(None, target).with_style(style);
        bar.enable_steady_tick(Duration::from_millis(125));
        Bar { bar, files }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, _total: Option<u64>) {
        self.bar.set_prefix(name.to_string());
    }

    fn advance(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        if bytes > 0 {
            self.bar.inc(bytes);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
