//! The archive being written. File contents are read straight into a small pool of large
//! buffers; each full buffer is written out on the caller's thread, then hashed on another, so
//! that hashing (half the CPU an overlay costs) overlaps reading and writing. Digests are
//! compared on the hashing thread and a mismatch is reported when the writer next asks.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use sha2::{Digest, Sha256};

use super::ustar::BLOCK;
use crate::model::RawPath;
use crate::{rawpath, Error, Result};

/// Buffer size: large reads and writes, and few hand-overs between the two threads (1 MiB
/// measured clearly faster than 256 KiB against `tar | cat` on two cores).
const BUF: usize = 1 << 20;
/// Buffers in flight between the writer and the hashing thread: bounds memory at 4 MiB.
const POOL: usize = 4;
/// Reads into a nearly full buffer would be small; below this much room it is shipped first.
const MIN_READ: usize = 64 << 10;
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// What the hashing thread does with a buffer, in order.
enum Op {
    /// Hash this range of the buffer.
    Data(usize, usize),
    /// Hash this many zeros (a hole of a sparse file).
    Zeros(u64),
    /// The file ends: its digest must be this.
    End([u8; 32], RawPath),
    /// The file ends and its digest is not known (the reader computes it): start afresh.
    EndUnchecked,
}

struct Chunk {
    buf: Box<[u8]>,
    used: usize,
    ops: Vec<Op>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            buf: vec![0; BUF].into_boxed_slice(),
            used: 0,
            ops: Vec::new(),
        }
    }
}

/// The output side of an overlay: see the module documentation.
pub struct Output<'a, W> {
    w: W,
    cur: Chunk,
    flushed: u64,
    allocated: usize,
    work: Sender<Chunk>,
    free: Receiver<Chunk>,
    failed: &'a AtomicBool,
}

/// Runs `body` with an [`Output`] over `w`, then flushes it and waits for every digest to be
/// checked. A digest mismatch wins over whatever error it made `body` stop with.
pub fn with_output<W: Write, T>(
    w: W,
    body: impl FnOnce(&mut Output<'_, W>) -> Result<T>,
) -> Result<T> {
    let (work_tx, work_rx) = crossbeam_channel::bounded::<Chunk>(POOL);
    let (free_tx, free_rx) = crossbeam_channel::bounded::<Chunk>(POOL);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        let failed = &failed;
        let hasher = s.spawn(move || hash_chunks(work_rx, free_tx, failed));
        let mut out = Output {
            w,
            cur: Chunk::new(),
            flushed: 0,
            allocated: 1,
            work: work_tx,
            free: free_rx,
            failed,
        };
        let result = body(&mut out).and_then(|t| out.finish().map(|()| t));
        // Closing the channel lets the hashing thread finish what it has and stop.
        drop(out);
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(Error::Invalid("the hashing thread panicked".into())));
        hashed.and(result)
    })
}

fn hash_chunks(work: Receiver<Chunk>, free: Sender<Chunk>, failed: &AtomicBool) -> Result<()> {
    let mut h = Sha256::new();
    let mut error = None;
    for mut c in work {
        for op in c.ops.drain(..) {
            if error.is_some() {
                continue;
            }
            match op {
                Op::Data(a, b) => h.update(&c.buf[a..b]),
                Op::Zeros(mut n) => {
                    while n > 0 {
                        let k = n.min(ZEROS.len() as u64) as usize;
                        h.update(&ZEROS[..k]);
                        n -= k as u64;
                    }
                }
                Op::EndUnchecked => h.reset(),
                Op::End(digest, path) => {
                    if <[u8; 32]>::from(h.finalize_reset()) != digest {
                        failed.store(true, Ordering::Relaxed);
                        error = Some(Error::Overlay {
                            member: rawpath::display(&path),
                            message: "content changed since the scan though its size and \
                                      mtime did not: its SHA-256 no longer matches the report"
                                .into(),
                        });
                    }
                }
            }
        }
        c.used = 0;
        // The writer may have stopped waiting for buffers: then they are simply dropped.
        let _ = free.send(c);
    }
    error.map_or(Ok(()), Err)
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("write", "overlay output", e)
}

impl<W: Write> Output<'_, W> {
    /// Bytes of archive produced so far.
    pub fn pos(&self) -> u64 {
        self.flushed + self.cur.used as u64
    }

    /// Whether a file's digest has been found not to match (the writer should stop).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Writes the current buffer out and hands it to the hashing thread.
    fn ship(&mut self) -> Result<()> {
        self.w
            .write_all(&self.cur.buf[..self.cur.used])
            .map_err(write_err)?;
        self.flushed += self.cur.used as u64;
        let next = match self.free.try_recv() {
            Ok(c) => c,
            Err(_) if self.allocated < POOL => {
                self.allocated += 1;
                Chunk::new()
            }
            Err(_) => self
                .free
                .recv()
                .map_err(|_| Error::Invalid("the hashing thread stopped".into()))?,
        };
        let full = std::mem::replace(&mut self.cur, next);
        self.work
            .send(full)
            .map_err(|_| Error::Invalid("the hashing thread stopped".into()))
    }

    fn finish(&mut self) -> Result<()> {
        if self.cur.used > 0 || !self.cur.ops.is_empty() {
            self.ship()?;
        }
        self.w.flush().map_err(write_err)
    }

    /// Appends bytes that are not file content (headers, maps, padding).
    pub fn put(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.cur.used == BUF {
                self.ship()?;
            }
            let n = data.len().min(BUF - self.cur.used);
            self.cur.buf[self.cur.used..self.cur.used + n].copy_from_slice(&data[..n]);
            self.cur.used += n;
            data = &data[n..];
        }
        Ok(())
    }

    /// Appends `n` zeros that are not hashed (the rest of a file that shrank under the reader).
    pub fn put_zeros(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.put(&ZEROS[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Pads the archive to a whole block.
    pub fn pad(&mut self) -> Result<()> {
        let rem = (self.pos() % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&ZEROS[..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Copies `len` bytes of `file` from `offset` into the archive and into the digest of the
    /// file being written. Returns how many were copied: fewer when the file ended early.
    pub fn copy_from(&mut self, file: &File, path: &Path, offset: u64, len: u64) -> Result<u64> {
        let mut done = 0u64;
        while done < len {
            if BUF - self.cur.used < MIN_READ {
                self.ship()?;
            }
            let start = self.cur.used;
            let room = (BUF - start).min(usize::try_from(len - done).unwrap_or(usize::MAX));
            let n = match file.read_at(&mut self.cur.buf[start..start + room], offset + done) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", path, e)),
            };
            self.cur.ops.push(Op::Data(start, start + n));
            self.cur.used += n;
            done += n as u64;
        }
        Ok(done)
    }

    /// Adds `n` zeros to the digest of the file being written (a hole not in the archive).
    pub fn hash_zeros(&mut self, n: u64) {
        if n > 0 {
            self.cur.ops.push(Op::Zeros(n));
        }
    }

    /// Ends the file being written: its digest must be `digest`, or the overlay fails naming
    /// `path`.
    pub fn end_file(&mut self, digest: [u8; 32], path: &[u8]) {
        self.cur.ops.push(Op::End(digest, path.to_vec()));
    }

    /// Ends the file being written without checking its digest (an amended file).
    pub fn end_file_unchecked(&mut self) {
        self.cur.ops.push(Op::EndUnchecked);
    }
}
