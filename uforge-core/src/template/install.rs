//! The install profile: what an OS installer asks (disk, time zone, keyboard, locale, host
//! name, kernel command line, network, accounts, root login).

use serde::{Deserialize, Serialize};

use super::forms;
use crate::model::NetMethod;

/// Installation parameters of the image (hammr's `installation`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallProfile {
    /// Disk size and partitioning.
    #[serde(default)]
    pub disk: Disk,
    /// Time zone (`Europe/Paris`); `None`: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Console keyboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<Keyboard>,
    /// System locale (`LANG`, `fr_FR.UTF-8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Kernel command line parameters added to the bootloader's defaults (`console=ttyS0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_params: Vec<String>,
    /// Network configuration, one entry per interface, in name order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetInterface>,
    /// Local users to create, in uid order: root, the people's accounts, and service
    /// accounts that own files of a component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSpec>,
    /// Local groups to create, in gid order.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "forms::flow_items"
    )]
    pub groups: Vec<GroupSpec>,
    /// How root may log in.
    #[serde(default)]
    pub root_login: RootLogin,
}

/// The disk of a disk image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Size in MiB; `None`: sized for the contents, as images built from a scan are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<u64>,
    /// The filesystems of the source machine, in mount point order.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "forms::flow_items"
    )]
    pub partitions: Vec<DiskPartition>,
}

/// One filesystem of the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskPartition {
    /// Mount point (`/`, `/srv`), or `swap`.
    pub mount: String,
    /// Filesystem type (`ext4`, `xfs`, `vfat`, `swap`).
    pub fstype: String,
    /// Size in MiB; `None`: what is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<u64>,
    /// Mount options, as in fstab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// Console keyboard settings (`/etc/default/keyboard`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyboard {
    /// Layout (`fr`).
    pub layout: String,
    /// Layout variant (`oss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Keyboard model (`pc105`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// XKB options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// The configuration of one network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetInterface {
    /// Interface name (`ens3`).
    pub name: String,
    /// `dhcp`, `static`, `auto` (IPv6 autoconfiguration) or `manual`.
    pub method: NetMethod,
    /// Static addresses in CIDR form (`192.0.2.10/24`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Hardware address the configuration is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A local user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// GECOS field (full name...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// Supplementary groups, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The password hash exactly as `/etc/shadow` holds it (`$y$...`; `!` or `*` for a locked
    /// password); `None` when it is not known, which creates the account with a locked
    /// password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// SSH public keys allowed to log in (`~/.ssh/authorized_keys`, one key per entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
}

/// A local group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
}

/// How root may log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootLogin {
    /// Whether root may log in with its password on a console (false locks root's password).
    pub password: bool,
    /// sshd's `PermitRootLogin`.
    pub ssh: SshRootLogin,
}

impl Default for RootLogin {
    /// Debian's defaults: a password (when one is set), and keys only over SSH.
    fn default() -> Self {
        RootLogin {
            password: true,
            ssh: SshRootLogin::ProhibitPassword,
        }
    }
}

/// sshd's `PermitRootLogin` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SshRootLogin {
    /// Password and key.
    Yes,
    /// Never.
    No,
    /// Keys only (Debian's default).
    #[default]
    ProhibitPassword,
    /// Keys with a forced command only.
    ForcedCommandsOnly,
}

impl SshRootLogin {
    /// Parses an sshd_config value (`without-password` is the old name of
    /// `prohibit-password`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "yes" => SshRootLogin::Yes,
            "no" => SshRootLogin::No,
            "prohibit-password" | "without-password" => SshRootLogin::ProhibitPassword,
            "forced-commands-only" => SshRootLogin::ForcedCommandsOnly,
            _ => return None,
        })
    }
}
