//! Progress bars on a terminal; off a terminal, one line per finished phase with its duration.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use uforge_core::progress::Progress;

/// Draws a spinner with entries, bytes and rate on stderr when it is a terminal; otherwise
/// (unless quiet) prints `PHASE: done in SECONDS s` on stderr as each phase ends.
pub struct Bar {
    bar: ProgressBar,
    files: Arc<AtomicU64>,
    /// Off a terminal: the phase under way and when it started.
    lines: Option<Mutex<Option<(String, Instant)>>>,
}

impl Bar {
    /// A bar if stderr is a terminal and `quiet` is not set, otherwise a hidden one.
    pub fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if !quiet && terminal {
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
        Bar {
            bar,
            files,
            lines: (!quiet && !terminal).then(|| Mutex::new(None)),
        }
    }

    /// Off a terminal: ends the phase under way with its line, and starts `next` if any.
    fn line(&self, next: Option<&str>) {
        let Some(lines) = &self.lines else { return };
        let mut cur = lines.lock().unwrap_or_else(|e| e.into_inner());
        // A step that names the phase its caller already started (the overlay writer under
        // the agent's upload) continues it: one line, timed from the start.
        if next.is_some() && cur.as_ref().map(|(name, _)| name.as_str()) == next {
            return;
        }
        if let Some((name, start)) = cur.take() {
            eprintln!("{name}: done in {:.1} s", start.elapsed().as_secs_f64());
        }
        *cur = next.map(|n| (n.to_string(), Instant::now()));
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, _total: Option<u64>) {
        self.line(Some(name));
        self.bar.set_prefix(name.to_string());
    }

    fn advance(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        if bytes > 0 {
            self.bar.inc(bytes);
        }
    }

    fn finish(&self) {
        self.line(None);
        self.bar.finish_and_clear();
    }
}
