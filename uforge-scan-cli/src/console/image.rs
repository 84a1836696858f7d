//! `uforge image`: machine images built from scans.
//!
//! The remote subcommands ask a server to build an image of a complete scan and then follow,
//! fetch or delete the job. Local subcommands, which work on files and need no server, belong
//! to the same group: see the marked places in [`ImageCmd`] and [`run`].

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use anyhow::{bail, Result};
use clap::Subcommand;
use uforge_api::{Image, ImageStatus};
use uforge_client::{Client, ClientError};

use super::emit;
use super::tables::{self, mib, progress_line};
use crate::connect::ConnectArgs;

/// How often `--wait` asks the server how a job is doing.
const POLL: Duration = Duration::from_secs(2);

/// Consecutive failures to reach the server that `--wait` rides out (a server restart, a
/// network blip) before giving up; the job itself goes on regardless.
const UNREACHABLE_POLLS: u32 = 15;

/// `uforge image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build an image on this machine from a report and its overlay, without a server
    /// (needs root: loop devices, mounts, chroots).
    Build(Box<super::image_local::BuildArgs>),
    /// List every difference between an image's filesystem and the scanned machine (or, with
    /// `--template`, what its template states) that the image's tuning log does not explain;
    /// exit status 1 if there is any.
    Verify(super::image_local::VerifyArgs),
    /// Ask the server to build an image of a complete scan (the job runs in the background).
    Generate {
        /// Scan id.
        scan: i64,
        /// Image format: raw, qcow2, vmdk, vhd, vhdx, vdi, ova, oci, docker-archive, tar.gz.
        #[arg(short = 'f', long, value_name = "FORMAT")]
        format: String,
        /// Target, network, package upgrades.
        #[command(flatten)]
        image: super::image_options::ImageOptions,
        /// Follow the job until it ends; fail if the image could not be built.
        #[arg(long)]
        wait: bool,
    },
    /// Show an image job: status, phase, progress, error, size and digest.
    Status {
        /// Image id.
        id: i64,
        /// Follow the job until it ends; fail if the image could not be built.
        #[arg(long)]
        wait: bool,
    },
    /// Print the whole output of the step that failed a failed image job (its error shows
    /// only the end).
    Log {
        /// Image id.
        id: i64,
    },
    /// List image jobs, newest first.
    List {
        /// Only the images of this scan.
        #[arg(long, value_name = "ID")]
        scan: Option<i64>,
    },
    /// Download a finished image.
    Download {
        /// Image id.
        id: i64,
        /// Where to write it (default: the server's file name, in the current directory). An
        /// existing file is not overwritten.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Link to the server's file instead of copying it: a reflink where the filesystem
        /// has them, else a hard link (which shares the server's bytes: copy it before writing
        /// to it). Only on the server's host, on the filesystem of its data directory.
        #[arg(long)]
        link: bool,
        /// Print no progress (by default the bytes received every few seconds, on standard
        /// error).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Delete an image job and its file (refused while it is being built).
    Delete {
        /// Image id.
        id: i64,
    },
    /// Publish a server's image to one of your targets (`--target`), or a local image file
    /// straight to a registry, S3 store, libvirt host or directory (`--to`, no server).
    Publish(super::publish::PublishArgs),
    /// Publish a server's image to a libvirt target and start a machine from it.
    Deploy(super::publish::DeployArgs),
}

/// Runs an `image` subcommand; `json` prints JSON instead of tables.
pub fn run(cmd: ImageCmd, connect: &ConnectArgs, json: bool) -> Result<()> {
    match cmd {
        // Local subcommands need no server.
        ImageCmd::Build(a) => super::image_local::build(&a, json),
        ImageCmd::Verify(a) => super::image_local::verify(&a, json),
        // Local with --to, remote with --target.
        ImageCmd::Publish(a) => super::publish::publish_cmd(a, connect, json),
        ImageCmd::Deploy(a) => super::publish::deploy_cmd(a, connect, json),
        remote => run_remote(remote, connect, json),
    }
}

fn run_remote(cmd: ImageCmd, connect: &ConnectArgs, json: bool) -> Result<()> {
    let client = connect.client()?;
    match cmd {
        ImageCmd::Build(_) | ImageCmd::Verify(_) | ImageCmd::Publish(_) | ImageCmd::Deploy(_) => {
            anyhow::bail!("handled by run")
        }
        ImageCmd::Generate {
            scan,
            format,
            image,
            wait,
        } => {
            let job = client.queue_image(
                scan,
                &uforge_api::NewImage {
                    format,
                    target: image.target,
                    network: Some(image.network),
                    allow_upgrades: image.allow_upgrades,
                },
            )?;
            if wait {
                finish(&follow(&client, job.id)?, json)
            } else {
                emit(json, &job, tables::image)
            }
        }
        ImageCmd::Status { id, wait } => {
            if wait {
                finish(&follow(&client, id)?, json)
            } else {
                emit(json, &client.image(id)?, tables::image)
            }
        }
        ImageCmd::Log { id } => {
            let mut out = std::io::stdout().lock();
            client
                .image_log(id, &mut out)
                .with_context(|| format!("cannot fetch the log of image {id}"))?;
            out.flush()?;
            Ok(())
        }
        ImageCmd::List { scan } => emit(json, &client.list_images(scan)?[..], tables::images),
        ImageCmd::Download {
            id,
            output,
            link,
            quiet,
        } => download(&client, id, output, link, quiet, json),
        ImageCmd::Delete { id } => {
            client.delete_image(id)?;
            super::deleted(json, id)
        }
    }
}

/// Prints a job that has ended; an error (after the job is printed) if it failed.
fn finish(job: &Image, json: bool) -> Result<()> {
    emit(json, job, tables::image)?;
    if job.status == ImageStatus::Failed {
        bail!(
            "image {} failed: {}",
            job.id,
            job.error.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

/// Polls a job until it is `done` or `failed`, drawing a progress line on a terminal; off a
/// terminal, one line per phase as it ends, with its duration (as the server's polls see it).
fn follow(client: &Client, id: i64) -> Result<Image> {
    let live = std::io::stderr().is_terminal();
    let mut unreachable = 0;
    let mut phases = PhaseLines::default();
    loop {
        match client.image(id) {
            Ok(job) => {
                unreachable = 0;
                let ended = job.status.is_final();
                if !live {
                    phases.see(&job);
                }
                if live {
                    let mut err = std::io::stderr().lock();
                    // Carriage return and clear-line: the line is redrawn in place.
                    let _ = write!(err, "\r\x1b[2K{}", progress_line(&job));
                    if ended {
                        let _ = writeln!(err);
                    }
                    let _ = err.flush();
                }
                if ended {
                    return Ok(job);
                }
            }
            Err(e @ ClientError::Transport { .. }) if unreachable < UNREACHABLE_POLLS => {
                unreachable += 1;
                if live {
                    eprint!("\r\x1b[2Kimage {id}: {e}; trying again");
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot follow image {id}")),
        }
        std::thread::sleep(POLL);
    }
}

/// Off a terminal, the phases of a followed job as lines: `image 7: install done in 41.2 s`.
#[derive(Default)]
struct PhaseLines {
    /// The phase under way and when a poll first saw it.
    current: Option<(String, std::time::Instant)>,
}

impl PhaseLines {
    fn see(&mut self, job: &Image) {
        let phase = job.phase.clone().unwrap_or_default();
        let ended = job.status.is_final();
        let changed = self.current.as_ref().map(|(p, _)| p) != Some(&phase);
        if changed || ended {
            if let Some((p, start)) = self.current.take() {
                let how = match (ended && !changed, job.status) {
                    (true, ImageStatus::Failed) => "failed",
                    _ => "done",
                };
                eprintln!(
                    "image {}: {p} {how} in {:.1} s",
                    job.id,
                    start.elapsed().as_secs_f64()
                );
            }
        }
        if !ended && changed && !phase.is_empty() {
            self.current = Some((phase, std::time::Instant::now()));
        }
    }
}

/// The server's file name if it is a plain one (it comes from the network: no directories, no
/// hidden files), `image-ID` otherwise.
fn default_name(job: &Image, id: i64) -> PathBuf {
    match job.file.as_deref() {
        Some(f) if !f.is_empty() && !f.starts_with('.') && !f.contains(['/', '\\', '\0']) => {
            PathBuf::from(f)
        }
        _ => PathBuf::from(format!("image-{id}")),
    }
}

fn download(
    client: &Client,
    id: i64,
    output: Option<PathBuf>,
    link: bool,
    quiet: bool,
    json: bool,
) -> Result<()> {
    let path = match output {
        Some(p) => p,
        None => default_name(&client.image(id)?, id),
    };
    refuse_existing(&path)?;
    let (size, how) = if link {
        let how = client.link_image(id, &path)?;
        let size = std::fs::metadata(&path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        let how = match how {
            uforge_client::Linked::Reflink => "reflink",
            uforge_client::Linked::HardLink => "hard link",
        };
        (size, Some(how))
    } else {
        let size = client
            .download_image_with(id, &path, &super::publish::PublishLog::new(quiet))
            .with_context(|| format!("cannot download image {id} to {}", path.display()))?;
        (size, None)
    };
    let done = Downloaded {
        id,
        file: path.display().to_string(),
        size,
        linked: how,
    };
    emit(json, &done, |d| match d.linked {
        Some(how) => vec![format!(
            "{} ({}, {how} to the server's file)",
            d.file,
            mib(d.size)
        )],
        None => vec![format!("{} ({})", d.file, mib(d.size))],
    })
}

/// What `image download` prints.
#[derive(serde::Serialize)]
struct Downloaded {
    id: i64,
    file: String,
    size: u64,
    /// `reflink` or `hard link` with `--link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<&'static str>,
}

fn refuse_existing(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        bail!(
            "{} exists already; choose another file with -o or remove it",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A job as the server sends it, with the fields given in `fields` and defaults for the
    /// others.
    fn job(fields: Value) -> Image {
        let mut v = json!({
            "id": 1, "scan": 1, "machine": "web01", "format": "qcow2", "target": "kvm",
            "network": "keep", "status": "queued", "phase": null,
            "progress": {"step": null, "steps": 5, "files": 0, "bytes": 0,
                         "total_bytes": null, "percent": null},
            "error": null, "file": null, "size": null, "sha256": null,
            "created_at": "2026-01-01T00:00:00Z", "started_at": null, "finished_at": null,
            "download_url": null, "tuning_log_url": null,
        });
        for (k, x) in fields.as_object().unwrap() {
            match (k.as_str(), x) {
                ("progress", Value::Object(p)) => {
                    for (pk, px) in p {
                        v["progress"][pk] = px.clone();
                    }
                }
                _ => v[k] = x.clone(),
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn progress_lines() {
        let running = job(json!({
            "id": 7, "status": "running", "phase": "install",
            "progress": {"step": 2, "steps": 5, "percent": 41, "files": 12, "bytes": 3145728}
        }));
        assert_eq!(
            progress_line(&running),
            "image 7: running [2/5] install 41% (12 files, 3.0 MiB)"
        );
        let queued = job(json!({"id": 8, "status": "queued", "phase": null, "progress": {}}));
        assert_eq!(progress_line(&queued), "image 8: queued");
    }

    #[test]
    fn server_file_names_stay_in_the_directory() {
        let named = |f: Value| default_name(&job(json!({ "file": f })), 3);
        assert_eq!(named(json!("web01.qcow2")), Path::new("web01.qcow2"));
        for bad in [
            json!("../x"),
            json!("/etc/passwd"),
            json!(".bashrc"),
            json!(null),
        ] {
            assert_eq!(named(bad), Path::new("image-3"));
        }
    }
}
