//! The server key and what it seals: target credentials are stored encrypted with
//! XChaCha20-Poly1305 under a 256-bit key kept in `DATA/secret.key` (0600, created on first
//! use). A sealed value is the 24-byte random nonce followed by the ciphertext and its tag;
//! the associated data binds it to its owner and target name, so that a row copied onto
//! another user's or target's row does not open.
//!
//! Losing the key loses every stored credential (targets then need them given again): it is
//! backed up with the data directory, and must not be copied anywhere else.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// The server key, loaded.
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealingKey({})", self.path.display())
    }
}

impl SealingKey {
    /// Loads the key at `path`, creating it (0600, random) if there is none. A key file
    /// readable by others, or of the wrong length, is refused.
    pub fn load_or_create(path: &Path) -> Result<SealingKey> {
        let mut key = [0u8; KEY_LEN];
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("no randomness for the server key: {e}"))?;
                f.write_all(&key)
                    .and_then(|_| f.sync_all())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tracing::info!(path = %path.display(), "created the server key");
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut f = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let mode = f.metadata()?.permissions().mode();
                if mode & 0o077 != 0 {
                    bail!(
                        "{} is readable by others (mode {:o}): the key that seals target \
                         credentials must be 0600",
                        path.display(),
                        mode & 0o777
                    );
                }
                let mut raw = Vec::new();
                f.read_to_end(&mut raw)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if raw.len() != KEY_LEN {
                    bail!(
                        "{} holds {} bytes, not a {KEY_LEN}-byte key",
                        path.display(),
                        raw.len()
                    );
                }
                key.copy_from_slice(&raw);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&key));
        key.fill(0);
        Ok(SealingKey {
            cipher,
            path: path.to_path_buf(),
        })
    }

    /// Seals `plain`, bound to `context`.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Self::seal`] sealed with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            bail!("the sealed value is too short");
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the stored credentials do not open with the server key {} (was the key \
                     replaced, or the row altered?): give the target's credentials again",
                    self.path.display()
                )
            })
    }
}

/// The associated data of a target's credentials.
pub fn target_context(user: i64, target: &str) -> String {
    format!("uforge target credentials\0user {user}\0target {target}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_binds_to_context() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.key");
        let k = SealingKey::load_or_create(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let s = k.seal(b"hunter2", &target_context(1, "reg")).unwrap();
        assert!(!s.windows(7).any(|w| w == b"hunter2"));
        let again = SealingKey::load_or_create(&p).unwrap();
        assert_eq!(
            again.open(&s, &target_context(1, "reg")).unwrap(),
            b"hunter2"
        );
        assert!(again.open(&s, &target_context(2, "reg")).is_err());
        assert!(again.open(&s, &target_context(1, "other")).is_err());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SealingKey::load_or_create(&p).unwrap_err().to_string();
        assert!(e.contains("0600"), "{e}");
    }
}
