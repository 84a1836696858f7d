//! API tokens and the authentication of every request.
//!
//! Tokens are 32 random bytes shown once as hex; the database keeps only their SHA-256. A fast
//! hash is right here: the secret has full entropy, so there is nothing to slow a guesser
//! down for, and every request pays for the hash.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::db::queries;
use crate::error::ApiError;
use crate::state::Shared;

/// The authenticated caller, put in the request's extensions for handlers.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// User name.
    pub name: String,
    /// Whether the user is an administrator.
    pub admin: bool,
}

/// A fresh token: its text (what the user keeps) and its SHA-256 (what the server keeps).
pub fn new_token() -> anyhow::Result<(String, [u8; 32])> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok((text, hash(&raw)))
}

fn hash(raw: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

/// Decodes a token's text (64 hex digits, either case).
fn parse_token(text: &str) -> Option<[u8; 32]> {
    let b = text.trim().as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Compares without an early exit, so timing says nothing about where two digests differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

enum Credentials {
    Bearer([u8; 32]),
    Basic(String, [u8; 32]),
}

fn credentials(header: &str) -> Option<Credentials> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return parse_token(rest).map(Credentials::Bearer);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, token) = text.split_once(':')?;
        return Some(Credentials::Basic(user.to_string(), parse_token(token)?));
    }
    None
}

/// The 401, sent without reading the body: the connection closes after it rather than take
/// an unauthenticated upload.
fn unauthorized() -> Response {
    let mut r =
        ApiError::unauthorized("missing or invalid API token (send `Authorization: Bearer TOKEN`)")
            .into_response();
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}

/// Lets a request through only with a valid token of an existing user.
pub async fn require_user(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let Some(creds) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credentials)
    else {
        return unauthorized();
    };
    let db = state.db.clone();
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<AuthUser>> {
        let mut c = db.get()?;
        let user = match &creds {
            Credentials::Bearer(raw) => queries::user_by_token(&mut c, &hash(raw))?,
            Credentials::Basic(name, _) => queries::user_by_name(&mut c, name)?,
        };
        let raw = match &creds {
            Credentials::Bearer(r) | Credentials::Basic(_, r) => r,
        };
        Ok(user
            .filter(|u| ct_eq(&u.token_sha256, &hash(raw)))
            .map(|u| AuthUser {
                id: u.id,
                name: u.name,
                admin: u.admin,
            }))
    })
    .await;
    match found {
        Ok(Ok(Some(user))) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Ok(Ok(None)) => unauthorized(),
        Ok(Err(e)) => ApiError::internal(format!("authentication failed: {e:#}")).into_response(),
        Err(e) => ApiError::internal(format!("authentication failed: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let (text, sha) = new_token().unwrap();
        assert_eq!(text.len(), 64);
        let raw = parse_token(&text).unwrap();
        assert!(ct_eq(&hash(&raw), &sha));
        assert!(parse_token(&text[1..]).is_none());
        assert!(parse_token(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn headers() {
        let (text, _) = new_token().unwrap();
        assert!(matches!(
            credentials(&format!("Bearer {text}")),
            Some(Credentials::Bearer(_))
        ));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{text}"));
        match credentials(&format!("Basic {basic}")) {
            Some(Credentials::Basic(u, _)) => assert_eq!(u, "alice"),
            _ => panic!("basic not parsed"),
        }
        assert!(credentials("Bearer nope").is_none());
        assert!(credentials("Digest x").is_none());
        assert!(!ct_eq(b"ab", b"abc"));
    }
}
