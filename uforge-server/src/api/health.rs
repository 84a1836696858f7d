//! `GET /health`: is the server up, and who am I.

use axum::{Extension, Json};
use uforge_api::{ErrorBody, Health};

use crate::auth::AuthUser;

/// Server status and the caller's name.
#[utoipa::path(
    get,
    path = "/health",
    tag = "server",
    responses(
        (status = 200, description = "The server is up", body = Health),
        (status = 401, description = "Missing, malformed or wrong token", body = ErrorBody),
    )
)]
pub(crate) async fn health(Extension(user): Extension<AuthUser>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        user: user.name,
    })
}
