//! Writing a template's install profile and boot scripts into a root whose packages are
//! installed. Files are edited through a [`RootDir`] that follows the root's links inside it
//! only, as the tuning does: a link planted in the image never leads a write to the host.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{
    BootScript, Content, Frequency, InstallProfile, InstallScript, NetInterface, SshRootLogin,
};
use crate::blobstore::BlobStore;
use crate::fsroot::{self, Create, Links, RootDir};
use crate::image::chroot::run_in;
use crate::model::NetMethod;
use crate::{Error, Result};

/// The ifupdown configuration the profile's network is written to.
pub(crate) const IFUPDOWN: &str = "/etc/network/interfaces";

/// Where boot scripts and their runner live in the image.
pub const BOOT_DIR: &str = "/usr/lib/uforge/boot-scripts";

/// The systemd unit that runs the boot scripts.
pub const BOOT_UNIT: &str = "uforge-boot-scripts.service";

/// The mark the runner leaves once the first-boot scripts have run.
pub const FIRSTBOOT_MARK: &str = "/var/lib/uforge/firstboot.done";

/// Largest account database or configuration file edited.
const MAX_EDIT: u64 = 16 << 20;

fn open(root: &Path) -> Result<RootDir> {
    RootDir::open(root, Links::InRoot)
}

/// The file at `path`, or `None` when there is none.
fn read(dir: &RootDir, path: &str) -> Result<Option<String>> {
    match dir.read(path.as_bytes(), MAX_EDIT) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if fsroot::not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `content` at `path` (parents created); an existing file keeps its owner and mode,
/// a new one gets `mode`.
fn write(dir: &RootDir, path: &str, content: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = Path::new(path).parent() {
        use std::os::unix::ffi::OsStrExt;
        dir.create_dir_all(parent.as_os_str().as_bytes(), 0o755)?;
    }
    let existed = dir.exists(path.as_bytes());
    let mut f = dir.create(path.as_bytes(), 0o600, Create::Truncate)?;
    let host = || dir.host_path(path.as_bytes());
    f.write_all(content)
        .map_err(|e| Error::io("write", host(), e))?;
    if !existed {
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", host(), e))?;
    }
    Ok(())
}

/// One `:`-separated line of an account database, by its first field.
struct Table {
    lines: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: Option<String>) -> Table {
        Table {
            lines: text
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.split(':').map(str::to_string).collect())
                .collect(),
        }
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Vec<String>> {
        self.lines.iter_mut().find(|l| l[0] == name)
    }

    /// Sets the line of `fields[0]` to `fields`, keeping the fields `keep` of an existing one.
    fn upsert(&mut self, fields: Vec<String>, keep: &[usize]) {
        match self.get_mut(&fields[0]) {
            Some(l) => {
                let mut new = fields;
                for &k in keep {
                    if let Some(v) = l.get(k) {
                        if k < new.len() {
                            new[k] = v.clone();
                        }
                    }
                }
                *l = new;
            }
            None => self.lines.push(fields),
        }
    }

    /// Adds `member` to the member list (field `at`) of group `group`.
    fn add_member(&mut self, group: &str, member: &str, at: usize) {
        if let Some(l) = self.get_mut(group) {
            while l.len() <= at {
                l.push(String::new());
            }
            let mut m: Vec<&str> = l[at].split(',').filter(|s| !s.is_empty()).collect();
            if !m.contains(&member) {
                m.push(member);
                l[at] = m.join(",");
            }
        }
    }

    fn text(&self) -> String {
        self.lines.iter().map(|l| l.join(":") + "\n").collect()
    }
}

fn field(s: &str, what: &str) -> Result<String> {
    if s.contains([':', '\n']) {
        return Err(Error::Invalid(format!(
            "installation: {what} {s:?} contains `:` or a line break"
        )));
    }
    Ok(s.to_string())
}

/// Creates or updates the profile's groups and users (ids, GECOS, home, shell, supplementary
/// groups, password hashes as scanned, root's password locked when root may not log in with
/// it), and makes the home directories of root and people's accounts that have none.
pub(crate) fn accounts(root: &Path, p: &InstallProfile) -> Result<()> {
    let dir = open(root)?;
    let mut group = Table::parse(read(&dir, "/etc/group")?);
    let mut gshadow = Table::parse(read(&dir, "/etc/gshadow")?);
    let mut passwd = Table::parse(read(&dir, "/etc/passwd")?);
    let mut shadow = Table::parse(read(&dir, "/etc/shadow")?);
    for g in &p.groups {
        let name = field(&g.name, "group")?;
        group.upsert(
            vec![name.clone(), "x".into(), g.gid.to_string(), String::new()],
            &[3],
        );
        gshadow.upsert(
            vec![name, "!".into(), String::new(), String::new()],
            &[1, 2, 3],
        );
    }
    // Days since the epoch: the last password change of accounts created here.
    let today = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        / 86400)
        .to_string();
    for u in &p.users {
        let name = field(&u.name, "user")?;
        passwd.upsert(
            vec![
                name.clone(),
                "x".into(),
                u.uid.to_string(),
                u.gid.to_string(),
                field(&u.gecos, "GECOS")?,
                field(&u.home, "home")?,
                field(&u.shell, "shell")?,
            ],
            &[],
        );
        let mut hash = match &u.password {
            Some(h) => field(h, "password hash")?,
            None => "!".into(),
        };
        if u.uid == 0 && !p.root_login.password && !hash.starts_with('!') {
            hash.insert(0, '!');
        }
        let mut line = vec![name.clone(), hash, today.clone()];
        line.extend(["0", "99999", "7", "", "", ""].map(String::from));
        shadow.upsert(line, &[2, 3, 4, 5, 6, 7, 8]);
        for g in &u.groups {
            group.add_member(g, &name, 3);
            gshadow.add_member(g, &name, 3);
        }
    }
    if !p.root_login.password && !p.users.iter().any(|u| u.uid == 0) {
        if let Some(l) = shadow.get_mut("root") {
            if !l[1].starts_with('!') {
                l[1].insert(0, '!');
            }
        }
    }
    write(&dir, "/etc/group", group.text().as_bytes(), 0o644)?;
    write(&dir, "/etc/gshadow", gshadow.text().as_bytes(), 0o640)?;
    write(&dir, "/etc/passwd", passwd.text().as_bytes(), 0o644)?;
    write(&dir, "/etc/shadow", shadow.text().as_bytes(), 0o640)?;
    for u in &p.users {
        let people = u.uid == 0 || (1000..60000).contains(&u.uid);
        if !people || !u.home.starts_with('/') || u.home == "/" || dir.exists(u.home.as_bytes()) {
            continue;
        }
        dir.create_dir_all(u.home.as_bytes(), 0o700)?;
        let node = dir.node(u.home.as_bytes())?;
        node.lchown(u.uid, u.gid)?;
        node.chmod(0o700)?;
    }
    Ok(())
}

/// The files [`profile`] may write whatever a component put there (it runs after My
/// Software): what a comparison with the template takes from the profile rather than from a
/// component. Users' `authorized_keys` are not listed.
pub(crate) fn profile_paths(p: &InstallProfile) -> Vec<&'static str> {
    let mut paths = vec![
        "/etc/timezone",
        "/etc/localtime",
        "/etc/ssh/sshd_config.d/50-uforge-root-login.conf",
    ];
    if p.keyboard.is_some() {
        paths.push("/etc/default/keyboard");
    }
    if p.locale.is_some() {
        paths.extend(["/etc/default/locale", "/etc/locale.gen"]);
    }
    if p.hostname.is_some() {
        paths.extend(["/etc/hostname", "/etc/hosts"]);
    }
    if !p.network.is_empty() {
        paths.push(IFUPDOWN);
    }
    paths
}

/// Writes the rest of the install profile: time zone, keyboard, locale, host name, network,
/// root's SSH policy and the users' authorised keys.
pub(crate) fn profile(root: &Path, p: &InstallProfile) -> Result<()> {
    let dir = open(root)?;
    let (tz, zone) = zone_of(p);
    if tz.contains("..") || !dir.is_file(zone.as_bytes()) {
        return Err(Error::Invalid(format!(
            "installation.timezone: {tz} is not a time zone of the image (tzdata has no {zone})"
        )));
    }
    write(&dir, "/etc/timezone", format!("{tz}\n").as_bytes(), 0o644)?;
    match dir.remove_file(b"/etc/localtime") {
        Ok(()) => {}
        Err(e) if fsroot::not_found(&e) => {}
        Err(e) => return Err(e),
    }
    dir.node(b"/etc/localtime")?.symlink(zone.as_bytes())?;

    if let Some(k) = &p.keyboard {
        let text = format!(
            "# Written from the template's install profile.\nXKBMODEL=\"{}\"\nXKBLAYOUT=\"{}\"\n\
             XKBVARIANT=\"{}\"\nXKBOPTIONS=\"{}\"\nBACKSPACE=\"guess\"\n",
            quote(k.model.as_deref().unwrap_or("pc105")),
            quote(&k.layout),
            quote(k.variant.as_deref().unwrap_or("")),
            quote(k.options.as_deref().unwrap_or(""))
        );
        write(&dir, "/etc/default/keyboard", text.as_bytes(), 0o644)?;
    }
    if let Some(l) = &p.locale {
        write(
            &dir,
            "/etc/default/locale",
            format!("LANG={}\n", quote(l)).as_bytes(),
            0o644,
        )?;
        locale(root, &dir, l)?;
    }
    if let Some(h) = &p.hostname {
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(Error::Invalid(format!(
                "installation.hostname: {h:?} is not a host name"
            )));
        }
        write(&dir, "/etc/hostname", format!("{h}\n").as_bytes(), 0o644)?;
        let short = h.split('.').next().unwrap_or(h);
        let hosts = read(&dir, "/etc/hosts")?.unwrap_or_else(|| "127.0.0.1\tlocalhost\n".into());
        if !hosts
            .lines()
            .any(|l| l.split_whitespace().skip(1).any(|w| w == h || w == short))
        {
            let mut hosts = hosts;
            if !hosts.ends_with('\n') {
                hosts.push('\n');
            }
            hosts.push_str(&format!("127.0.1.1\t{h}\n"));
            write(&dir, "/etc/hosts", hosts.as_bytes(), 0o644)?;
        }
    }
    if !p.network.is_empty() {
        write(&dir, IFUPDOWN, ifupdown(&p.network)?.as_bytes(), 0o644)?;
    }
    if dir.is_dir(b"/etc/ssh") {
        let v = match p.root_login.ssh {
            SshRootLogin::Yes => "yes",
            SshRootLogin::No => "no",
            SshRootLogin::ProhibitPassword => "prohibit-password",
            SshRootLogin::ForcedCommandsOnly => "forced-commands-only",
        };
        write(
            &dir,
            "/etc/ssh/sshd_config.d/50-uforge-root-login.conf",
            format!("# Written from the template's install profile.\nPermitRootLogin {v}\n")
                .as_bytes(),
            0o644,
        )?;
    }
    for u in &p.users {
        if u.ssh_keys.is_empty() || !u.home.starts_with('/') {
            continue;
        }
        let ssh = format!("{}/.ssh", u.home.trim_end_matches('/'));
        dir.create_dir_all(ssh.as_bytes(), 0o700)?;
        let node = dir.node(ssh.as_bytes())?;
        node.lchown(u.uid, u.gid)?;
        node.chmod(0o700)?;
        let keys: String = u.ssh_keys.iter().map(|k| format!("{k}\n")).collect();
        let path = format!("{ssh}/authorized_keys");
        write(&dir, &path, keys.as_bytes(), 0o600)?;
        let node = dir.node(path.as_bytes())?;
        node.lchown(u.uid, u.gid)?;
        node.chmod(0o600)?;
    }
    Ok(())
}

/// A value written between double quotes of a shell variable file.
fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | '\\' | '$' | '`' | '\n'))
        .collect()
}

/// Makes `locale` available: listed in `/etc/locale.gen` and generated, when the image has
/// the `locales` package (C and POSIX locales are always there).
fn locale(root: &Path, dir: &RootDir, l: &str) -> Result<()> {
    if matches!(l, "C" | "POSIX" | "C.UTF-8" | "C.utf8") || !dir.exists(b"/usr/sbin/locale-gen") {
        return Ok(());
    }
    let charset = l
        .split_once('.')
        .map(|(_, c)| c.split('@').next().unwrap_or(c))
        .unwrap_or("ISO-8859-1");
    let wanted = format!("{l} {charset}");
    let gen = read(dir, "/etc/locale.gen")?.unwrap_or_default();
    let listed = gen.lines().any(|x| x.trim() == wanted);
    let archive = dir.exists(b"/usr/lib/locale/locale-archive");
    if listed && archive {
        return Ok(());
    }
    if !listed {
        let mut gen = gen;
        if !gen.is_empty() && !gen.ends_with('\n') {
            gen.push('\n');
        }
        gen.push_str(&wanted);
        gen.push('\n');
        write(dir, "/etc/locale.gen", gen.as_bytes(), 0o644)?;
    }
    run_in(root, "/usr/sbin/locale-gen", &[])
        .map_err(|e| Error::Invalid(format!("installation.locale: generating {l}: {e}")))?;
    Ok(())
}

/// The profile's network as an ifupdown `interfaces` file: static interfaces brought up at
/// boot, the others when their card appears (a DHCP interface without a card does not hold
/// the boot up).
fn ifupdown(net: &[NetInterface]) -> Result<String> {
    let mut s = String::from(
        "# Written from the template's install profile.\nsource /etc/network/interfaces.d/*\n\n\
         auto lo\niface lo inet loopback\n",
    );
    for n in net {
        let name = &n.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(Error::Invalid(format!(
                "installation.network: {name:?} is not an interface name"
            )));
        }
        s.push('\n');
        let start = if n.method == NetMethod::Static {
            "auto"
        } else {
            "allow-hotplug"
        };
        s.push_str(&format!("{start} {name}\n"));
        match n.method {
            NetMethod::Static => {
                let (v4, v6): (Vec<&String>, Vec<&String>) =
                    n.addresses.iter().partition(|a| !a.contains(':'));
                if v4.is_empty() && v6.is_empty() {
                    return Err(Error::Invalid(format!(
                        "installation.network: {name} is static but has no address"
                    )));
                }
                for (family, addrs) in [("inet", v4), ("inet6", v6)] {
                    if addrs.is_empty() {
                        continue;
                    }
                    s.push_str(&format!("iface {name} {family} static\n"));
                    for a in addrs {
                        s.push_str(&format!("    address {a}\n"));
                    }
                    if let Some(g) = &n.gateway {
                        if g.contains(':') == (family == "inet6") {
                            s.push_str(&format!("    gateway {g}\n"));
                        }
                    }
                    if family == "inet" && !n.dns.is_empty() {
                        s.push_str(&format!("    dns-nameservers {}\n", n.dns.join(" ")));
                    }
                }
            }
            NetMethod::Dhcp => s.push_str(&format!("iface {name} inet dhcp\n")),
            NetMethod::Auto => s.push_str(&format!("iface {name} inet6 auto\n")),
            NetMethod::Manual | NetMethod::Loopback => {
                s.push_str(&format!("iface {name} inet manual\n"))
            }
        }
        if let Some(mac) = &n.mac {
            s.push_str(&format!("# bound to {mac} on the source machine\n"));
        }
    }
    Ok(s)
}

/// Reads a content whole (scripts are small).
fn content(blobs: &dyn BlobStore, c: &Content, what: &str) -> Result<Vec<u8>> {
    let sha = c
        .sha256()
        .ok_or_else(|| Error::Invalid(format!("{what}: the content is not stored yet")))?;
    let mut v = Vec::new();
    blobs
        .open(sha)?
        .take(MAX_EDIT)
        .read_to_end(&mut v)
        .map_err(|e| Error::Invalid(format!("{what}: reading its content: {e}")))?;
    Ok(v)
}

/// Runs a component's install script in the image: confined, as root of the image only.
pub(crate) fn run_script(
    root: &Path,
    component: &str,
    s: &InstallScript,
    blobs: &dyn BlobStore,
) -> Result<()> {
    let what = format!("bundle {component}: script {}", s.name);
    let body = content(blobs, &s.content, &what)?;
    let dir = open(root)?;
    let path = "/var/tmp/uforge-install-script";
    let _ = dir.remove_file(path.as_bytes());
    write(&dir, path, &body, 0o700)?;
    let res = run_in(root, path, &[]);
    let _ = dir.remove_file(path.as_bytes());
    res.map_err(|e| Error::Invalid(format!("{what} failed: {e}")))?;
    Ok(())
}

/// The runner of the boot scripts, `BOOT_DIR/run`.
fn runner() -> String {
    format!(
        r#"#!/bin/sh
# Runs the boot scripts of the image's template as root, in their order: the first-boot
# ones once per machine (the mark is written when they have all run, so a machine that
# stops half way runs them again), then the every-boot ones. A failing script is reported
# and the others still run.
dir={BOOT_DIR}
mark={FIRSTBOOT_MARK}
failed=0
run_all() {{
    for s in "$1"/*; do
        [ -f "$s" ] || continue
        echo "boot script $s"
        "$s" || {{ echo "boot script $s failed with status $?"; failed=1; }}
    done
}}
if [ ! -e "$mark" ]; then
    run_all "$dir/firstboot"
    mkdir -p "${{mark%/*}}" && : >"$mark" && sync
fi
run_all "$dir/everyboot"
exit $failed
"#
    )
}

/// The systemd unit that runs the boot scripts once the machine is up, services included.
fn unit() -> String {
    format!(
        "[Unit]\nDescription=Boot scripts of the appliance template\n\
         Wants=network-online.target\nAfter=network-online.target multi-user.target\n\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart={BOOT_DIR}/run\n\
         StandardOutput=journal+console\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// Where each boot script is installed, in run order: `BOOT_DIR/firstboot/NNNN-name` or
/// `BOOT_DIR/everyboot/NNNN-name`, `NNNN` its position in the whole run order, so that the
/// runner's glob order is the run order.
pub(crate) fn boot_script_paths(scripts: &[BootScript]) -> Vec<(String, &BootScript)> {
    let mut sorted: Vec<&BootScript> = scripts.iter().collect();
    sorted.sort_by(|a, b| a.run_order(b));
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let sub = match s.frequency {
                Frequency::Firstboot => "firstboot",
                Frequency::Everyboot => "everyboot",
            };
            (format!("{BOOT_DIR}/{sub}/{i:04}-{}", s.name), s)
        })
        .collect()
}

/// The boot scripts' unit file and the link that enables it.
pub(crate) fn unit_paths() -> (String, String) {
    (
        format!("/etc/systemd/system/{BOOT_UNIT}"),
        format!("/etc/systemd/system/multi-user.target.wants/{BOOT_UNIT}"),
    )
}

/// The profile's time zone (`Etc/UTC` when it names none) and the zone file
/// `/etc/localtime` links to.
pub(crate) fn zone_of(p: &InstallProfile) -> (&str, String) {
    let tz = p.timezone.as_deref().unwrap_or("Etc/UTC");
    (tz, format!("/usr/share/zoneinfo/{tz}"))
}

/// Installs the boot scripts (`BOOT_DIR/firstboot/NNNN-name`, `BOOT_DIR/everyboot/...`, in
/// run order), their runner and the enabled [`BOOT_UNIT`]. Nothing is written when there are
/// none.
pub(crate) fn boot_scripts(
    root: &Path,
    scripts: &[BootScript],
    blobs: &dyn BlobStore,
) -> Result<()> {
    if scripts.is_empty() {
        return Ok(());
    }
    let dir = open(root)?;
    let mut seen = BTreeSet::new();
    for (path, s) in boot_script_paths(scripts) {
        if !seen.insert(&s.name) {
            return Err(Error::Invalid(format!(
                "config: boot script {} is listed twice",
                s.name
            )));
        }
        let body = content(blobs, &s.content, &format!("boot script {}", s.name))?;
        write(&dir, &path, &body, 0o755)?;
        dir.node(path.as_bytes())?.chmod(0o755)?;
    }
    let run = format!("{BOOT_DIR}/run");
    write(&dir, &run, runner().as_bytes(), 0o755)?;
    let (unit_path, wants) = unit_paths();
    write(&dir, &unit_path, unit().as_bytes(), 0o644)?;
    dir.create_dir_all(b"/etc/systemd/system/multi-user.target.wants", 0o755)?;
    match dir.remove_file(wants.as_bytes()) {
        Ok(()) => {}
        Err(e) if fsroot::not_found(&e) => {}
        Err(e) => return Err(e),
    }
    dir.node(wants.as_bytes())?.symlink(unit_path.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifupdown_static_and_dhcp() {
        let net = vec![
            NetInterface {
                name: "ens3".into(),
                method: NetMethod::Static,
                addresses: vec!["192.0.2.20/24".into()],
                gateway: Some("192.0.2.1".into()),
                dns: vec!["192.0.2.53".into()],
                mac: None,
            },
            NetInterface {
                name: "ens4".into(),
                method: NetMethod::Dhcp,
                addresses: vec![],
                gateway: None,
                dns: vec![],
                mac: None,
            },
        ];
        let s = ifupdown(&net).unwrap();
        assert!(s.contains(
            "auto ens3\niface ens3 inet static\n    address 192.0.2.20/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n"
        ), "{s}");
        assert!(
            s.contains("allow-hotplug ens4\niface ens4 inet dhcp\n"),
            "{s}"
        );
        let bad = NetInterface {
            name: "ens3; rm".into(),
            ..net[0].clone()
        };
        assert!(ifupdown(&[bad])
            .unwrap_err()
            .to_string()
            .contains("ens3; rm"));
    }

    /// A root whose `/etc` is a link to a host directory, as a hostile image could have: the
    /// profile and boot scripts are written inside the root, and the host directory is left
    /// as it was.
    #[test]
    fn profile_and_boot_scripts_stay_in_the_root() {
        use crate::blobstore::LocalBlobStore;
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let host = tmp.path().join("host-etc");
        std::fs::create_dir_all(root.join("usr/share/zoneinfo/Asia")).unwrap();
        std::fs::write(root.join("usr/share/zoneinfo/Asia/Tokyo"), "TZif").unwrap();
        std::fs::create_dir_all(root.join("real-etc")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("hosts"), "host file\n").unwrap();
        std::os::unix::fs::symlink("/real-etc", root.join("etc")).unwrap();
        std::fs::write(
            root.join("real-etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("real-etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        // A link to a host file: inside the root it names the root's own path.
        std::os::unix::fs::symlink(host.join("hosts"), root.join("real-etc/hosts")).unwrap();
        let inside = root.join(host.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();

        let p = InstallProfile {
            timezone: Some("Asia/Tokyo".into()),
            hostname: Some("web02".into()),
            network: vec![NetInterface {
                name: "ens3".into(),
                method: NetMethod::Dhcp,
                addresses: vec![],
                gateway: None,
                dns: vec![],
                mac: None,
            }],
            root_login: crate::template::RootLogin {
                password: false,
                ssh: SshRootLogin::No,
            },
            ..InstallProfile::default()
        };
        accounts(&root, &p).unwrap();
        profile(&root, &p).unwrap();
        let blobs = LocalBlobStore::open(tmp.path().join("blobs")).unwrap();
        let mut st = blobs.stage().unwrap();
        let body = b"#!/bin/sh\necho once\n";
        let sha = st.put_computed(body.len() as u64, &mut &body[..]).unwrap();
        st.commit().unwrap();
        let script = |name: &str, frequency| BootScript {
            name: name.into(),
            frequency,
            order: 0,
            content: Content::Blob {
                sha256: sha,
                size: body.len() as u64,
            },
        };
        boot_scripts(
            &root,
            &[
                script("b.sh", Frequency::Everyboot),
                script("z.sh", Frequency::Firstboot),
                script("a.sh", Frequency::Firstboot),
            ],
            &blobs,
        )
        .unwrap();

        let etc = root.join("real-etc");
        assert_eq!(
            std::fs::read_to_string(etc.join("hostname")).unwrap(),
            "web02\n"
        );
        assert_eq!(
            std::fs::read_link(etc.join("localtime")).unwrap(),
            Path::new("/usr/share/zoneinfo/Asia/Tokyo")
        );
        assert_eq!(
            std::fs::read_to_string(etc.join("timezone")).unwrap(),
            "Asia/Tokyo\n"
        );
        assert!(std::fs::read_to_string(etc.join("shadow"))
            .unwrap()
            .starts_with("root:!*:19000:"));
        // The link to the host's file was followed inside the root only.
        assert_eq!(
            std::fs::read_to_string(host.join("hosts")).unwrap(),
            "host file\n"
        );
        assert_eq!(std::fs::read_dir(&host).unwrap().count(), 1);
        assert!(std::fs::read_to_string(inside.join("hosts"))
            .unwrap()
            .contains("127.0.1.1\tweb02"));
        assert!(std::fs::read_to_string(etc.join("network/interfaces"))
            .unwrap()
            .contains("allow-hotplug ens3\niface ens3 inet dhcp"));
        let first = root.join("usr/lib/uforge/boot-scripts/firstboot");
        let names: Vec<String> = std::fs::read_dir(&first)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(names, ["0000-a.sh", "0001-z.sh"]);
        assert!(root
            .join("usr/lib/uforge/boot-scripts/everyboot/0002-b.sh")
            .is_file());
        let m = std::fs::metadata(first.join("0000-a.sh")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o755, 0));
        assert_eq!(
            std::fs::read_link(
                etc.join("systemd/system/multi-user.target.wants/uforge-boot-scripts.service")
            )
            .unwrap(),
            Path::new("/etc/systemd/system/uforge-boot-scripts.service")
        );
        // A time zone the image lacks is refused by name.
        let bad = InstallProfile {
            timezone: Some("Mars/Olympus".into()),
            ..InstallProfile::default()
        };
        assert!(profile(&root, &bad)
            .unwrap_err()
            .to_string()
            .contains("Mars/Olympus"));
    }

    #[test]
    fn account_tables_keep_what_they_do_not_set() {
        let mut t = Table::parse(Some("deploy:x:1500:bob\n".into()));
        t.upsert(
            vec!["deploy".into(), "x".into(), "1501".into(), String::new()],
            &[3],
        );
        t.add_member("deploy", "alice", 3);
        t.add_member("deploy", "alice", 3);
        assert_eq!(t.text(), "deploy:x:1501:bob,alice\n");
        assert!(field("a:b", "user").is_err());
    }
}
