//! The HTTP side of the network targets (registry, S3): one ureq agent per target with its
//! TLS settings, request bodies streamed from the image file, and failures classified into
//! [`ErrorKind`]s that name the target and never the request's credentials or signature.

use std::io::Read;
use std::time::Duration;

use super::error::{redact_url, ErrorKind, Result, TargetError};
use super::TlsSettings;

/// What a request carries.
pub(crate) enum Body<'a> {
    /// Nothing.
    Empty,
    /// A small body in memory.
    Bytes(&'a [u8]),
    /// `len` bytes streamed from a reader.
    Stream(&'a mut dyn Read, u64),
}

/// A target's HTTP client.
pub(crate) struct Http {
    pub(crate) agent: ureq::Agent,
    /// The target, for errors.
    pub(crate) target: String,
}

impl Http {
    /// An agent trusting what `tls` says, with connect and idle timeouts (a stalled
    /// transfer fails instead of hanging; a long healthy one goes on).
    pub(crate) fn new(target: &str, tls: &TlsSettings) -> Result<Self> {
        let config =
            crate::tls::client_config(tls.ca_pem.as_deref().map(str::as_bytes), tls.insecure)
                .map_err(|e| {
                    TargetError::new(target, ErrorKind::Invalid, format!("CA certificate: {e}"))
                })?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(config)
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(300))
            .timeout_write(Duration::from_secs(300))
            .redirects(0)
            .user_agent(concat!("uforge/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Http {
            agent,
            target: target.to_string(),
        })
    }

    /// Sends `req` with `body`. `Ok(Err(response))` is an HTTP error status, for the caller to
    /// read (404 on a HEAD is an answer); transport failures are errors. `what` says what the
    /// request was for, in errors.
    pub(crate) fn send(
        &self,
        req: ureq::Request,
        body: Body<'_>,
        what: &str,
    ) -> Result<std::result::Result<ureq::Response, ureq::Response>> {
        let sending = !matches!(body, Body::Empty);
        let res = match body {
            Body::Empty => req.call(),
            Body::Bytes(b) => req.send_bytes(b),
            Body::Stream(r, len) => req.set("Content-Length", &len.to_string()).send(r),
        };
        match res {
            Ok(r) => Ok(Ok(r)),
            Err(ureq::Error::Status(_, r)) => Ok(Err(r)),
            Err(ureq::Error::Transport(t)) => Err(self.transport(&t, sending).context(what)),
        }
    }

    fn transport(&self, t: &ureq::Transport, sending: bool) -> TargetError {
        let mut msg = t.kind().to_string();
        if let Some(m) = t.message() {
            msg = format!("{msg}: {m}");
        }
        let mut src = std::error::Error::source(t);
        while let Some(s) = src {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg = format!("{msg}: {text}");
            }
            src = s.source();
        }
        let lower = msg.to_ascii_lowercase();
        let kind = if lower.contains("certificate")
            || lower.contains("handshake")
            || lower.contains("tls")
        {
            ErrorKind::Tls
        } else if lower.contains("cancelled") {
            ErrorKind::Cancelled
        } else {
            match t.kind() {
                ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed => ErrorKind::Unreachable,
                ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => ErrorKind::Invalid,
                ureq::ErrorKind::Io if sending => ErrorKind::Interrupted,
                ureq::ErrorKind::Io => ErrorKind::Interrupted,
                _ => ErrorKind::Rejected,
            }
        };
        // ureq quotes the URL in some messages: keep its query (signatures) out.
        let msg = msg
            .split_whitespace()
            .map(|w| if w.contains("://") { redact_url(w) } else { w })
            .collect::<Vec<_>>()
            .join(" ");
        TargetError::new(&self.target, kind, msg)
    }

    /// The error for an HTTP error status, its kind from the status: 401 and 403
    /// unauthorized, 404 not found, 413 and 507 no space, 5xx server, others rejected.
    /// `detail` is what the answer's body says, already extracted by the caller.
    pub(crate) fn status_error(&self, what: &str, status: u16, detail: &str) -> TargetError {
        let kind = match status {
            401 | 403 => ErrorKind::Unauthorized,
            404 => ErrorKind::NotFound,
            413 | 507 => ErrorKind::NoSpace,
            500..=599 => ErrorKind::Server,
            _ => ErrorKind::Rejected,
        };
        let detail = detail.trim();
        let msg = if detail.is_empty() {
            format!("{what}: HTTP {status}")
        } else {
            format!("{what}: HTTP {status}: {detail}")
        };
        TargetError::new(&self.target, kind, msg)
    }
}

/// The first `max` bytes of an error answer's body, as text.
pub(crate) fn body_text(resp: ureq::Response, max: u64) -> String {
    let mut out = Vec::new();
    let _ = resp.into_reader().take(max).read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
