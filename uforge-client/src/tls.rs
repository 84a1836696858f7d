//! TLS settings of the client: the platform's Mozilla roots, plus a server's own certificate
//! when it is self-signed; skipping verification only when asked.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::ClientError;

/// How the client checks the server's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// A PEM file of certificates to trust besides the usual roots (a self-signed server's).
    pub cacert: Option<PathBuf>,
    /// Accept any certificate. Only for tests and first contact: it defeats TLS.
    pub insecure: bool,
}

impl TlsOptions {
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        let pem = match (&self.cacert, self.insecure) {
            (Some(path), false) => Some(
                std::fs::read(path)
                    .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?,
            ),
            _ => None,
        };
        uforge_core::tls::client_config(pem.as_deref(), self.insecure).map_err(|e| {
            ClientError::Tls(match &self.cacert {
                Some(p) => format!("{}: {e}", p.display()),
                None => e,
            })
        })
    }
}
