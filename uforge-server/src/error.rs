//! The error answer of the API: a status and a message naming what was wrong, and how library
//! errors map to statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answer: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    /// The answer's status.
    pub status: StatusCode,
    /// What was wrong, naming the input concerned.
    pub message: String,
}

// The constructors are named for the statuses they answer with.
impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Maps a library error: bad input is the client's (400, or 413 past a size limit), an
    /// unreachable or unverifiable
    /// repository is upstream's (502), the rest is ours (500).
    pub fn from_core(e: uforge_core::Error) -> Self {
        use uforge_core::Error as E;
        match &e {
            E::MalformedReport { .. }
            | E::Overlay { .. }
            | E::BlobMismatch { .. }
            | E::Invalid(_) => Self::bad_request(e.to_string()),
            E::ReportTooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            E::Repo { .. } | E::NotFound { .. } => Self::bad_gateway(e.to_string()),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl ApiError {
    /// Maps the error of reading an upload: a body the client broke off (see
    /// [`crate::bridge`]) is the client's failure, not the server's.
    pub fn from_upload(e: uforge_core::Error) -> Self {
        match &e {
            uforge_core::Error::Io { source, .. }
                if source.kind() == std::io::ErrorKind::ConnectionAborted =>
            {
                Self::bad_request(format!("the upload failed: {source}"))
            }
            _ => Self::from_core(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        }
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"uforge\""),
            );
        }
        r
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::internal(format!("database error: {e}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format!("{e:#}"))
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
