//! systemd-networkd: `/etc/systemd/network/*.network`.

use super::ini::{self, Section};
use super::push_unique;
use crate::facts::rootfs::{child, lossy, RootFs};
use crate::model::{NetMethod, NetworkInterface};

const DIR: &[u8] = b"/etc/systemd/network";

/// One entry per `.network` file.
pub(super) fn gather(fs: &mut RootFs) -> Vec<NetworkInterface> {
    let mut out = Vec::new();
    for name in fs.list(DIR) {
        let Some(stem) = name.strip_suffix(b".network") else {
            continue;
        };
        let path = child(DIR, &name);
        if let Some(text) = fs.read(&path) {
            out.push(network(&ini::parse(&text), stem, &path));
        }
    }
    out
}

/// Values of `key` in all `section`s, split on blanks. An empty assignment resets the list,
/// as in every systemd list setting.
fn list(sections: &[Section], section: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in sections.iter().filter(|s| s.name == section) {
        for v in s.all(key) {
            if v.is_empty() {
                out.clear();
            }
            push_unique(&mut out, v.split_whitespace().map(str::to_string));
        }
    }
    out
}

fn network(sections: &[Section], stem: &[u8], path: &[u8]) -> NetworkInterface {
    let first = |s: &str, k: &str| list(sections, s, k).into_iter().next();
    let mut iface = NetworkInterface {
        // Without a Name= match the file applies by other criteria; its name says what for.
        name: first("Match", "Name").unwrap_or_else(|| lossy(stem)),
        source: "networkd".to_string(),
        file: lossy(path),
        mac: first("Match", "MACAddress"),
        dns: list(sections, "Network", "DNS"),
        ..NetworkInterface::default()
    };
    iface.addresses = list(sections, "Network", "Address");
    push_unique(&mut iface.addresses, list(sections, "Address", "Address"));
    let default_route = sections
        .iter()
        .filter(|s| s.name == "Route")
        .filter(|s| {
            s.get("Destination")
                .is_none_or(|d| matches!(d, "0.0.0.0/0" | "::/0"))
        })
        .find_map(|s| s.get("Gateway"));
    iface.gateway = first("Network", "Gateway").or(default_route.map(str::to_string));
    let dhcp = sections
        .iter()
        .filter(|s| s.name == "Network")
        .filter_map(|s| s.get("DHCP"))
        .next_back()
        .is_some_and(|v| matches!(v, "yes" | "true" | "on" | "1" | "ipv4" | "ipv6" | "both"));
    iface.method = if !iface.addresses.is_empty() {
        NetMethod::Static
    } else if dhcp {
        NetMethod::Dhcp
    } else {
        NetMethod::Manual
    };
    iface
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn network_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("etc/systemd/network");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("10-static.network"),
            "[Match]\nName=ens3 ens4\nMACAddress=52:54:00:00:00:01\n\n[Network]\n\
             Address=192.0.2.10/24\nDNS=192.0.2.53 192.0.2.54\nDNS=192.0.2.55\n\n\
             [Address]\nAddress=2001:db8::10/64\n\n[Route]\nDestination=10.0.0.0/8\nGateway=192.0.2.254\n\n\
             [Route]\nGateway=192.0.2.1\n",
        )
        .unwrap();
        fs::write(
            dir.join("20-dhcp.network"),
            "[Match]\nName=ens5\n[Network]\nDHCP=ipv4\n",
        )
        .unwrap();
        fs::write(
            dir.join("30-any.network"),
            "[Match]\nType=ether\n[Network]\nDHCP=no\n",
        )
        .unwrap();
        fs::write(dir.join("10-link.link"), "[Match]\nName=x\n").unwrap();
        let mut rfs = RootFs::new(tmp.path());
        let ifs = gather(&mut rfs);
        assert_eq!(ifs.len(), 3);
        let s = &ifs[0];
        assert_eq!(s.name, "ens3");
        assert_eq!(s.file, "/etc/systemd/network/10-static.network");
        assert_eq!(s.method, NetMethod::Static);
        assert_eq!(s.addresses, ["192.0.2.10/24", "2001:db8::10/64"]);
        assert_eq!(s.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(s.dns, ["192.0.2.53", "192.0.2.54", "192.0.2.55"]);
        assert_eq!(s.mac.as_deref(), Some("52:54:00:00:00:01"));
        assert_eq!(
            (ifs[1].name.as_str(), ifs[1].method),
            ("ens5", NetMethod::Dhcp)
        );
        assert_eq!(
            (ifs[2].name.as_str(), ifs[2].method),
            ("30-any", NetMethod::Manual)
        );
    }
}
