//! Credentials handed to publishers as values. The server keeps them encrypted and passes them
//! in for one publication; nothing here prints them: `Debug` shows only which kind they are
//! and the non-secret half (user name, access key id).

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// A secret string (password, token, secret key). Its `Debug` is redacted and its memory is
/// wiped when dropped. It serializes as the plain value, because the server encrypts the
/// serialized credentials as a whole: never serialize one into anything that is logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

/// What a target is accessed with. Later targets use the same kinds: OpenStack Glance and
/// vCenter a user name and password, AWS an access key, Azure a SAS token, GCE a service
/// account key (a token here).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Credentials {
    /// Anonymous access, or access the endpoint itself grants (a local directory, libvirt's
    /// unix socket).
    #[default]
    None,
    /// A user name and password: registry Basic auth or token service, libvirt SASL.
    Password {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A bearer token sent as it is (a registry token issued beforehand).
    Token {
        /// The token.
        token: Secret,
    },
    /// An S3 access key pair, with the session token of temporary credentials.
    AccessKey {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: Secret,
        /// The session token of temporary (STS) credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<Secret>,
    },
}

impl Credentials {
    /// A user name and password.
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Password {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// An S3 access key pair.
    pub fn access_key(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials::AccessKey {
            access_key_id: id.into(),
            secret_access_key: Secret::new(secret),
            session_token: None,
        }
    }

    /// The kind's name (`none`, `password`, `token`, `access-key`), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::None => "none",
            Credentials::Password { .. } => "password",
            Credentials::Token { .. } => "token",
            Credentials::AccessKey { .. } => "access-key",
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::Password { username, .. } => f
                .debug_struct("Credentials::Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Credentials::Token { .. } => f.write_str("Credentials::Token(***)"),
            Credentials::AccessKey { access_key_id, .. } => f
                .debug_struct("Credentials::AccessKey")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let c = Credentials::password("alice", "hunter2-very-secret");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let c = Credentials::access_key("GK123", "s3cr3t-key");
        let shown = format!("{c:?} {:?}", Secret::new("tok-abc"));
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok-abc"),
            "{shown}"
        );
        // The serialized form is what the server encrypts: it round-trips.
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Credentials>(&json).unwrap(), c);
        assert!(json.contains("\"type\":\"access-key\""), "{json}");
    }
}
