//! What the publish tests share: test files, a progress that counts, a stop switch.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use uforge_core::progress::Progress;

/// Writes `size` pseudo-random (incompressible) bytes to `path`, from `seed`; returns their
/// SHA-256 in hex.
pub fn random_file(path: &Path, size: u64, seed: u64) -> String {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        h.update(&buf[..n]);
        left -= n as u64;
    }
    f.flush().unwrap();
    hex(&h.finalize())
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Counts the bytes a publication reports as sent, and the phases it went through; calls
/// `at` once when the count first passes `trigger` (to cut a transfer half way).
pub struct Counter<'a> {
    pub sent: AtomicU64,
    pub phases: std::sync::Mutex<Vec<String>>,
    trigger: u64,
    at: std::sync::Mutex<Option<Box<dyn FnOnce() + Send + 'a>>>,
}

impl<'a> Counter<'a> {
    pub fn new() -> Self {
        Self::cut_at(u64::MAX, || {})
    }

    pub fn cut_at(trigger: u64, at: impl FnOnce() + Send + 'a) -> Self {
        Counter {
            sent: AtomicU64::new(0),
            phases: Default::default(),
            trigger,
            at: std::sync::Mutex::new(Some(Box::new(at))),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Progress for Counter<'_> {
    fn phase(&self, name: &str, _total: Option<u64>) {
        self.phases.lock().unwrap().push(name.to_string());
    }

    fn advance(&self, _files: u64, bytes: u64) {
        let phase = self.phases.lock().unwrap().last().cloned();
        if phase.as_deref() != Some("upload") {
            return;
        }
        let now = self.sent.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if now >= self.trigger {
            if let Some(f) = self.at.lock().unwrap().take() {
                f();
            }
        }
    }
}
