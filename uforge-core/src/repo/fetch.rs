//! Getting bytes from URLs. All network access of the library goes through [`Fetcher`], so a
//! frontend can substitute its own transport (a proxy, a test double, an offline mirror).

use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::err;
use crate::{Error, Result};

/// How to get bytes from a URL.
pub trait Fetcher: Send + Sync {
    /// Opens `url` for reading. A URL that names nothing gives [`Error::NotFound`].
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>>;
}

/// Reads the whole body of `url`; read errors name the URL (a stalled transfer fails mid-body).
pub(crate) fn fetch_bytes(fetcher: &dyn Fetcher, url: &str) -> Result<Vec<u8>> {
    let mut body = fetcher.fetch(url)?;
    let mut out = Vec::new();
    body.read_to_end(&mut out)
        .map_err(|e| err(url, format!("reading: {e}")))?;
    Ok(out)
}

/// Like [`fetch_bytes`], with `Ok(None)` when the URL names nothing.
pub(crate) fn fetch_optional(fetcher: &dyn Fetcher, url: &str) -> Result<Option<Vec<u8>>> {
    match fetch_bytes(fetcher, url) {
        Ok(b) => Ok(Some(b)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `file:/path`, `file:///path` and `file://localhost/path` URLs.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileFetcher;

impl FileFetcher {
    /// The local path a `file:` URL names.
    pub fn path_of(url: &str) -> Result<PathBuf> {
        let rest = url
            .strip_prefix("file:")
            .ok_or_else(|| err(url, "not a file: URL"))?;
        let rest = match rest.strip_prefix("//") {
            Some(r) => r.strip_prefix("localhost").unwrap_or(r),
            None => rest,
        };
        if !rest.starts_with('/') {
            return Err(err(url, "file: URLs must hold an absolute path"));
        }
        Ok(PathBuf::from(
            <std::ffi::OsString as OsStringExt>::from_vec(percent_decode(rest)),
        ))
    }
}

/// Undoes `%XX` escapes, which sources.list URIs may use for spaces and the like.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let digit = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (digit(b[i + 1]), digit(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

impl Fetcher for FileFetcher {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        let path = Self::path_of(url)?;
        match std::fs::File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound {
                url: url.to_string(),
            }),
            Err(e) => Err(err(url, format!("open {}: {e}", path.display()))),
        }
    }
}

/// Fetches `http:` and `https:` URLs with one shared connection pool.
#[cfg(feature = "http")]
pub struct HttpFetcher {
    agent: ureq::Agent,
}

#[cfg(feature = "http")]
impl HttpFetcher {
    /// An agent with connect and per-read timeouts (a stalled mirror fails instead of hanging,
    /// while a long healthy download is not cut off) that honours `http(s)_proxy`.
    pub fn new() -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(20))
            .timeout_read(std::time::Duration::from_secs(60))
            .timeout_write(std::time::Duration::from_secs(60))
            .try_proxy_from_env(true)
            .user_agent(concat!("uforge/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpFetcher { agent }
    }
}

#[cfg(feature = "http")]
impl Default for HttpFetcher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "http")]
impl Fetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        match self.agent.get(url).call() {
            Ok(resp) => Ok(Box::new(resp.into_reader())),
            Err(ureq::Error::Status(404 | 410, _)) => Err(Error::NotFound {
                url: url.to_string(),
            }),
            Err(ureq::Error::Status(code, resp)) => {
                Err(err(url, format!("HTTP {code} {}", resp.status_text())))
            }
            Err(ureq::Error::Transport(t)) => {
                let mut msg = t.kind().to_string();
                if let Some(m) = t.message() {
                    msg = format!("{msg}: {m}");
                }
                if let Some(src) = std::error::Error::source(&t) {
                    msg = format!("{msg}: {src}");
                }
                Err(err(url, msg))
            }
        }
    }
}

/// Dispatches on the URL scheme: `file:` always, `http(s):` when built with the `http` feature.
pub struct SchemeFetcher {
    #[cfg(feature = "http")]
    http: HttpFetcher,
}

impl SchemeFetcher {
    /// A dispatcher with its own HTTP connection pool.
    pub fn new() -> Self {
        SchemeFetcher {
            #[cfg(feature = "http")]
            http: HttpFetcher::new(),
        }
    }
}

impl Default for SchemeFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher for SchemeFetcher {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        if url.starts_with("file:") {
            return FileFetcher.fetch(url);
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            #[cfg(feature = "http")]
            return self.http.fetch(url);
            #[cfg(not(feature = "http"))]
            return Err(err(
                url,
                "this build of uforge has no HTTP support (feature `http` disabled)",
            ));
        }
        Err(err(
            url,
            "unsupported URL scheme (supported: file:, http:, https:)",
        ))
    }
}

/// The fetcher frontends use unless they bring their own.
pub fn default_fetcher() -> Box<dyn Fetcher> {
    Box::new(SchemeFetcher::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls() {
        assert_eq!(
            FileFetcher::path_of("file:/srv/r").unwrap(),
            PathBuf::from("/srv/r")
        );
        assert_eq!(
            FileFetcher::path_of("file:///srv/r").unwrap(),
            PathBuf::from("/srv/r")
        );
        assert_eq!(
            FileFetcher::path_of("file://localhost/a%20b").unwrap(),
            PathBuf::from("/a b")
        );
        assert!(FileFetcher::path_of("file:relative").is_err());
        let e = default_fetcher()
            .fetch("file:/nonexistent/uforge/x")
            .err()
            .unwrap();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let e = default_fetcher().fetch("ftp://x/y").err().unwrap();
        assert!(e.to_string().contains("ftp://x/y"), "{e}");
    }
}
