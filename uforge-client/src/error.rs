//! What can go wrong talking to a server, kept apart so that the TLS settings and the agent
//! depend on it without depending on the client.

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS settings could not be used.
    #[error("TLS settings: {0}")]
    Tls(String),
    /// The server could not be reached (DNS, connection, TLS handshake, broken stream).
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{method} {url}: HTTP {status}: {message}")]
    Http {
        /// The request's method.
        method: &'static str,
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The server answered something that is not what the API says.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The request's URL.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// A local operation of the library failed (scan, overlay, report).
    #[error(transparent)]
    Core(#[from] uforge_core::Error),
}

impl ClientError {
    /// The HTTP status when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}
