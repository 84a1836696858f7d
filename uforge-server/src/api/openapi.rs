//! `GET /openapi.json`: the API described as OpenAPI 3.1. Written by hand next to
//! `docs/api.md`; a test checks that it names every route of the router.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, compiled in.
pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

/// Serves the document.
pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
