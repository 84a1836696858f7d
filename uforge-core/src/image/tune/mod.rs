//! Tuning the rebuilt machine for its target, recording every change in the tuning log.
//!
//! Steps that run programs (package installs, the initramfs, the bootloader) are recorded by
//! scanning the root before and after them and comparing, so nothing they touch goes
//! unrecorded; steps that edit a file record the edit themselves.

pub mod apt;
pub mod boot;
pub mod files;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::chroot::{run_in, ChrootMounts};
use super::disk::Disk;
use super::reconcile::scan_like;
use super::{Format, NetworkPolicy, Target, TuningChange, TuningLog, TuningPackage, TuningStep};
use crate::analysis::compare;
use crate::fsroot::{self, Create, Links, RootDir};
use crate::model::{NetMethod, ReportHeader};
use crate::progress::Progress;
use crate::report::ReportReader;
use crate::{Error, Result};

/// What to tune.
#[derive(Debug)]
pub struct TuneSpec<'a> {
    /// The rebuilt root (equal to the scanned machine).
    pub root: &'a Path,
    /// The scanned machine.
    pub header: &'a ReportHeader,
    /// The format being written.
    pub format: Format,
    /// The target platform.
    pub target: Target,
    /// Network policy.
    pub network: NetworkPolicy,
    /// Repositories (sources.list lines, recreated packages' flat repositories included).
    pub sources: &'a [String],
    /// Keyring for repositories that name none (default: the host's apt keyrings).
    pub keyring: Option<&'a Path>,
    /// Scratch directory.
    pub work: &'a Path,
    /// Kernel parameters added to [`boot::CMDLINE`] (a template's).
    pub kernel_params: &'a [String],
    /// Whether installing what tuning adds may upgrade, downgrade or remove the source's
    /// packages; if not, every installed package stays at its scanned version and a
    /// conflict fails the build, named.
    pub allow_upgrades: bool,
}

/// Tunes `spec.root`. `disk` is the disk the root is on, for bootable formats.
pub fn tune(
    spec: &TuneSpec<'_>,
    mut disk: Option<&mut Disk>,
    progress: &dyn Progress,
) -> Result<TuningLog> {
    progress.phase("tune", None);
    let mut t = Tuner {
        spec,
        dir: RootDir::open(spec.root, Links::InRoot)?,
        log: TuningLog {
            format: spec.format.name().into(),
            target: spec.target.name().into(),
            steps: Vec::new(),
        },
        snapshot: None,
        scans: 0,
    };
    let bootable = spec.format.is_disk() && !spec.target.is_container();
    let mounts = ChrootMounts::new(spec.root)?;
    t.packages(bootable)?;
    if bootable {
        progress.phase("tune: initramfs", None);
        t.initramfs()?;
        let disk = disk
            .as_mut()
            .ok_or_else(|| Error::Invalid("a bootable image needs a disk".into()))?;
        progress.phase("tune: bootloader", None);
        t.bootloader(disk)?;
        progress.phase("tune: files", None);
        t.fstab(disk)?;
        t.network()?;
    }
    mounts.release()?;
    t.machine_id()?;
    t.cloud_init()?;
    t.write_log()?;
    progress.finish();
    Ok(t.log)
}

/// Tuning edits configuration files, which are read small.
const MAX_EDIT: u64 = 64 << 20;

struct Tuner<'a> {
    spec: &'a TuneSpec<'a>,
    /// The root, its links followed as the machine would, never out of it.
    dir: RootDir,
    log: TuningLog,
    /// A scan of the root as it is now, if no edit happened since.
    snapshot: Option<PathBuf>,
    scans: u32,
}

impl Tuner<'_> {
    fn root(&self) -> &Path {
        self.spec.root
    }

    fn scan(&mut self) -> Result<PathBuf> {
        self.scans += 1;
        let out = self.spec.work.join(format!("tune-{}.report", self.scans));
        scan_like(self.spec.root, self.spec.header, &out)?;
        Ok(out)
    }

    /// Runs `f` as a step recorded by scanning before and after.
    fn scanned(
        &mut self,
        name: &str,
        description: String,
        f: impl FnOnce(&mut Self) -> Result<Vec<TuningPackage>>,
    ) -> Result<()> {
        let before = match self.snapshot.take() {
            Some(s) => s,
            None => self.scan()?,
        };
        let package_changes = f(self)?;
        let packages: Vec<String> = package_changes
            .iter()
            .filter(|p| p.from.is_none())
            .filter_map(|p| {
                let name = p.package.split(':').next().unwrap_or(&p.package);
                p.to.as_ref().map(|v| format!("{name}={v}"))
            })
            .collect();
        let after = self.scan()?;
        let cmp = compare(ReportReader::open(&before)?, ReportReader::open(&after)?)?;
        let _ = std::fs::remove_file(&before);
        self.snapshot = Some(after);
        self.log.steps.push(TuningStep {
            name: name.into(),
            description,
            packages,
            package_changes,
            changes: cmp
                .files
                .into_iter()
                .map(|c| TuningChange {
                    path: c.path,
                    status: c.status.into(),
                    what: c.what.into_iter().map(String::from).collect(),
                })
                .collect(),
        });
        Ok(())
    }

    fn step(&mut self, name: &str, description: String) {
        self.log.steps.push(TuningStep {
            name: name.into(),
            description,
            packages: Vec::new(),
            package_changes: Vec::new(),
            changes: Vec::new(),
        });
    }

    fn record(&mut self, path: &str, status: &str) {
        if let Some(s) = self.snapshot.take() {
            let _ = std::fs::remove_file(s);
        }
        let step = self.log.steps.last_mut().expect("a step is open");
        step.changes.push(TuningChange {
            path: path.as_bytes().to_vec(),
            status: status.into(),
            what: if status == "modified" {
                vec!["content".into()]
            } else {
                Vec::new()
            },
        });
    }

    /// Writes `content` at in-root `path` (creating missing parent directories, recorded too)
    /// and records the change. Unchanged content is not rewritten.
    fn write(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        let old = self.dir.read(path.as_bytes(), MAX_EDIT).ok();
        if old.as_deref() == Some(content) {
            return Ok(());
        }
        if let Some(parent) = Path::new(path).parent() {
            for d in self
                .dir
                .create_dir_all(parent.as_os_str().as_bytes(), 0o755)?
            {
                self.record(&String::from_utf8_lossy(&d), "added");
            }
        }
        write_file(
            &self.dir,
            path.as_bytes(),
            content,
            old.is_none().then_some(mode),
        )?;
        self.record(path, if old.is_some() { "modified" } else { "added" });
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<()> {
        match self.dir.remove_file(path.as_bytes()) {
            Ok(()) => {
                self.record(path, "removed");
                Ok(())
            }
            Err(e) if fsroot::not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn apt(&self, archs: &[String]) -> Result<apt::Apt> {
        apt::Apt::new(
            self.root(),
            self.spec.work,
            self.spec.sources,
            archs,
            self.spec.keyring,
        )
    }

    fn packages(&mut self, bootable: bool) -> Result<()> {
        let arch = self
            .spec
            .header
            .machine
            .package_arch
            .clone()
            .unwrap_or_else(|| "amd64".into());
        let mut archs = vec![arch.clone()];
        for p in &self.spec.header.packages {
            if p.arch != "all" && !archs.contains(&p.arch) {
                archs.push(p.arch.clone());
            }
        }
        let mut want: Vec<String> = Vec::new();
        let mut why: Vec<String> = Vec::new();
        let mut a: Option<apt::Apt> = None;
        if bootable {
            if arch != "amd64" {
                return Err(Error::Invalid(format!(
                    "bootable images are built for amd64 machines; this one is {arch}"
                )));
            }
            let kernels = boot::kernels(self.root())?;
            if kernels.is_empty() || boot::paravirt_only(&kernels) {
                let pkg = format!("linux-image-{arch}");
                if a.is_none() {
                    a = Some(self.apt(&archs)?);
                }
                let ap = a.as_mut().expect("set above");
                if ap.candidate(&pkg)?.is_none() {
                    return Err(Error::Invalid(format!(
                        "the machine has no kernel that boots a virtual machine and no \
                         repository has {pkg}: register the release's repository"
                    )));
                }
                why.push(if kernels.is_empty() {
                    format!("{pkg}: the source has no kernel")
                } else {
                    format!("{pkg}: the source only has para-virtualised kernels")
                });
                want.push(pkg);
            }
            for p in ["grub-pc-bin", "grub-efi-amd64-bin", "grub2-common"] {
                if !self
                    .dir
                    .exists(format!("/var/lib/dpkg/info/{p}.list").as_bytes())
                {
                    want.push(p.into());
                }
            }
            if want.iter().any(|w| w.starts_with("grub")) {
                why.push("GRUB for BIOS and UEFI boot".into());
            }
            // Without it the boot skips checking the root file system (`fsck not present`).
            if !self.dir.exists(b"/var/lib/dpkg/info/e2fsprogs.list") {
                want.push("e2fsprogs".into());
                why.push("e2fsprogs: the boot checks the ext4 root file system".into());
            }
        }
        let mut skipped = Vec::new();
        for agent in self.spec.target.agents() {
            if self
                .dir
                .exists(format!("/var/lib/dpkg/info/{agent}.list").as_bytes())
            {
                continue;
            }
            if a.is_none() {
                a = Some(self.apt(&archs)?);
            }
            let ap = a.as_mut().expect("set above");
            if ap.candidate(agent)?.is_some() {
                want.push(agent.to_string());
                why.push(format!("{agent}: the agent {} needs", self.spec.target));
            } else {
                skipped.push(*agent);
            }
        }
        if want.is_empty() {
            if !skipped.is_empty() {
                self.step(
                    "packages",
                    format!("no repository has {}: not installed", skipped.join(", ")),
                );
            }
            return Ok(());
        }
        let mut ap = match a {
            Some(a) => a,
            None => self.apt(&archs)?,
        };
        let mut description = format!("installed {}", why.join("; "));
        if !skipped.is_empty() {
            description.push_str(&format!("; no repository has {}", skipped.join(", ")));
        }
        let allow = self.spec.allow_upgrades;
        let changed = |log: &[TuningPackage]| {
            log.iter()
                .filter(|p| p.from.is_some())
                .map(|p| {
                    format!(
                        "{} {} -> {}",
                        p.package,
                        p.from.as_deref().unwrap_or_default(),
                        p.to.as_deref().unwrap_or("removed")
                    )
                })
                .collect::<Vec<_>>()
        };
        self.scanned("packages", description, |_| ap.install(&want, allow))?;
        // The source's own packages that the install changed (only when allowed) are said in
        // words too.
        let step = self.log.steps.last_mut().expect("just recorded");
        let changed = changed(&step.package_changes);
        if !changed.is_empty() {
            step.description.push_str(&format!(
                "; changed packages of the source: {}",
                changed.join(", ")
            ));
        }
        Ok(())
    }

    fn initramfs(&mut self) -> Result<()> {
        let drivers = self.spec.target.drivers();
        let kernels = boot::kernels(self.root())?;
        let mut todo = Vec::new();
        for k in &kernels {
            match boot::missing_drivers(self.root(), k, drivers)? {
                Some(m) if !m.is_empty() => todo.push((k.clone(), m)),
                _ => {}
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        if !self.dir.exists(b"/usr/sbin/update-initramfs") {
            return Err(Error::Invalid(
                "the image's initramfs lacks the target's disk drivers and the machine has no \
                 initramfs-tools to rebuild it"
                    .into(),
            ));
        }
        let desc = todo
            .iter()
            .map(|(k, m)| format!("{k} (adding {})", m.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        self.scanned(
            "initramfs",
            format!(
                "built the initramfs with the {} disk drivers for {desc}",
                self.spec.target
            ),
            |t| {
                let modules = b"/etc/initramfs-tools/modules";
                let old = t.dir.read(modules, MAX_EDIT).ok();
                let mut text =
                    String::from_utf8_lossy(old.as_deref().unwrap_or_default()).into_owned();
                let mut added = false;
                for (k, missing) in &todo {
                    if t.dir.exists(format!("/boot/initrd.img-{k}").as_bytes()) {
                        for m in missing {
                            if !text.lines().any(|l| l.trim() == m) {
                                text.push_str(m);
                                text.push('\n');
                                added = true;
                            }
                        }
                    }
                }
                if added {
                    t.dir.create_dir_all(b"/etc/initramfs-tools", 0o755)?;
                    write_file(
                        &t.dir,
                        modules,
                        text.as_bytes(),
                        old.is_none().then_some(0o644),
                    )?;
                }
                for (k, _) in &todo {
                    let exists = t.dir.exists(format!("/boot/initrd.img-{k}").as_bytes());
                    run_in(
                        t.root(),
                        "update-initramfs",
                        &[if exists { "-u" } else { "-c" }, "-k", k],
                    )?;
                }
                Ok(Vec::new())
            },
        )
    }

    fn bootloader(&mut self, disk: &mut Disk) -> Result<()> {
        let kernels = boot::kernels(self.root())?;
        if kernels.is_empty() {
            return Err(Error::Invalid("no kernel to boot was installed".into()));
        }
        let os = self
            .spec
            .header
            .machine
            .os
            .pretty_name
            .clone()
            .unwrap_or_else(|| "Linux".into());
        let root_uuid = disk.root_uuid.clone();
        let esp_put = |src: &Path, dest: &str| disk.esp_put(src, dest);
        let mut efi_done = false;
        self.scanned(
            "bootloader",
            format!(
                "GRUB for BIOS (core image in the BIOS boot partition) and UEFI (removable \
                 path EFI/BOOT/BOOTX64.EFI on the EFI system partition), booting {} with `{}`",
                kernels[0],
                boot::cmdline(self.spec.kernel_params)
            ),
            |t| {
                t.dir.create_dir_all(b"/etc/default/grub.d", 0o755)?;
                let defaults = boot::grub_defaults(t.spec.kernel_params);
                write_file(
                    &t.dir,
                    b"/etc/default/grub.d/50-uforge.cfg",
                    defaults.as_bytes(),
                    None,
                )?;
                t.dir.create_dir_all(b"/boot/grub", 0o755)?;
                let cfg = boot::grub_cfg(&kernels, &root_uuid, &os, t.spec.kernel_params);
                write_file(&t.dir, b"/boot/grub/grub.cfg", cfg.as_bytes(), None)?;
                // Images are made inside the root, with its own GRUB, in the /run tmpfs the
                // chroot mounts (nothing is left in the root's files).
                let run = t.dir.subdir(b"/run")?;
                let early = boot::early_cfg(&root_uuid);
                write_file(&run, b"/uforge-early.cfg", early.as_bytes(), None)?;
                run_in(
                    t.root(),
                    "grub-mkimage",
                    &[
                        &[
                            "-O",
                            "i386-pc",
                            "-o",
                            "/run/uforge-core.img",
                            "-c",
                            "/run/uforge-early.cfg",
                            "-p",
                            "/boot/grub",
                        ],
                        boot::BIOS_MODULES,
                    ]
                    .concat(),
                )?;
                run_in(
                    t.root(),
                    "grub-mkimage",
                    &[
                        &[
                            "-O",
                            "x86_64-efi",
                            "-o",
                            "/run/uforge-bootx64.efi",
                            "-c",
                            "/run/uforge-early.cfg",
                            "-p",
                            "/boot/grub",
                        ],
                        boot::EFI_MODULES,
                    ]
                    .concat(),
                )?;
                // What GRUB made is read through the root's descriptor: a link planted in its
                // place must not put a host file on the disk.
                let boot_img = t.dir.read(b"/usr/lib/grub/i386-pc/boot.img", MAX_EDIT)?;
                let core_img = run.read(b"/uforge-core.img", MAX_EDIT)?;
                disk.install_bios_boot(&boot_img, &core_img)?;
                let efi = t.spec.work.join("uforge-bootx64.efi");
                std::fs::write(&efi, run.read(b"/uforge-bootx64.efi", MAX_EDIT)?)
                    .map_err(|e| Error::io("write", &efi, e))?;
                let put = esp_put(&efi, "EFI/BOOT/BOOTX64.EFI");
                let _ = std::fs::remove_file(&efi);
                put?;
                efi_done = true;
                for f in [
                    "/uforge-early.cfg",
                    "/uforge-core.img",
                    "/uforge-bootx64.efi",
                ] {
                    let _ = run.remove_file(f.as_bytes());
                }
                Ok(Vec::new())
            },
        )?;
        if efi_done {
            // On the EFI system partition, outside the root filesystem: recorded by hand.
            let step = self.log.steps.last_mut().expect("bootloader step");
            step.changes.push(TuningChange {
                path: b"/boot/efi/EFI/BOOT/BOOTX64.EFI".to_vec(),
                status: "added".into(),
                what: Vec::new(),
            });
        }
        Ok(())
    }

    fn fstab(&mut self, disk: &Disk) -> Result<()> {
        let old = self.dir.read(b"/etc/fstab", MAX_EDIT).unwrap_or_default();
        let old = String::from_utf8_lossy(&old);
        let new = files::fstab(&old, &disk.root_uuid, &disk.esp_uuid);
        self.step(
            "fstab",
            "mounts / and /boot/efi of the new disk by UUID; filesystems of disks the new \
             machine does not have are commented out, their files being in the root filesystem"
                .into(),
        );
        self.write("/etc/fstab", new.as_bytes(), 0o644)
    }

    fn network(&mut self) -> Result<()> {
        let net = &self.spec.header.machine.network;
        let map = files::interface_map(net);
        let dhcp = self.spec.network == NetworkPolicy::Dhcp;
        let names: Vec<String> = map.iter().map(|(a, b)| format!("{a} → {b}")).collect();
        self.step(
            "network",
            format!(
                "interfaces renamed for kernel naming ({}){}",
                if names.is_empty() {
                    "none configured".to_string()
                } else {
                    names.join(", ")
                },
                if dhcp {
                    "; every interface set to DHCP as asked"
                } else {
                    "; addressing kept as on the source"
                }
            ),
        );
        let mut files_done: Vec<&str> = Vec::new();
        for i in net {
            if i.file.is_empty()
                || files_done.contains(&i.file.as_str())
                || !i.file.starts_with('/')
            {
                continue;
            }
            files_done.push(&i.file);
            let Ok(text) = self.dir.read(i.file.as_bytes(), MAX_EDIT) else {
                continue;
            };
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            let new = match i.source.as_str() {
                "ifupdown" => {
                    let r = files::rename_ifupdown(&text, &map);
                    if dhcp {
                        files::dhcp_ifupdown(&r)
                    } else {
                        r
                    }
                }
                "networkd" => {
                    let r = files::rename_networkd(&text, &map);
                    if dhcp && i.method != NetMethod::Loopback {
                        files::dhcp_networkd(&r)
                    } else {
                        r
                    }
                }
                "netplan" => files::rename_netplan(&text, &map),
                "networkmanager" => {
                    text.lines()
                        .map(|l| match l.strip_prefix("interface-name=") {
                            Some(n) => map
                                .iter()
                                .find(|(a, _)| a == n)
                                .map(|(_, b)| format!("interface-name={b}"))
                                .unwrap_or_else(|| l.to_string()),
                            None => l.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                        + if text.ends_with('\n') { "\n" } else { "" }
                }
                _ => continue,
            };
            let mode = self
                .dir
                .stat(i.file.as_bytes())
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            let path = i.file.clone();
            self.write(&path, new.as_bytes(), mode)?;
        }
        // Names bound to the old cards' MAC addresses would rename the new cards.
        self.remove("/etc/udev/rules.d/70-persistent-net.rules")
    }

    fn machine_id(&mut self) -> Result<()> {
        self.step(
            "machine-id",
            "machine-id emptied so that the new machine gets its own at first boot".into(),
        );
        if self.dir.exists(b"/etc/machine-id") {
            self.write("/etc/machine-id", b"", 0o444)?;
        }
        if self
            .dir
            .lstat(b"/var/lib/dbus/machine-id")
            .is_ok_and(|m| m.is_file())
        {
            self.remove("/var/lib/dbus/machine-id")?;
        }
        Ok(())
    }

    fn cloud_init(&mut self) -> Result<()> {
        if !self.dir.exists(b"/etc/cloud/cloud.cfg") || self.spec.target.is_container() {
            return Ok(());
        }
        let statics = self
            .spec
            .header
            .machine
            .network
            .iter()
            .any(|i| i.method == NetMethod::Static);
        let keep_net = self.spec.network == NetworkPolicy::Keep && statics;
        self.step(
            "cloud-init",
            format!(
                "cloud-init keeps the host name{}",
                if keep_net {
                    " and the source's static network configuration"
                } else {
                    ""
                }
            ),
        );
        let mut cfg = "# The migrated machine keeps its identity.\npreserve_hostname: true\nmanage_etc_hosts: false\n".to_string();
        if keep_net {
            cfg.push_str("network:\n  config: disabled\n");
        }
        self.write(
            "/etc/cloud/cloud.cfg.d/99-uforge.cfg",
            cfg.as_bytes(),
            0o644,
        )
    }

    fn write_log(&mut self) -> Result<()> {
        self.step(
            "tuning-log",
            "this log, kept in the image for `uforge image verify`".into(),
        );
        let path = TuningLog::IN_IMAGE;
        // The log lists itself: record first, then serialise.
        let parent = Path::new(path).parent().expect("has a parent");
        for d in self
            .dir
            .create_dir_all(parent.as_os_str().as_bytes(), 0o755)?
        {
            self.record(&String::from_utf8_lossy(&d), "added");
        }
        self.record(path, "added");
        let json = serde_json::to_vec_pretty(&self.log)
            .map_err(|e| Error::Invalid(format!("tuning log: {e}")))?;
        write_file(&self.dir, path.as_bytes(), &json, None)?;
        if let Some(s) = self.snapshot.take() {
            let _ = std::fs::remove_file(s);
        }
        Ok(())
    }
}

/// Writes `content` as the file at in-root `path` of `dir` (emptied first if it exists),
/// setting `mode` when given.
fn write_file(dir: &RootDir, path: &[u8], content: &[u8], mode: Option<u32>) -> Result<()> {
    let mut f = dir.create(path, 0o644, Create::Truncate)?;
    let host = || dir.host_path(path);
    f.write_all(content)
        .map_err(|e| Error::io("write", host(), e))?;
    if let Some(m) = mode {
        f.set_permissions(std::fs::Permissions::from_mode(m))
            .map_err(|e| Error::io("chmod", host(), e))?;
    }
    Ok(())
}
