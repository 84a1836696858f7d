//! The HTTP API, version 1 (`docs/api.md`): the router and the small helpers and extractors
//! the handlers share.

mod health;
mod images;
mod openapi;
mod packages;
mod publications;
mod repos;
mod scans;
mod targets;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use chrono::{NaiveDateTime, SecondsFormat};
use serde::de::DeserializeOwned;

use crate::db::AnyConnection;
pub(crate) use crate::error::{ApiError, ApiResult};
pub(crate) use crate::state::{AppState, Shared};

/// Where every route lives.
pub const PREFIX: &str = "/api/v1";

/// Runs blocking work (files, the library) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("worker failed: {e}"))))
}

/// Runs queries on a pooled connection, off the async threads.
pub(crate) async fn db<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&mut AnyConnection) -> diesel::QueryResult<T> + Send + 'static,
) -> ApiResult<T> {
    let db = state.db.clone();
    blocking(move || {
        let mut c = db.get()?;
        Ok(f(&mut c)?)
    })
    .await
}

/// A numeric id from the path; anything else names nothing, hence 404.
pub(crate) fn parse_id(text: &str, what: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .map_err(|_| ApiError::not_found(format!("no {what} {text:?}")))
}

/// RFC 3339 in UTC, to the second.
pub(crate) fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Streams a stored file as the answer; 404 if it is gone.
pub(crate) async fn file_response(
    path: &std::path::Path,
    content_type: &'static str,
    download_name: Option<&str>,
) -> ApiResult<Response> {
    let f = tokio::fs::File::open(path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::not_found("the file is gone")
        } else {
            ApiError::internal(format!("cannot open {}: {e}", path.display()))
        }
    })?;
    let len = f
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("cannot stat {}: {e}", path.display())))?
        .len();
    let body =
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 << 10));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(name) = download_name {
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(r)
}

/// Requests with JSON bodies are small; nothing else is read into memory whole.
const MAX_JSON_BODY: usize = 1 << 20;

/// A JSON body whose problems are answered with a JSON 400, like every other error.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let _ = state;
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "cannot read the JSON body (at most {MAX_JSON_BODY} bytes): {e}"
                ))
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Every route: method, path under [`PREFIX`], handler. The router is built from this table
/// and so is [`routes`], which the tests hold against the OpenAPI document.
fn table() -> Vec<(Method, &'static str, MethodRouter<Shared>)> {
    vec![
        (Method::GET, "/health", get(health::health)),
        (Method::GET, "/openapi.json", get(openapi::document)),
        (Method::POST, "/repos", post(repos::create)),
        (Method::GET, "/repos", get(repos::list)),
        (Method::POST, "/repos/{id}/sync", post(repos::sync)),
        (Method::DELETE, "/repos/{id}", delete(repos::remove)),
        (Method::GET, "/machines", get(scans::machines)),
        (Method::POST, "/scans", post(scans::create)),
        (Method::GET, "/scans", get(scans::list)),
        (Method::GET, "/scans/{id}", get(scans::get_one)),
        (Method::DELETE, "/scans/{id}", delete(scans::remove)),
        (
            Method::POST,
            "/scans/{id}/report",
            post(scans::upload_report),
        ),
        (
            Method::GET,
            "/scans/{id}/report",
            get(scans::download_report),
        ),
        (Method::GET, "/scans/{id}/analysis", get(scans::analysis)),
        (
            Method::PUT,
            "/scans/{id}/overlay",
            put(scans::upload_overlay),
        ),
        (
            Method::GET,
            "/scans/{id}/overlay/wanted",
            get(scans::overlay_wanted),
        ),
        (
            Method::GET,
            "/scans/{id}/compare/{other}",
            get(scans::compare),
        ),
        (Method::POST, "/scans/{id}/images", post(images::create)),
        (Method::GET, "/packages", get(packages::list)),
        (Method::GET, "/packages/{file}", get(packages::download)),
        (Method::GET, "/images", get(images::list)),
        (Method::GET, "/images/{id}", get(images::get_one)),
        (Method::DELETE, "/images/{id}", delete(images::remove)),
        (
            Method::GET,
            "/images/{id}/tuning-log",
            get(images::tuning_log),
        ),
        (Method::GET, "/images/{id}/download", get(images::download)),
        (
            Method::POST,
            "/images/{id}/publications",
            post(publications::create),
        ),
        (Method::POST, "/targets", post(targets::create)),
        (Method::GET, "/targets", get(targets::list)),
        (Method::GET, "/targets/{target}", get(targets::get_one)),
        (Method::DELETE, "/targets/{target}", delete(targets::remove)),
        (
            Method::PUT,
            "/targets/{target}/credentials",
            put(targets::set_credentials),
        ),
        (Method::GET, "/publications", get(publications::list)),
        (
            Method::GET,
            "/publications/{id}",
            get(publications::get_one),
        ),
        (
            Method::DELETE,
            "/publications/{id}",
            delete(publications::remove),
        ),
        (
            Method::POST,
            "/publications/{id}/retry",
            post(publications::retry),
        ),
        (Method::GET, "/images/{id}/log", get(images::log)),
        (Method::GET, "/images/{id}/file", get(images::file)),
    ]
}

/// Every route the server answers: method and path relative to [`PREFIX`], with path
/// parameters written `{name}` as in OpenAPI.
pub fn routes() -> Vec<(Method, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed for this endpoint",
    )
}

/// Logs one line per request. Headers are never logged: they carry tokens.
async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        %method,
        path,
        status = res.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    res
}

/// The most a request body may declare: a report's limit for reports, a JSON body's for the
/// routes that take JSON. Overlays are checked member by member as they stream; a body sent
/// where none is expected is never read into memory.
fn body_limit(state: &AppState, method: &Method, path: &str) -> Option<u64> {
    let under = path.strip_prefix(PREFIX).unwrap_or(path);
    let parts: Vec<&str> = under.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::POST, ["scans", _, "report"]) => Some(state.max_report_bytes),
        (
            &Method::POST,
            ["scans"]
            | ["repos"]
            | ["targets"]
            | ["scans", _, "images"]
            | ["images", _, "publications"],
        )
        | (&Method::PUT, ["targets", _, "credentials"]) => Some(MAX_JSON_BODY as u64),
        _ => None,
    }
}

/// Middleware, ahead of authentication: a body declared larger than its route's limit is
/// refused (413) before anything else, and before any of it is read.
async fn limit_body(
    axum::extract::State(state): axum::extract::State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(n), Some(limit)) = (declared, body_limit(&state, req.method(), req.uri().path())) {
        if n > limit {
            let mut r = axum::response::IntoResponse::into_response(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body of {n} bytes is larger than the limit of {limit} bytes for this request"),
            ));
            // The body stays unread: the connection cannot carry another request.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    }
    next.run(req).await
}

/// The whole application: the API under [`PREFIX`], authenticated, and JSON 404s elsewhere.
///
/// Order of the layers, outermost first: the request log, the body limits, authentication
/// (which answers a 401 without reading the body), then the body drain that lets an error
/// answered early still reach an authenticated client.
pub(crate) fn router(state: Shared) -> Router {
    let mut api = Router::new();
    for (_, path, handler) in table() {
        api = api.route(path, handler);
    }
    let api = api
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // Reports and overlays are streamed with their own limits.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(crate::bridge::drain_unread))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_user,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), limit_body))
        .with_state(state);
    Router::new()
        .nest(PREFIX, api)
        .fallback(no_route)
        .layer(middleware::from_fn(log_request))
}
