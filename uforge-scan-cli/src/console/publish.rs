//! `uforge target`, `uforge publication`, and `uforge image publish|deploy`: images sent to
//! targets by the server, and `image publish FILE --to URL` sent from this machine.
//!
//! Credentials are read from a file (`--credentials-file`, the API's JSON form, e.g.
//! `{"type": "password", "username": "ci", "password": "..."}`), never from the command
//! line, where shell histories and process lists would keep them.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use uforge_api::{ImageStatus, NewPublication, NewTarget, Publication, Target, TargetCredentials};
use uforge_client::{Client, ClientError};
use uforge_core::progress::Progress;
use uforge_core::publish::{self, destination, Credentials, DirCheckpoints, PublishRequest};

use super::emit;
use super::tables::{mib, or_dash};

/// How often `--wait` asks the server how a publication is doing.
const POLL: Duration = Duration::from_secs(1);

/// `uforge target` subcommands.
#[derive(Debug, Subcommand)]
pub enum TargetCmd {
    /// Add a publish target: a registry (`oci://HOST/NAMESPACE`), an S3 store
    /// (`s3://BUCKET/PREFIX/`), a server directory (`dir:///PATH`) or a libvirt host
    /// (`libvirt:///system`).
    Add {
        /// The target's name.
        name: String,
        /// Its endpoint URL.
        #[arg(long = "to", value_name = "URL")]
        url: String,
        /// A JSON file with its credentials (`{"type": "password"|"token"|"access-key", ...}`).
        #[arg(long, value_name = "FILE")]
        credentials_file: Option<PathBuf>,
        /// An option of the URL's kind, `KEY=VALUE` (repeatable): `endpoint`, `region`, `pool`,
        /// `type`, `forward`, `insecure`... `ca=FILE` sends that file's PEM certificates.
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
    /// List targets.
    List,
    /// Show a target (its credentials never are).
    Show {
        /// Target name.
        name: String,
    },
    /// Replace a target's credentials.
    Credentials {
        /// Target name.
        name: String,
        /// A JSON file with the new credentials.
        #[arg(long, value_name = "FILE")]
        credentials_file: PathBuf,
    },
    /// Remove a target (refused while publications to it are recorded).
    Remove {
        /// Target name.
        name: String,
    },
}

/// `uforge publication` subcommands.
#[derive(Debug, Subcommand)]
pub enum PublicationCmd {
    /// List publications, newest first.
    List {
        /// Only the publications of this image.
        #[arg(long, value_name = "ID")]
        image: Option<i64>,
    },
    /// Show a publication: status, phase, bytes sent, error, where the image went.
    Status {
        /// Publication id.
        id: i64,
        /// Follow it until it ends; fail if it failed.
        #[arg(long)]
        wait: bool,
    },
    /// Queue a failed publication again; it resumes what was sent.
    Retry {
        /// Publication id.
        id: i64,
        /// Follow it until it ends; fail if it failed.
        #[arg(long)]
        wait: bool,
    },
    /// Delete a publication and what it pushed to its target.
    Delete {
        /// Publication id.
        id: i64,
    },
}

/// Arguments of `uforge image publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// A server's image id (with `--target`), or an image file of this machine (with `--to`).
    pub image: String,
    /// One of your targets on the server.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "to",
        required_unless_present = "to"
    )]
    pub target: Option<String>,
    /// Publish a local file, without a server: `oci://HOST/NS/REPO[:TAG]`, `s3://BUCKET/PREFIX/`,
    /// `libvirt:///system?pool=P`, `dir:///PATH` (see the README for the options).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Registry tag (default `latest`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Name at the target: repository, object, file or volume name.
    #[arg(long)]
    pub name: Option<String>,
    /// The local file's format (default: read from the file).
    #[arg(long, value_name = "FORMAT", requires = "to")]
    pub format: Option<String>,
    /// A JSON file with the credentials of a local publication.
    #[arg(long, value_name = "FILE", requires = "to")]
    pub credentials_file: Option<PathBuf>,
    /// Follow a server's publication until it ends; fail if it failed.
    #[arg(long)]
    pub wait: bool,
    /// Print no progress.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `uforge image deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The server's image id.
    pub image: i64,
    /// One of your libvirt targets.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// Memory in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory: u64,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// `auto`, `bios` or `uefi`.
    #[arg(long)]
    pub firmware: Option<String>,
    /// The volume's and the machine's name (default: the image's).
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the deployment until it ends; fail if it failed.
    #[arg(long)]
    pub wait: bool,
}

/// Reads a credentials file.
fn read_credentials(path: &Path) -> Result<TargetCredentials> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // serde's message quotes no value of the file.
    serde_json::from_slice(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not credentials JSON ({{\"type\": \"password\", \"username\": ..., \
             \"password\": ...}}, or types token, access-key, none): line {} column {}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// Runs a `target` subcommand.
pub fn target(cmd: TargetCmd, client: &Client, json: bool) -> Result<()> {
    match cmd {
        TargetCmd::Add {
            name,
            url,
            credentials_file,
            options,
        } => {
            let mut map = BTreeMap::new();
            let mut ca_pem = None;
            for o in options {
                let Some((k, v)) = o.split_once('=') else {
                    bail!("--option {o}: expected KEY=VALUE");
                };
                if k == "ca" {
                    ca_pem = Some(
                        std::fs::read_to_string(v)
                            .with_context(|| format!("--option ca={v}: cannot read it"))?,
                    );
                } else {
                    map.insert(k.to_string(), v.to_string());
                }
            }
            let credentials = match credentials_file {
                Some(f) => read_credentials(&f)?,
                None => TargetCredentials::None,
            };
            let t = client.add_target(&NewTarget {
                name,
                kind: None,
                url,
                options: map,
                ca_pem,
                credentials,
            })?;
            emit(json, &t, target_rows)
        }
        TargetCmd::List => emit(json, &client.targets()?, target_list),
        TargetCmd::Show { name } => emit(json, &client.target(&name)?, target_rows),
        TargetCmd::Credentials {
            name,
            credentials_file,
        } => {
            let c = read_credentials(&credentials_file)?;
            emit(
                json,
                &client.set_target_credentials(&name, &c)?,
                target_rows,
            )
        }
        TargetCmd::Remove { name } => {
            client.delete_target(&name)?;
            emit(json, &serde_json::json!({ "deleted": name }), |_| {
                vec!["deleted".into()]
            })
        }
    }
}

/// Runs a `publication` subcommand.
pub fn publication(cmd: PublicationCmd, client: &Client, json: bool) -> Result<()> {
    match cmd {
        PublicationCmd::List { image } => {
            emit(json, &client.publications(image)?, publication_list)
        }
        PublicationCmd::Status { id, wait } => {
            let p = client.publication(id)?;
            end(client, p, wait, json)
        }
        PublicationCmd::Retry { id, wait } => {
            let p = client.retry_publication(id)?;
            end(client, p, wait, json)
        }
        PublicationCmd::Delete { id } => {
            client.delete_publication(id)?;
            super::deleted(json, id)
        }
    }
}

/// Prints a publication, following it first with `wait`; an error if it failed.
fn end(client: &Client, p: Publication, wait: bool, json: bool) -> Result<()> {
    let p = if wait { follow(client, p.id)? } else { p };
    emit(json, &p, publication_rows)?;
    if p.status == ImageStatus::Failed {
        bail!(
            "publication {} failed: {}",
            p.id,
            p.error.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

/// Polls a publication until it ends, drawing a progress line on a terminal.
fn follow(client: &Client, id: i64) -> Result<Publication> {
    let live = std::io::stderr().is_terminal();
    let mut unreachable = 0;
    loop {
        match client.publication(id) {
            Ok(p) => {
                unreachable = 0;
                let ended = p.status.is_final();
                if live {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K{}", progress_line(&p));
                    if ended {
                        let _ = writeln!(err);
                    }
                }
                if ended {
                    return Ok(p);
                }
            }
            Err(ClientError::Transport { .. }) if unreachable < 15 => unreachable += 1,
            Err(e) => return Err(e).with_context(|| format!("cannot follow publication {id}")),
        }
        std::thread::sleep(POLL);
    }
}

/// `uforge image publish` of a server's image, or of a local file with `--to`.
pub fn publish_cmd(
    a: PublishArgs,
    connect: &crate::connect::ConnectArgs,
    json: bool,
) -> Result<()> {
    if let Some(to) = &a.to {
        return publish_local(&a, to, json);
    }
    let id: i64 = a.image.parse().map_err(|_| {
        anyhow::anyhow!(
            "{}: with --target, IMAGE is a server's image id; to publish a local file, use --to URL",
            a.image
        )
    })?;
    let client = connect.client()?;
    let p = client.publish_image(
        id,
        &NewPublication {
            target: a.target.clone().unwrap_or_default(),
            name: a.name.clone(),
            tag: a.tag.clone(),
            ..NewPublication::default()
        },
    )?;
    end(&client, p, a.wait, json)
}

/// `uforge image deploy`.
pub fn deploy_cmd(a: DeployArgs, connect: &crate::connect::ConnectArgs, json: bool) -> Result<()> {
    let client = connect.client()?;
    let p = client.publish_image(
        a.image,
        &NewPublication {
            target: a.target,
            name: a.name,
            start: Some(true),
            memory: Some(a.memory),
            cpus: Some(a.cpus),
            firmware: a.firmware,
            tag: None,
        },
    )?;
    end(&client, p, a.wait, json)
}

/// The library's form of credentials read from a file.
fn core_credentials(c: TargetCredentials) -> Credentials {
    match c {
        TargetCredentials::None => Credentials::None,
        TargetCredentials::Password { username, password } => {
            Credentials::password(username, password)
        }
        TargetCredentials::Token { token } => Credentials::Token {
            token: publish::Secret::new(token),
        },
        TargetCredentials::AccessKey {
            access_key_id,
            secret_access_key,
            session_token,
        } => Credentials::AccessKey {
            access_key_id,
            secret_access_key: publish::Secret::new(secret_access_key),
            session_token: session_token.map(publish::Secret::new),
        },
    }
}

/// Shows a transfer (a local publication, a download) on standard error: on a terminal each
/// phase as it starts and the bytes moved every few seconds; off one, a line per phase with its
/// duration as it ends; nothing when quiet.
pub(super) struct PublishLog {
    start: Instant,
    quiet: bool,
    terminal: bool,
    sent: std::sync::atomic::AtomicU64,
    /// The phase under way, when it started, and when bytes were last shown.
    shown: std::sync::Mutex<(String, Instant, Instant)>,
}

impl PublishLog {
    /// Starts the clock.
    pub(super) fn new(quiet: bool) -> PublishLog {
        let now = Instant::now();
        PublishLog {
            start: now,
            quiet,
            terminal: std::io::stderr().is_terminal(),
            sent: Default::default(),
            shown: std::sync::Mutex::new((String::new(), now, now)),
        }
    }

    /// Off a terminal: the line of the phase that ended, if one was under way.
    fn ended(&self, phase: &mut (String, Instant, Instant)) {
        if !self.quiet && !self.terminal && !phase.0.is_empty() {
            let sent = self.sent.load(std::sync::atomic::Ordering::Relaxed);
            let moved = if sent > 0 {
                format!(", {}", mib(sent))
            } else {
                String::new()
            };
            eprintln!(
                "{}: done in {:.1} s{moved}",
                phase.0,
                phase.1.elapsed().as_secs_f64()
            );
        }
        phase.0.clear();
    }
}

impl Progress for PublishLog {
    fn phase(&self, name: &str, total: Option<u64>) {
        let mut s = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        self.ended(&mut s);
        self.sent.store(0, std::sync::atomic::Ordering::Relaxed);
        if !self.quiet && self.terminal {
            let of = total.map(|t| format!(" ({})", mib(t))).unwrap_or_default();
            eprintln!("[{:>6.1}s] {name}{of}", self.start.elapsed().as_secs_f64());
        }
        *s = (name.to_string(), Instant::now(), Instant::now());
    }

    fn advance(&self, _files: u64, bytes: u64) {
        let sent = self
            .sent
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
            + bytes;
        if self.quiet || !self.terminal {
            return;
        }
        let mut s = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if s.2.elapsed() >= Duration::from_secs(5) {
            s.2 = Instant::now();
            eprintln!(
                "[{:>6.1}s] {} {}",
                self.start.elapsed().as_secs_f64(),
                s.0,
                mib(sent)
            );
        }
    }

    fn finish(&self) {
        let mut s = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        self.ended(&mut s);
    }
}

impl Drop for PublishLog {
    /// The last phase's line, for a transfer whose code does not end its phases.
    fn drop(&mut self) {
        let mut s = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        self.ended(&mut s);
    }
}

/// Where local publications keep their resume points: a cut transfer run again resumes.
fn checkpoint_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("uforge").join("publish")
}

fn publish_local(a: &PublishArgs, to: &str, json: bool) -> Result<()> {
    let dest = destination::parse(to)?;
    let file = PathBuf::from(&a.image);
    let format = match &a.format {
        Some(f) => f.parse()?,
        None => publish::sniff::detect(&file).with_context(|| {
            format!(
                "cannot tell the format of {}; give --format",
                file.display()
            )
        })?,
    };
    let credentials = match &a.credentials_file {
        Some(f) => core_credentials(read_credentials(f)?),
        None => Credentials::None,
    };
    let name = match (&a.name, &a.tag) {
        (Some(n), Some(t)) => Some(format!("{n}:{t}")),
        (None, Some(t)) => {
            let repo = dest.name.clone().unwrap_or_else(|| {
                let f = file.file_name().map(|f| f.to_string_lossy().into_owned());
                f.unwrap_or_default()
                    .split('.')
                    .next()
                    .unwrap_or("image")
                    .to_string()
            });
            Some(format!("{}:{t}", repo.split(':').next().unwrap_or(&repo)))
        }
        (n, None) => n.clone().or(dest.name.clone()),
    };
    let checkpoints = DirCheckpoints::new(checkpoint_dir())
        .with_context(|| format!("cannot create {}", checkpoint_dir().display()))?;
    let mut request = PublishRequest::new(&file, format);
    request.name = name;
    request.instance = dest.instance.clone();
    request.checkpoints = &checkpoints;
    let log = PublishLog::new(a.quiet);
    let done = publish::publish(&dest.target, credentials, &request, &log)?;
    emit(json, &done, |p| {
        let mut rows = vec![
            format!("target     {}", p.target),
            format!("location   {}", p.location),
            format!("digest     {}", p.digest),
            format!("size       {} ({} sent)", mib(p.size), mib(p.sent)),
        ];
        if let Some(i) = &p.instance {
            rows.push(format!(
                "instance   {} ({} MiB, {} CPUs, {})",
                i.name,
                i.memory_mib,
                i.cpus,
                i.firmware.name()
            ));
        }
        rows
    })
}

fn target_rows(t: &Target) -> Vec<String> {
    let mut rows = vec![
        format!("target       {} ({})", t.name, t.id),
        format!("type         {}", t.kind),
        format!("url          {}", t.url),
        format!("description  {}", t.description),
        format!(
            "credentials  {}",
            if t.credentials_set { "set" } else { "none" }
        ),
        format!("formats      {}", t.formats.join(", ")),
        format!("created      {}", t.created_at),
    ];
    for (k, v) in &t.options {
        rows.push(format!("option       {k}={v}"));
    }
    rows
}

fn target_list(v: &Vec<Target>) -> Vec<String> {
    let mut rows = vec![format!(
        "{:<20} {:<10} {:<12} URL",
        "NAME", "TYPE", "CREDENTIALS"
    )];
    for t in v {
        rows.push(format!(
            "{:<20} {:<10} {:<12} {}",
            t.name,
            t.kind,
            if t.credentials_set { "set" } else { "none" },
            t.url
        ));
    }
    rows
}

fn progress_line(p: &Publication) -> String {
    let mut line = format!("publication {}: {}", p.id, p.status);
    if p.status == ImageStatus::Running {
        if let Some(phase) = &p.phase {
            line.push(' ');
            line.push_str(phase);
        }
        if let Some(pc) = p.progress.percent {
            line.push_str(&format!(" {pc}%"));
        }
        if p.progress.bytes > 0 {
            line.push_str(&format!(" ({})", mib(p.progress.bytes.max(0) as u64)));
        }
    }
    line
}

fn publication_rows(p: &Publication) -> Vec<String> {
    let mut rows = vec![
        format!("publication {}", p.id),
        format!("image       {}", or_dash(&p.image)),
        format!("target      {}", p.target),
        format!(
            "status      {}",
            progress_line(p).split_once(": ").map_or("", |x| x.1)
        ),
    ];
    if let Some(e) = &p.error {
        rows.push(format!("error       {e}"));
    }
    if let Some(l) = &p.location {
        rows.push(format!("location    {l}"));
    }
    if let Some(d) = &p.digest {
        rows.push(format!("digest      {d}"));
    }
    if let (Some(size), Some(sent)) = (p.size, p.sent) {
        rows.push(format!("size        {} ({} sent)", mib(size), mib(sent)));
    }
    if let Some(i) = &p.instance {
        rows.push(format!(
            "instance    {} ({} MiB, {} CPUs, {})",
            i.name, i.memory, i.cpus, i.firmware
        ));
    }
    rows
}

fn publication_list(v: &Vec<Publication>) -> Vec<String> {
    let mut rows = vec![format!(
        "{:>5}  {:>5}  {:<20} {:<8} {:<9} LOCATION",
        "ID", "IMAGE", "TARGET", "STATUS", "PHASE"
    )];
    for p in v {
        rows.push(format!(
            "{:>5}  {:>5}  {:<20} {:<8} {:<9} {}",
            p.id,
            or_dash(&p.image),
            p.target,
            p.status,
            or_dash(&p.phase),
            or_dash(&p.location)
        ));
    }
    rows
}
