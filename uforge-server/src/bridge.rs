//! From an HTTP body stream to a blocking [`std::io::Read`], for the library's readers.
//!
//! A task pulls the body and hands its chunks through a small bounded channel to the reader,
//! which runs on a blocking thread: the client is slowed to the reader's pace, so memory stays
//! at a few chunks whatever the size of the upload.
//!
//! Once the reader is gone (it has what it needs, or it found something wrong) the task goes on
//! reading and discarding what the client still sends, after the answer has gone out. Clients
//! commonly send the whole body before they read the answer; closing on them mid-upload would
//! give them a reset instead of the error that says what was wrong. [`drain_unread`] does the
//! same for every request, so that a 401 or a 404 answered before the body is read reaches the
//! client too.

use std::io::{ErrorKind, Read};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks in flight between the body task and the reader.
const CHANNEL_CHUNKS: usize = 16;

/// Most bytes discarded once the reader has stopped: as much as an overlay may hold.
const DRAIN_LIMIT: u64 = 1 << 40;

/// A client that sends nothing for this long is not waited for any more.
const IDLE: Duration = Duration::from_secs(120);

/// The blocking end: reads what the body task forwards.
pub struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    chunk: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => {
                    return Err(std::io::Error::new(
                        ErrorKind::ConnectionAborted,
                        format!("the upload failed: {e}"),
                    ))
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// Splits a body into a reader for a blocking thread and the task that feeds it. The task
/// runs until the body ends, whether or not its handle is kept; it yields the bytes received
/// (discarded ones included), or why the body failed.
pub fn stream(body: Body) -> (BodyReader, JoinHandle<Result<u64, String>>) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let handle = tokio::spawn(pump(body, tx));
    (
        BodyReader {
            rx,
            chunk: Bytes::new(),
        },
        handle,
    )
}

/// A body fed by a pump's channel.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, String>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|r| {
                r.map(Frame::data)
                    .map_err(|e| std::io::Error::new(ErrorKind::ConnectionAborted, e))
            })
        })
    }
}

/// Middleware: the handler gets a body fed by a task that, once the handler lets go of it,
/// reads and discards the rest of what the client sends.
pub async fn drain_unread(req: Request, next: Next) -> Response {
    if http_body::Body::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(pump(body, tx));
    next.run(Request::from_parts(parts, Body::new(ChannelBody { rx })))
        .await
}

async fn pump(mut body: Body, tx: mpsc::Sender<Result<Bytes, String>>) -> Result<u64, String> {
    let mut received = 0u64;
    let mut reader_gone = false;
    let mut discarded = 0u64;
    loop {
        let Ok(frame) = tokio::time::timeout(IDLE, body.frame()).await else {
            let msg = format!("nothing received for {} s", IDLE.as_secs());
            if !reader_gone {
                let _ = tx.send(Err(msg.clone())).await;
            }
            return Err(msg);
        };
        match frame {
            None => return Ok(received),
            Some(Err(e)) => {
                let msg = e.to_string();
                if !reader_gone {
                    let _ = tx.send(Err(msg.clone())).await;
                }
                return Err(msg);
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let len = data.len() as u64;
                received += len;
                if !reader_gone && tx.send(Ok(data)).await.is_err() {
                    reader_gone = true;
                }
                if reader_gone {
                    discarded += len;
                    if discarded > DRAIN_LIMIT {
                        return Ok(received);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::io::ReaderStream;

    fn body_of(data: Vec<u8>, chunk: usize) -> Body {
        Body::from_stream(ReaderStream::with_capacity(
            std::io::Cursor::new(data),
            chunk,
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_arrive_in_order() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i / 1000) as u8).collect();
        let (mut reader, pump) = stream(body_of(data.clone(), 1000));
        let got = tokio::task::spawn_blocking(move || {
            let mut v = Vec::new();
            reader.read_to_end(&mut v).unwrap();
            v
        })
        .await
        .unwrap();
        assert_eq!(got, data);
        assert_eq!(pump.await.unwrap(), Ok(100_000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_early_stop_drains_the_rest() {
        let (mut reader, pump) = stream(body_of(vec![7u8; 50 * 4096], 4096));
        tokio::task::spawn_blocking(move || {
            let mut b = [0u8; 10];
            reader.read_exact(&mut b).unwrap();
        })
        .await
        .unwrap();
        assert_eq!(pump.await.unwrap(), Ok(50 * 4096));
    }
}
