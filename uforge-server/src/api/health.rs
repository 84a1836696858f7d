//! `GET /health`: is the server up, and who am I.

use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::auth::AuthUser;

/// The server's status, version, and the caller's name.
pub(crate) async fn health(Extension(user): Extension<AuthUser>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "user": user.name,
    }))
}
