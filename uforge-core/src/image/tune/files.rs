//! The text edits of tuning: fstab, network configuration. Pure functions, so each rule is
//! tested on its own.

use crate::model::{NetMethod, NetworkInterface};

/// Mount points the new disk provides itself.
const DISK_MOUNTS: [&str; 2] = ["/", "/boot/efi"];

/// Whether an fstab source names a block device (which the new disk does not have).
fn is_block_source(spec: &str) -> bool {
    ["UUID=", "LABEL=", "PARTUUID=", "PARTLABEL=", "/dev/"]
        .iter()
        .any(|p| spec.starts_with(p))
}

/// Rewrites the source's fstab for the new disk: `/` and `/boot/efi` by the new UUIDs (the
/// source's root mount options kept), other block-device filesystems commented out because
/// their files now live in the root filesystem, and everything else (tmpfs, network shares,
/// swap files, bind mounts) kept as it was.
pub fn fstab(source: &str, root_uuid: &str, esp_uuid: &str) -> String {
    let mut out = String::new();
    let mut root_opts = "errors=remount-ro".to_string();
    let mut body = String::new();
    for line in source.lines() {
        let t = line.trim();
        let f: Vec<&str> = t.split_whitespace().collect();
        if t.starts_with('#') || f.len() < 3 {
            body.push_str(line);
            body.push('\n');
            continue;
        }
        let (spec, at, ty) = (f[0], f[1], f[2]);
        if at == "/" {
            if let Some(o) = f.get(3) {
                if ty.starts_with("ext") {
                    root_opts = o.to_string();
                }
            }
        }
        if DISK_MOUNTS.contains(&at) || is_block_source(spec) {
            let why = if DISK_MOUNTS.contains(&at) {
                "replaced by the new disk's filesystem above"
            } else if ty == "swap" {
                "the new disk has no swap partition"
            } else {
                "its files were migrated into the root filesystem"
            };
            body.push_str(&format!("# uforge: {why}: {line}\n"));
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.push_str("# The migrated machine's disk (uforge).\n");
    out.push_str(&format!("UUID={root_uuid} / ext4 {root_opts} 0 1\n"));
    out.push_str(&format!("UUID={esp_uuid} /boot/efi vfat umask=0077 0 1\n"));
    out.push_str(&body);
    out
}

/// New names for the source's interfaces: `eth0`, `eth1`... in name order. With
/// `net.ifnames=0` the kernel names cards in probe order, which does not depend on the new
/// hardware's slot numbers or MAC addresses, so the configuration finds its card.
pub fn interface_map(interfaces: &[NetworkInterface]) -> Vec<(String, String)> {
    let mut names: Vec<&str> = interfaces
        .iter()
        .filter(|i| i.method != NetMethod::Loopback && i.name != "lo")
        .map(|i| i.name.as_str())
        .filter(|n| !n.is_empty() && !n.contains('*'))
        .collect();
    names.sort_by_key(|n| natural(n));
    names.dedup();
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), format!("eth{i}")))
        .collect()
}

/// Sort key that orders `ens10` after `ens9`.
fn natural(s: &str) -> (String, u64, String) {
    let cut = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
    let rest = &s[cut..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (
        s[..cut].to_string(),
        rest[..end].parse().unwrap_or(0),
        rest[end..].to_string(),
    )
}

fn rename(word: &str, map: &[(String, String)]) -> Option<String> {
    // A pattern for predictable names (`en*`, `ens*`) would match no card once the kernel
    // names them `eth0`...
    if word.starts_with("en") && word.ends_with('*') && !word[..word.len() - 1].contains(['*', '?'])
    {
        return Some("eth*".into());
    }
    // `ens3:1` aliases and `ens3.100` VLANs follow their interface.
    let (base, suffix) = match word.find([':', '.']) {
        Some(i) => (&word[..i], &word[i..]),
        None => (word, ""),
    };
    map.iter()
        .find(|(from, _)| from == base)
        .map(|(_, to)| format!("{to}{suffix}"))
}

/// Renames interfaces in an ifupdown `interfaces` file (`auto`, `allow-*`, `iface` lines and
/// `bridge_ports`/`bond-slaves`-style lists).
pub fn rename_ifupdown(text: &str, map: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let indent = &line[..line.len() - line.trim_start().len()];
        let body = line.trim_start();
        let words: Vec<&str> = body.split_whitespace().collect();
        let Some(first) = words.first() else {
            out.push_str(line);
            continue;
        };
        let renames_rest = *first == "auto"
            || first.starts_with("allow-")
            || first.ends_with("_ports")
            || first.ends_with("-ports")
            || first.ends_with("-slaves")
            || first.ends_with("_slaves");
        if !(renames_rest || *first == "iface") {
            out.push_str(line);
            continue;
        }
        let mut changed = false;
        let new: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let target = if *first == "iface" { i == 1 } else { i >= 1 };
                match target.then(|| rename(w, map)).flatten() {
                    Some(n) => {
                        changed = true;
                        n
                    }
                    None => w.to_string(),
                }
            })
            .collect();
        if changed {
            out.push_str(indent);
            out.push_str(&new.join(" "));
            out.push('\n');
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Replaces every non-loopback `iface` stanza of an ifupdown file by DHCP, keeping the rest.
pub fn dhcp_ifupdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let words: Vec<&str> = body.split_whitespace().collect();
        let indented = line.starts_with([' ', '\t']);
        if words.first() == Some(&"iface") && words.len() >= 4 {
            let (name, family, method) = (words[1], words[2], words[3]);
            if method == "loopback" || name == "lo" {
                skipping = false;
                out.push_str(line);
                continue;
            }
            skipping = true;
            let m = if family == "inet6" { "auto" } else { "dhcp" };
            out.push_str(&format!("iface {name} {family} {m}\n"));
            continue;
        }
        if skipping && (indented || body.is_empty()) && !body.is_empty() {
            // An option of the replaced stanza (address, gateway, dns-*...).
            continue;
        }
        if !indented {
            skipping = false;
        }
        out.push_str(line);
    }
    out
}

/// Renames interfaces in a systemd-networkd `.network`/`.link` file's `Name=` matches.
pub fn rename_networkd(text: &str, map: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Name=") {
            let names: Vec<String> = v
                .split_whitespace()
                .map(|w| rename(w, map).unwrap_or_else(|| w.to_string()))
                .collect();
            out.push_str(&format!("Name={}\n", names.join(" ")));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Renames interfaces in a netplan file: the keys under `ethernets:` (and the other device
/// lists) and `set-name:`/`name:` values.
pub fn rename_netplan(text: &str, map: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = &body[..body.len() - body.trim_start().len()];
        let t = body.trim_start();
        let renamed = if let Some(key) = t.strip_suffix(':') {
            rename(key.trim_matches(['"', '\'']), map).map(|n| format!("{indent}{n}:"))
        } else if let Some((k, v)) = t.split_once(':') {
            let k = k.trim();
            let v = v.trim().trim_matches(['"', '\'']);
            if matches!(k, "name" | "set-name") {
                rename(v, map).map(|n| format!("{indent}{k}: {n}"))
            } else {
                None
            }
        } else {
            None
        };
        match renamed {
            Some(r) => {
                out.push_str(&r);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Turns a networkd `.network` file into DHCP: static addresses, gateways and DNS go.
pub fn dhcp_networkd(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut section = String::new();
    let mut had_dhcp = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            if section == "[Network]" && !had_dhcp {
                out.push_str("DHCP=yes\n");
                had_dhcp = true;
            }
            section = t.to_string();
        }
        if section == "[Network]" {
            let key = t.split('=').next().unwrap_or("").trim();
            match key {
                "Address" | "Gateway" | "DNS" => continue,
                "DHCP" => {
                    had_dhcp = true;
                    out.push_str("DHCP=yes\n");
                    continue;
                }
                _ => {}
            }
        }
        if section == "[Address]" || section == "[Route]" {
            continue;
        }
        if t == "[Address]" || t == "[Route]" {
            continue;
        }
        out.push_str(line);
    }
    if section == "[Network]" && !had_dhcp {
        out.push_str("DHCP=yes\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, method: NetMethod) -> NetworkInterface {
        NetworkInterface {
            name: name.into(),
            method,
            ..Default::default()
        }
    }

    #[test]
    fn fstab_keeps_non_block_entries_and_uses_new_uuids() {
        let src = "# comment\nUUID=aaa / ext4 errors=remount-ro,noatime 0 1\n\
                   UUID=bbb /srv xfs defaults 0 2\n/dev/vda15 /boot/efi vfat umask=0077 0 1\n\
                   tmpfs /tmp tmpfs defaults 0 0\nnfs:/x /mnt/x nfs ro 0 0\n/swapfile none swap sw 0 0\n";
        let out = fstab(src, "R-UUID", "E-UUID");
        assert!(out.contains("UUID=R-UUID / ext4 errors=remount-ro,noatime 0 1\n"));
        assert!(out.contains("UUID=E-UUID /boot/efi vfat umask=0077 0 1\n"));
        assert!(out
            .contains("# uforge: its files were migrated into the root filesystem: UUID=bbb /srv"));
        assert!(out.contains("# uforge: replaced by the new disk's filesystem above: UUID=aaa /"));
        assert!(out.contains("\ntmpfs /tmp tmpfs defaults 0 0\n"));
        assert!(out.contains("\nnfs:/x /mnt/x nfs ro 0 0\n"));
        assert!(out.contains("\n/swapfile none swap sw 0 0\n"));
        assert!(!out.lines().any(|l| l.starts_with("UUID=bbb")));
    }

    #[test]
    fn interfaces_are_named_in_natural_order() {
        let m = interface_map(&[
            iface("ens10", NetMethod::Dhcp),
            iface("lo", NetMethod::Loopback),
            iface("ens3", NetMethod::Static),
            iface("ens9", NetMethod::Dhcp),
        ]);
        let got: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, [("ens3", "eth0"), ("ens9", "eth1"), ("ens10", "eth2")]);
    }

    #[test]
    fn ifupdown_rename_and_dhcp() {
        let src = "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n\
                   auto ens3\niface ens3 inet static\n    address 192.0.2.10/24\n    gateway 192.0.2.1\n\n\
                   allow-hotplug ens4:1\niface ens4:1 inet dhcp\n";
        let map = vec![
            ("ens3".to_string(), "eth0".to_string()),
            ("ens4".into(), "eth1".into()),
        ];
        let r = rename_ifupdown(src, &map);
        assert!(r.contains("auto eth0\niface eth0 inet static\n    address 192.0.2.10/24\n"));
        assert!(r.contains("allow-hotplug eth1:1\niface eth1:1 inet dhcp\n"));
        assert!(r.contains("auto lo\niface lo inet loopback\n"));
        let d = dhcp_ifupdown(&r);
        assert!(d.contains("iface eth0 inet dhcp\n"));
        assert!(!d.contains("address"));
        assert!(!d.contains("gateway"));
        assert!(d.contains("iface lo inet loopback\n"));
        assert!(d.contains("source /etc/network/interfaces.d/*\n"));
    }

    #[test]
    fn networkd_rename_and_dhcp() {
        let src = "[Match]\nName=ens4\n\n[Network]\nAddress=10.0.0.5/24\nGateway=10.0.0.1\nDNS=10.0.0.53\n";
        let map = vec![("ens4".to_string(), "eth1".to_string())];
        let r = rename_networkd(src, &map);
        assert!(r.contains("Name=eth1\n"));
        assert_eq!(
            rename_networkd("[Match]\nName=en*\n", &map),
            "[Match]\nName=eth*\n"
        );
        let d = dhcp_networkd(&r);
        assert!(d.contains("DHCP=yes"));
        assert!(!d.contains("Address="));
        assert!(!d.contains("Gateway="));
    }

    #[test]
    fn netplan_keys_and_names_are_renamed() {
        let src = "network:\n  version: 2\n  ethernets:\n    ens3:\n      addresses: [192.0.2.10/24]\n\
                   \x20   ens4:\n      dhcp4: true\n    lan:\n      match:\n        name: en*\n      set-name: ens4\n";
        let map = vec![
            ("ens3".to_string(), "eth0".to_string()),
            ("ens4".into(), "eth1".into()),
        ];
        let r = rename_netplan(src, &map);
        assert!(
            r.contains("\n    eth0:\n      addresses: [192.0.2.10/24]\n"),
            "{r}"
        );
        assert!(r.contains("\n    eth1:\n      dhcp4: true\n"), "{r}");
        assert!(r.contains("        name: eth*\n"), "{r}");
        assert!(r.contains("      set-name: eth1\n"), "{r}");
        assert!(
            r.contains("  ethernets:\n") && r.contains("    lan:\n"),
            "{r}"
        );
    }
}
