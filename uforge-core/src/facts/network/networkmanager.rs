//! NetworkManager keyfiles in `/etc/NetworkManager/system-connections`.

use super::ini::{self, Section};
use super::{push_unique, stronger};
use crate::facts::rootfs::{child, lossy, RootFs};
use crate::model::{NetMethod, NetworkInterface};

const DIR: &[u8] = b"/etc/NetworkManager/system-connections";

/// One entry per connection profile.
pub(super) fn gather(fs: &mut RootFs) -> Vec<NetworkInterface> {
    let mut out = Vec::new();
    for name in fs.list(DIR) {
        // NetworkManager reads `*.nmconnection` and extension-less names; other suffixes are
        // editor and package manager leftovers it ignores too.
        let wanted = name.ends_with(b".nmconnection") || !name.contains(&b'.');
        let path = child(DIR, &name);
        if !wanted || !fs.is_file(&path) {
            continue;
        }
        if let Some(text) = fs.read(&path) {
            out.extend(connection(&ini::parse(&text), &path));
        }
    }
    out
}

fn connection(sections: &[Section], path: &[u8]) -> Option<NetworkInterface> {
    let section = |n: &str| sections.iter().find(|s| s.name == n);
    let conn = section("connection")?;
    let name = conn.get("interface-name").or_else(|| conn.get("id"))?;
    let mut iface = NetworkInterface {
        name: name.to_string(),
        source: "networkmanager".to_string(),
        file: lossy(path),
        mac: ["ethernet", "802-3-ethernet", "wifi", "802-11-wireless"]
            .iter()
            .find_map(|s| section(s)?.get("mac-address"))
            .map(str::to_string),
        ..NetworkInterface::default()
    };
    for (family, auto) in [("ipv4", NetMethod::Dhcp), ("ipv6", NetMethod::Auto)] {
        let Some(ip) = section(family) else {
            continue;
        };
        let method = match ip.get("method").unwrap_or("auto") {
            "auto" => auto,
            "dhcp" => NetMethod::Dhcp,
            "manual" => NetMethod::Static,
            _ => NetMethod::Manual,
        };
        iface.method = stronger(iface.method, method);
        let mut embedded_gateway = None;
        for (key, value) in &ip.entries {
            let is_address = ["address", "addresses"].iter().any(|p| {
                key.strip_prefix(p)
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
            });
            if !is_address {
                continue;
            }
            // `address1=192.0.2.5/24,192.0.2.1`, or the older `addresses1=192.0.2.5;24;192.0.2.1;`.
            let parts: Vec<&str> = value
                .split([',', ';'])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            let Some(&addr) = parts.first() else {
                continue;
            };
            let mut rest = &parts[1..];
            let addr = match rest.first() {
                Some(len) if !addr.contains('/') && len.chars().all(|c| c.is_ascii_digit()) => {
                    rest = &rest[1..];
                    format!("{addr}/{len}")
                }
                _ => addr.to_string(),
            };
            push_unique(&mut iface.addresses, [addr]);
            embedded_gateway = embedded_gateway.or(rest.first().copied());
        }
        // The `gateway` key supersedes a gateway written after an address (the older form).
        let gateway = ip.get("gateway").or(embedded_gateway);
        iface.gateway = iface.gateway.take().or(gateway.map(str::to_string));
        let dns = ip.get("dns").unwrap_or_default().split([';', ',']);
        push_unique(&mut iface.dns, dns.map(|d| d.trim().to_string()));
    }
    Some(iface)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn keyfiles() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("etc/NetworkManager/system-connections");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("Wired connection 1.nmconnection"),
            "[connection]\nid=Wired connection 1\ntype=ethernet\ninterface-name=enp1s0\n\n\
             [ethernet]\nmac-address=52:54:00:01:02:03\n\n[ipv4]\nmethod=manual\n\
             address1=192.0.2.5/24,192.0.2.1\naddress2=192.0.2.6/24\ndns=192.0.2.53;192.0.2.54;\n\n\
             [ipv6]\nmethod=auto\n",
        )
        .unwrap();
        fs::write(
            dir.join("office"),
            "[connection]\nid=office\n[ipv4]\nmethod=auto\n[ipv6]\nmethod=ignore\n",
        )
        .unwrap();
        fs::write(
            dir.join("legacy"),
            "[connection]\nid=legacy\n[ipv4]\nmethod=manual\naddresses1=10.0.0.2;8;10.0.0.1;\n",
        )
        .unwrap();
        fs::write(dir.join("office.bak"), "[connection]\nid=bak\n").unwrap();
        fs::write(dir.join("noconn"), "[ipv4]\nmethod=auto\n").unwrap();
        let mut rfs = RootFs::new(tmp.path());
        let ifs = gather(&mut rfs);
        assert_eq!(ifs.len(), 3);
        let wired = &ifs[0];
        assert_eq!(wired.name, "enp1s0");
        assert_eq!(wired.method, NetMethod::Static);
        assert_eq!(wired.addresses, ["192.0.2.5/24", "192.0.2.6/24"]);
        assert_eq!(wired.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(wired.dns, ["192.0.2.53", "192.0.2.54"]);
        assert_eq!(wired.mac.as_deref(), Some("52:54:00:01:02:03"));
        assert_eq!(ifs[1].name, "legacy");
        assert_eq!(ifs[1].addresses, ["10.0.0.2/8"]);
        assert_eq!(ifs[1].gateway.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            (ifs[2].name.as_str(), ifs[2].method),
            ("office", NetMethod::Dhcp)
        );
    }
}
