//! The libvirt target: the image goes into a storage pool as a volume (`virsh vol-upload`,
//! in chunks, each one a resume point), and with an [`InstanceSpec`](super::InstanceSpec) a
//! domain is defined from the image's hardware profile and started.
//!
//! libvirt is driven through `virsh` rather than the C library: nothing to link at build
//! time (core builds without libvirt's headers), the same code for every libvirt version and
//! every connection URI (`qemu+ssh://` included), and `vol-upload` already streams. A
//! user name and password go to `virsh` in a private `LIBVIRT_AUTH_FILE`, never on its
//! command line.

mod domain;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::error::{ErrorKind, Result, TargetError};
use super::hardware;
use super::io::{check_sha256, image_io, open_image, sha256_of, FileRange, BUF};
use super::{
    Credentials, Instance, LibvirtTarget, Publication, PublishRequest, Published, Publisher,
    TargetSpec,
};
use crate::image::Format;
use crate::progress::Progress;

/// Bytes per `vol-upload` call: the resume granularity.
const CHUNK: u64 = 256 << 20;

/// Publishes to a libvirt storage pool and starts domains.
pub struct LibvirtPublisher {
    spec: TargetSpec,
    t: LibvirtTarget,
    name: String,
    /// The private auth file holding a user name and password, removed on drop.
    auth_file: Option<PathBuf>,
}

impl Drop for LibvirtPublisher {
    fn drop(&mut self) {
        if let Some(p) = &self.auth_file {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What a cut upload left: which image, how far.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    sha256: String,
    offset: u64,
}

impl LibvirtPublisher {
    /// A publisher for `target`; `credentials` are none (a unix socket, ssh keys) or a user
    /// name and password (SASL).
    pub fn new(target: LibvirtTarget, credentials: Credentials) -> Result<Self> {
        let spec = TargetSpec::Libvirt(target.clone());
        let name = spec.display();
        let auth_file = match &credentials {
            Credentials::None => None,
            Credentials::Password { username, password } => {
                Some(auth_file(&name, username, password.expose())?)
            }
            other => {
                return Err(TargetError::new(
                    &name,
                    ErrorKind::Invalid,
                    format!(
                        "libvirt takes a user name and password, not {} credentials",
                        other.kind()
                    ),
                ))
            }
        };
        Ok(LibvirtPublisher {
            spec,
            t: target,
            name,
            auth_file,
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new("virsh");
        c.arg("-q").arg("-c").arg(&self.t.uri);
        if let Some(p) = &self.auth_file {
            c.env("LIBVIRT_AUTH_FILE", p);
        }
        c
    }

    /// Runs `virsh ARGS`; its standard output, or an error classified from what it said.
    fn virsh<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(self.failure(&out.stderr))
    }

    fn spawn_error(&self, e: std::io::Error) -> TargetError {
        TargetError::new(
            &self.name,
            ErrorKind::Local,
            format!("running virsh (package libvirt-clients): {e}"),
        )
    }

    fn failure(&self, stderr: &[u8]) -> TargetError {
        let text = String::from_utf8_lossy(stderr);
        let msg: Vec<&str> = text
            .lines()
            .map(|l| l.trim().trim_start_matches("error: ").trim())
            .filter(|l| !l.is_empty())
            .collect();
        let msg = msg.join("; ");
        let lower = msg.to_ascii_lowercase();
        let kind = if lower.contains("failed to connect")
            || lower.contains("cannot recv data")
            || lower.contains("connection refused")
            || lower.contains("end of file while reading")
        {
            ErrorKind::Unreachable
        } else if lower.contains("authentication") || lower.contains("access denied") {
            ErrorKind::Unauthorized
        } else if lower.contains("no space left") || lower.contains("disk quota") {
            ErrorKind::NoSpace
        } else if lower.contains("not found") || lower.contains("no storage pool") {
            ErrorKind::NotFound
        } else {
            ErrorKind::Rejected
        };
        TargetError::new(&self.name, kind, msg)
    }

    fn volume_exists(&self, vol: &str) -> Result<bool> {
        match self.virsh(&["vol-info", "--pool", &self.t.pool, vol]) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound && e.message.contains("vol") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends `len` bytes from `offset` of the image into the volume at the same offset.
    fn upload_chunk(
        &self,
        vol: &str,
        file: &std::fs::File,
        req: &PublishRequest<'_>,
        offset: u64,
        len: u64,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut child = self
            .command()
            .args(["vol-upload", "--pool", &self.t.pool, vol, "/dev/stdin"])
            .arg("--offset")
            .arg(offset.to_string())
            .arg("--length")
            .arg(len.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut r = FileRange::new(file, offset, len);
        let mut buf = vec![0u8; BUF];
        let mut sent: Result<()> = Ok(());
        loop {
            if let Err(e) = req.check_cancel(&self.name) {
                sent = Err(e);
                break;
            }
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    sent = Err(image_io(&self.name, "read", req.image, &e));
                    break;
                }
            };
            // A write error means virsh stopped reading: its own message says why.
            if stdin.write_all(&buf[..n]).is_err() {
                break;
            }
            progress.advance(0, n as u64);
        }
        drop(stdin);
        let mut err = Vec::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_end(&mut err);
        }
        let status = child.wait().map_err(|e| self.spawn_error(e))?;
        sent?;
        if !status.success() {
            return Err(self.failure(&err).context(format!("uploading {vol}")));
        }
        Ok(())
    }
}

/// Writes a libvirt auth file (mode 0600) giving the user name and password.
fn auth_file(target: &str, user: &str, password: &str) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    if [user, password].iter().any(|s| s.contains('\n')) {
        return Err(TargetError::new(
            target,
            ErrorKind::Invalid,
            "a libvirt user name or password cannot hold a line break",
        ));
    }
    let path = std::env::temp_dir().join(format!(
        "uforge-libvirt-auth-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let text = format!(
        "[credentials-uforge]\nauthname={user}\npassword={password}\n\n\
         [auth-libvirt-default]\ncredentials=uforge\n"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| super::error::local_io(target, "write", &path, &e))?;
    Ok(path)
}

/// A libvirt object name: no `/` (a volume name is a file name in a directory pool), no
/// control characters.
fn check_object_name(target: &str, what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(TargetError::new(
            target,
            ErrorKind::Invalid,
            format!("`{name}` cannot name a libvirt {what}"),
        ));
    }
    Ok(())
}

impl Publisher for LibvirtPublisher {
    fn target(&self) -> &TargetSpec {
        &self.spec
    }

    fn publish(&self, req: &PublishRequest<'_>, progress: &dyn Progress) -> Result<Publication> {
        progress.phase("check", None);
        let vol = req.file_name();
        check_object_name(&self.name, "volume", &vol)?;
        let disk_format = match req.format {
            Format::Qcow2 => "qcow2",
            Format::Raw => "raw",
            other => {
                return Err(TargetError::new(
                    &self.name,
                    ErrorKind::Unsupported,
                    format!("libvirt runs qcow2 and raw disks, not {other}"),
                ))
            }
        };
        // Everything that can make the deployment fail is checked before the upload.
        let instance = match &req.instance {
            None => None,
            Some(spec) => {
                let domain = spec.name.clone().unwrap_or_else(|| {
                    vol.rsplit_once('.')
                        .map_or(vol.clone(), |(stem, _)| stem.to_string())
                });
                check_object_name(&self.name, "domain", &domain)?;
                let modes = match req.boot {
                    Some(m) => m,
                    None => hardware::boot_modes(&self.name, req.image, req.format)?,
                };
                let firmware = spec.firmware.resolve(modes).map_err(|m| {
                    TargetError::new(
                        &self.name,
                        ErrorKind::Image,
                        format!("{}: {m}", req.image.display()),
                    )
                })?;
                if spec.memory_mib < 64 || spec.cpus == 0 {
                    return Err(TargetError::new(
                        &self.name,
                        ErrorKind::Invalid,
                        format!(
                            "{} MiB and {} CPUs cannot run a machine",
                            spec.memory_mib, spec.cpus
                        ),
                    ));
                }
                Some((domain, firmware, spec))
            }
        };
        let (file, size) = open_image(&self.name, req.image)?;
        let capacity = match req.format {
            Format::Qcow2 => hardware::virtual_size(&self.name, req.image, req.format)?,
            _ => size,
        };
        self.virsh(&["pool-info", &self.t.pool])
            .map_err(|e| e.context(format!("pool {}", self.t.pool)))?;
        progress.finish();
        let sha = match &req.sha256 {
            Some(s) => s.trim_start_matches("sha256:").to_ascii_lowercase(),
            None => sha256_of(&self.name, req.image, &file, size, progress)?,
        };

        let key = format!("libvirt {} {}/{vol}", self.t.uri, self.t.pool);
        let saved: Option<Checkpoint> = req
            .checkpoints
            .load(&key)
            .and_then(|s| serde_json::from_str(&s).ok())
            .filter(|c: &Checkpoint| c.sha256 == sha && c.offset <= size);
        let mut offset = match (self.volume_exists(&vol)?, saved) {
            (true, Some(c)) => c.offset,
            (true, None) => {
                return Err(TargetError::new(
                    &self.name,
                    ErrorKind::Rejected,
                    format!(
                        "pool {} already has a volume {vol} that this image did not leave; \
                         delete it or publish under another name",
                        self.t.pool
                    ),
                ))
            }
            (false, _) => {
                self.virsh(&[
                    "vol-create-as",
                    &self.t.pool,
                    &vol,
                    &capacity.to_string(),
                    "--format",
                    disk_format,
                ])
                .map_err(|e| e.context(format!("creating volume {vol}")))?;
                0
            }
        };
        let first = offset;
        progress.phase("upload", Some(size - offset));
        while offset < size {
            let len = CHUNK.min(size - offset);
            if let Err(e) = self.upload_chunk(&vol, &file, req, offset, len, progress) {
                // A full pool keeps nothing; other cuts keep the volume to resume into.
                if e.kind == ErrorKind::NoSpace {
                    let _ = self.virsh(&["vol-delete", "--pool", &self.t.pool, &vol]);
                    req.checkpoints.remove(&key);
                }
                return Err(e);
            }
            offset += len;
            let cp = serde_json::to_string(&Checkpoint {
                sha256: sha.clone(),
                offset,
            })
            .expect("serializable");
            let _ = req.checkpoints.save(&key, &cp);
        }
        progress.finish();
        check_sha256(&self.name, req.image, req.sha256.as_deref(), &sha)?;

        progress.phase("commit", None);
        self.virsh(&["pool-refresh", &self.t.pool])?;
        let xml = self.virsh(&["vol-dumpxml", "--pool", &self.t.pool, &vol])?;
        // A directory pool's volume is the file: it must be exactly the image.
        if let Some(physical) = xml_number(&xml, "physical") {
            if physical != size {
                return Err(TargetError::new(
                    &self.name,
                    ErrorKind::Mismatch,
                    format!("volume {vol} holds {physical} bytes after the upload of {size}"),
                ));
            }
        }
        progress.finish();
        let mut items = vec![Published::Volume {
            pool: self.t.pool.clone(),
            name: vol.clone(),
        }];
        let mut started = None;
        if let Some((domain, firmware, spec)) = instance {
            progress.phase("provision", None);
            let xml = domain::Domain {
                name: &domain,
                domain_type: &self.t.domain_type,
                memory_mib: spec.memory_mib,
                cpus: spec.cpus,
                firmware,
                pool: &self.t.pool,
                volume: &vol,
                disk_format,
                network: &self.t.network,
            }
            .xml();
            let path = std::env::temp_dir()
                .join(format!("uforge-domain-{}-{domain}.xml", std::process::id()));
            std::fs::write(&path, xml)
                .map_err(|e| super::error::local_io(&self.name, "write", &path, &e))?;
            let defined = self.virsh(&[OsStr::new("define"), path.as_os_str()]);
            let _ = std::fs::remove_file(&path);
            defined.map_err(|e| e.context(format!("defining domain {domain}")))?;
            items.insert(
                0,
                Published::Domain {
                    name: domain.clone(),
                },
            );
            if let Err(e) = self.virsh(&["start", &domain]) {
                let _ = self.virsh(&["undefine", "--nvram", &domain]);
                return Err(e.context(format!("starting domain {domain}")));
            }
            progress.finish();
            started = Some(Instance {
                name: domain,
                firmware,
                memory_mib: spec.memory_mib,
                cpus: spec.cpus,
                forwards: match &self.t.network {
                    super::LibvirtNetwork::User { forwards, .. } => forwards.clone(),
                    _ => Vec::new(),
                },
            });
        }
        req.checkpoints.remove(&key);
        Ok(Publication {
            kind: self.spec.kind(),
            target: self.name.clone(),
            location: format!("{}/{vol}", self.t.pool),
            digest: format!("sha256:{sha}"),
            size,
            sent: size - first,
            items,
            instance: started,
        })
    }

    fn delete(&self, publication: &Publication) -> Result<()> {
        for item in &publication.items {
            match item {
                Published::Domain { name } => {
                    let state = self.virsh(&["domstate", name]);
                    match state {
                        Err(e) if e.kind == ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                        Ok(s) if s.trim() != "shut off" => {
                            self.virsh(&["destroy", name])?;
                        }
                        Ok(_) => {}
                    }
                    if self.virsh(&["undefine", "--nvram", name]).is_err() {
                        self.virsh(&["undefine", name])?;
                    }
                }
                Published::Volume { pool, name } => {
                    match self.virsh(&["vol-delete", "--pool", pool, name]) {
                        Err(e) if e.kind == ErrorKind::NotFound => {}
                        other => {
                            other?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The number in `<TAG unit='bytes'>N</TAG>` of libvirt's XML.
fn xml_number(xml: &str, tag: &str) -> Option<u64> {
    let start = xml.find(&format!("<{tag}"))?;
    let rest = &xml[start..];
    let open_end = rest.find('>')?;
    let close = rest.find(&format!("</{tag}>"))?;
    rest[open_end + 1..close].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_answers_are_read() {
        let xml = "<volume>\n <capacity unit='bytes'>907018240</capacity>\n \
                   <physical unit='bytes'>188388352</physical>\n</volume>";
        assert_eq!(xml_number(xml, "physical"), Some(188388352));
        assert_eq!(xml_number(xml, "capacity"), Some(907018240));
        assert_eq!(xml_number(xml, "allocation"), None);
        let p = LibvirtPublisher::new(
            LibvirtTarget {
                uri: "qemu:///system".into(),
                pool: "default".into(),
                network: super::super::LibvirtNetwork::Network {
                    name: "default".into(),
                },
                domain_type: "kvm".into(),
            },
            Credentials::password("alice", "pw-in-file-only"),
        )
        .unwrap();
        let file = p.auth_file.clone().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("authname=alice"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = p.failure(b"error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/x': No such file or directory\n");
        assert_eq!(e.kind, ErrorKind::Unreachable);
        assert!(
            e.to_string()
                .starts_with("libvirt qemu:///system pool default: failed to connect"),
            "{e}"
        );
        let e = p.failure(b"error: cannot upload to volume x\nerror: No space left on device\n");
        assert_eq!(e.kind, ErrorKind::NoSpace);
        drop(p);
        assert!(!file.exists());
        assert!(check_object_name("t", "volume", "../x").is_err());
        assert!(check_object_name("t", "volume", "web01.qcow2").is_ok());
    }
}
