//! Connection flags shared by `uforge-scan run` and `uforge`: the flags UForge users know
//! (`-U URL -u USER -p TOKEN`), with the token also from the environment or a file so that it
//! need not appear in a process list.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use uforge_client::{Client, Credentials, TlsOptions};

/// How to reach and authenticate to a uforge server.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Server URL (`https://host:8443`); every command that talks to a server needs it.
    #[arg(short = 'U', long = "url", env = "UFORGE_URL", value_name = "URL")]
    pub url: Option<String>,
    /// User name.
    #[arg(short = 'u', long = "user", env = "UFORGE_USER", value_name = "USER")]
    pub user: Option<String>,
    /// API token. Prefer UFORGE_TOKEN or --token-file: a flag shows in the process list.
    #[arg(
        short = 'p',
        long = "token",
        visible_alias = "password",
        env = "UFORGE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Read the API token from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Trust the certificate(s) in this PEM file (a self-signed server's).
    #[arg(long, env = "UFORGE_CACERT", value_name = "PEM")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate. Only for tests: anyone could impersonate it.
    #[arg(long)]
    pub insecure: bool,
}

impl ConnectArgs {
    /// The server URL; an error saying how to give it when it is missing.
    pub fn url(&self) -> Result<&str> {
        match self.url.as_deref() {
            Some(u) if !u.trim().is_empty() => Ok(u),
            _ => bail!("no server URL: give -U https://HOST:PORT or set UFORGE_URL"),
        }
    }

    /// A client for the server these flags name.
    pub fn client(&self) -> Result<Client> {
        let url = self.url()?;
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => bail!("no API token: give -p, UFORGE_TOKEN or --token-file"),
        };
        if token.is_empty() {
            bail!("the API token is empty");
        }
        let creds = Credentials {
            user: self.user.clone(),
            token,
        };
        let tls = TlsOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
        };
        Ok(Client::new(url, &creds, &tls)?)
    }
}
