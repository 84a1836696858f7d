//! OpenPGP signatures of Release files, checked with `gpgv` as apt does: gpgv only verifies
//! against the keyring it is given, with no trust database or user state involved.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

use super::cache::TempFile;
use super::err;
use crate::{Error, Result};

/// Verifies a clearsigned `InRelease` and returns the signed text (as gpgv extracted it, so
/// that nothing outside the signature can slip in).
pub(crate) fn inrelease(data: &[u8], keyring: &Path, tmp: &Path, url: &str) -> Result<Vec<u8>> {
    let input = temp_with(tmp, "InRelease", data)?;
    let out = TempFile::name_in(tmp, "InRelease-verified")?;
    let args = [
        OsStr::new("--output"),
        out.path().as_os_str(),
        input.path().as_os_str(),
    ];
    run(&args, keyring, tmp, url)?;
    std::fs::read(out.path()).map_err(|e| Error::io("read", out.path(), e))
}

/// Verifies `Release` against its detached `Release.gpg`.
pub(crate) fn detached(
    release: &[u8],
    sig: &[u8],
    keyring: &Path,
    tmp: &Path,
    url: &str,
) -> Result<()> {
    let data = temp_with(tmp, "Release", release)?;
    let sig = temp_with(tmp, "Release.gpg", sig)?;
    run(
        &[sig.path().as_os_str(), data.path().as_os_str()],
        keyring,
        tmp,
        url,
    )
}

fn temp_with(dir: &Path, hint: &str, bytes: &[u8]) -> Result<TempFile> {
    let (t, mut f) = TempFile::create_in(dir, hint)?;
    std::io::Write::write_all(&mut f, bytes).map_err(|e| Error::io("write", t.path(), e))?;
    Ok(t)
}

/// Runs gpgv with `args` after the keyring and status options, and judges its status output.
fn run(args: &[&OsStr], keyring: &Path, tmp: &Path, url: &str) -> Result<()> {
    let (keyring, _dearmored) = binary_keyring(keyring, tmp)?;
    let out = Command::new("gpgv")
        .env("LC_ALL", "C")
        .arg("--keyring")
        .arg(&keyring)
        .args(["--status-fd", "1"])
        .args(args)
        .output()
        .map_err(|e| err(url, format!("cannot run gpgv to check the signature: {e}")))?;
    let status = String::from_utf8_lossy(&out.stdout);
    let count = |tag: &str| {
        status
            .lines()
            .filter(|l| {
                l.strip_prefix("[GNUPG:] ")
                    .is_some_and(|r| r.starts_with(tag))
            })
            .count()
    };
    let good = count("GOODSIG ") > 0 && count("VALIDSIG ") > 0;
    let bad = count("BADSIG ") + count("REVKEYSIG ") > 0;
    // An archive signed by several keys makes gpgv fail when the keyring holds only some of
    // them (signed-by with one release key); like apt, that is fine if one signature is good.
    let only_missing_keys = count("ERRSIG ") == count("NO_PUBKEY ");
    if good && !bad && (out.status.success() || only_missing_keys) {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(err(
        url,
        format!(
            "signature check failed with keyring {} ({}): {msg}",
            keyring.display(),
            out.status
        ),
    ))
}

/// gpgv reads only binary keyrings; an ASCII-armored one (`.asc`) is decoded to a temporary file.
pub(super) fn binary_keyring(path: &Path, tmp: &Path) -> Result<(PathBuf, Option<TempFile>)> {
    // gpgv looks up slash-less names in its home directory, not the current one.
    let path = &std::path::absolute(path).map_err(|e| Error::io("resolve keyring", path, e))?;
    let bytes = std::fs::read(path).map_err(|e| Error::io("read keyring", path, e))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t)
            if t.trim_start()
                .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") =>
        {
            t
        }
        _ => return Ok((path.to_path_buf(), None)),
    };
    let binary = dearmor(text).map_err(|m| err(path.display(), m))?;
    let t = temp_with(tmp, "keyring.gpg", &binary)?;
    Ok((t.path().to_path_buf(), Some(t)))
}

/// Decodes every armored key block of a keyring, concatenated (the binary keyring format).
fn dearmor(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(l) = lines.next() {
        if l != "-----BEGIN PGP PUBLIC KEY BLOCK-----" {
            continue;
        }
        // Armor headers (`Comment: ...`) end at the first empty line.
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
        }
        let mut b64 = String::new();
        for l in lines.by_ref() {
            // `=XXXX` is the CRC-24 line; the OpenPGP packets carry their own integrity.
            if l.starts_with("-----END") || (l.starts_with('=') && l.len() == 5) {
                break;
            }
            b64.push_str(l);
        }
        out.extend(
            crate::rawpath::B64
                .decode(b64.as_bytes())
                .map_err(|e| format!("malformed armored keyring: {e}"))?,
        );
    }
    if out.is_empty() {
        return Err("armored keyring holds no public key block".into());
    }
    Ok(out)
}
