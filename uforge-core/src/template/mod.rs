//! Appliance templates (white-box migration): a machine described as data that people edit,
//! check and generate images from.
//!
//! A [`Template`] has the parts of a UForge appliance template, named after hammr's `stack`
//! so that its users find their way in the file form:
//!
//! | part | type | `template.yml` key |
//! |---|---|---|
//! | OS profile: distribution, release, architecture, repositories, packages | [`OsProfile`] | `os` (`pkgs`) |
//! | install profile: disk, time zone, keyboard, locale, host name, kernel command line, network, users and groups, root login | [`InstallProfile`] | `installation` |
//! | My Software: components of files, packages of their own (`ospkgs`), install scripts | [`Component`] | `bundles` |
//! | boot scripts: first boot or every boot | [`BootScript`] | `config` |
//!
//! Contents (files, scripts, `.deb`s) are [`Content`] references: blobs in a
//! [`BlobStore`](crate::blobstore::BlobStore) named by SHA-256, which is how a template
//! outlives the scan it was imported from. The file form ([`file`]) is a directory with
//! `template.yml` and `files/HEX` for every blob; see `schema/uforge-template-v1.schema.json`.
//!
//! [`import`] makes a template from a scan (report, analysis and the overlay's blobs);
//! [`solve`] checks that its packages can be installed together from its repositories.
//!
//! [`generate`] makes an image from a template through the image build of scans, with the
//! template filling the root: resolve ([`solve::check`] gives the exact package set) ->
//! install -> My Software (files, `ospkgs`, scripts, `removed`) -> install profile -> boot
//! scripts (a systemd unit runs the first-boot ones once per machine and the every-boot ones
//! at each boot, in [`BootScript::run_order`], as root, after My Software is in place) ->
//! tuning -> write. [`verify`] checks that an image is what its template states.

mod apply;
mod boot;
pub mod file;
mod forms;
pub mod generate;
pub mod import;
mod install;
mod os;
mod software;
pub mod solve;
pub mod verify;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use apply::{BOOT_DIR, BOOT_UNIT, FIRSTBOOT_MARK};
pub use boot::{BootScript, Frequency};
pub use install::{
    Disk, DiskPartition, GroupSpec, InstallProfile, Keyboard, NetInterface, RootLogin,
    SshRootLogin, UserSpec,
};
pub use os::{OsProfile, PackageSpec, RELEASE_PLACEHOLDER};
pub use software::{Component, Content, InstallScript, OsPkg, SoftwareFile};

use crate::{Error, Result};

/// An appliance template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Name (`web01`).
    pub name: String,
    /// Version (`1`); a clone is a new version of the same name.
    pub version: String,
    /// Free text: where the template came from, what it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The operating system and its packages.
    pub os: OsProfile,
    /// Installation parameters.
    #[serde(rename = "installation", default)]
    pub install: InstallProfile,
    /// My Software components, installed in order.
    #[serde(rename = "bundles", default, skip_serializing_if = "Vec::is_empty")]
    pub software: Vec<Component>,
    /// Boot scripts.
    #[serde(rename = "config", default, skip_serializing_if = "Vec::is_empty")]
    pub boot_scripts: Vec<BootScript>,
}

impl Template {
    /// Puts every list in its canonical order (the order the file form is written in):
    /// packages by name and architecture, files and removed paths by path, accounts by id,
    /// interfaces by name, boot scripts in run order. Components keep their order, which is
    /// their install order.
    pub fn normalize(&mut self) {
        let os = &mut self.os;
        os.pkgs
            .sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
        os.pkgs.dedup();
        for c in &mut self.software {
            c.files.sort_by(|a, b| a.path.cmp(&b.path));
            c.ospkgs.sort_by(|a, b| {
                (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version))
            });
            c.removed.sort();
            c.removed.dedup();
        }
        let inst = &mut self.install;
        inst.disk.partitions.sort_by(|a, b| a.mount.cmp(&b.mount));
        inst.network.sort_by(|a, b| a.name.cmp(&b.name));
        inst.users
            .sort_by(|a, b| (a.uid, &a.name).cmp(&(b.uid, &b.name)));
        inst.groups
            .sort_by(|a, b| (a.gid, &a.name).cmp(&(b.gid, &b.name)));
        self.boot_scripts.sort_by(BootScript::run_order);
    }

    /// Every content the template refers to: component files, `.deb`s of `ospkgs`, install
    /// and boot scripts.
    pub fn contents(&self) -> impl Iterator<Item = &Content> {
        let software = self.software.iter().flat_map(|c| {
            let files = c.files.iter().filter_map(|f| f.content.as_ref());
            let debs = c.ospkgs.iter().map(|p| &p.deb);
            let scripts = c.scripts.iter().map(|s| &s.content);
            files.chain(debs).chain(scripts)
        });
        software.chain(self.boot_scripts.iter().map(|b| &b.content))
    }

    /// Checks what the file form's syntax cannot: names that must be unique, and paths a
    /// component may write. Errors name the entry at fault.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |m: String| Error::Invalid(format!("template {} {}: {m}", self.name, self.version));
        if self.name.trim().is_empty() {
            return Err(bad("the template has no name".into()));
        }
        if self.os.release.trim().is_empty() || self.os.arch.trim().is_empty() {
            return Err(bad("os: release and arch are required".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.os.pkgs {
            if p.name.is_empty() {
                return Err(bad("os.pkgs: a package has an empty name".into()));
            }
            if !seen.insert((&p.name, &p.arch)) {
                return Err(bad(format!("os.pkgs: package {} is listed twice", p.name)));
            }
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.software {
            if !names.insert(&c.name) {
                return Err(bad(format!(
                    "bundles: component {} is listed twice",
                    c.name
                )));
            }
            let mut paths = std::collections::HashSet::new();
            for f in &c.files {
                if crate::rawpath::normalize(&f.path).as_deref() != Some(&f.path[..]) {
                    return Err(bad(format!(
                        "bundle {}: path {} is not a plain absolute path (no `..`, `//` or trailing `/`)",
                        c.name,
                        crate::rawpath::display(&f.path)
                    )));
                }
                if !paths.insert(&f.path) {
                    return Err(bad(format!(
                        "bundle {}: path {} is listed twice",
                        c.name,
                        crate::rawpath::display(&f.path)
                    )));
                }
            }
        }
        let mut scripts = std::collections::HashSet::new();
        for b in &self.boot_scripts {
            if b.name.is_empty() || b.name.contains('/') {
                return Err(bad(format!(
                    "config: boot script name {:?} must be a plain file name",
                    b.name
                )));
            }
            if !scripts.insert(&b.name) {
                return Err(bad(format!(
                    "config: boot script {} is listed twice",
                    b.name
                )));
            }
        }
        Ok(())
    }
}
