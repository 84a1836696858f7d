//! Debian's ifupdown: `/etc/network/interfaces` and the files it sources.

use super::{cidr, push_unique, stronger};
use crate::facts::rootfs::{child, lossy, split_last, RootFs};
use crate::model::{NetMethod, NetworkInterface};

/// Includes nest rarely; the limit stops a file that sources itself.
const MAX_DEPTH: usize = 8;

/// Interfaces with an `iface` stanza; IPv4 and IPv6 stanzas of one interface are merged.
pub(super) fn gather(fs: &mut RootFs) -> Vec<NetworkInterface> {
    let mut out = Vec::new();
    read_file(fs, b"/etc/network/interfaces", 0, &mut out);
    out
}

/// One `iface` stanza being read; its netmask may follow its address, so addresses are only
/// put in CIDR form when the stanza ends.
struct Stanza {
    iface: NetworkInterface,
    addresses: Vec<String>,
    netmask: Option<String>,
}

fn read_file(fs: &mut RootFs, path: &[u8], depth: usize, out: &mut Vec<NetworkInterface>) {
    if depth > MAX_DEPTH {
        fs.error(path, "interfaces files source each other too deeply");
        return;
    }
    let Some(text) = fs.read(path) else {
        return;
    };
    let text = String::from_utf8_lossy(&text).replace("\\\n", " ");
    let mut stanza: Option<Stanza> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let keyword = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let is_stanza = matches!(
            keyword,
            "iface"
                | "mapping"
                | "auto"
                | "source"
                | "source-directory"
                | "rename"
                | "no-auto-down"
                | "no-scripts"
        ) || keyword.starts_with("allow-");
        if is_stanza {
            if let Some(done) = stanza.take() {
                merge(out, done);
            }
        }
        match keyword {
            "iface" if args.len() >= 3 => {
                stanza = Some(Stanza {
                    iface: NetworkInterface {
                        name: args[0].to_string(),
                        source: "ifupdown".to_string(),
                        file: lossy(path),
                        method: method(args[2]),
                        ..NetworkInterface::default()
                    },
                    addresses: Vec::new(),
                    netmask: None,
                });
            }
            "source" => {
                for pattern in args {
                    for file in glob(fs, &relative_to(path, pattern.as_bytes())) {
                        read_file(fs, &file, depth + 1, out);
                    }
                }
            }
            "source-directory" => {
                for dir in args {
                    let dir = relative_to(path, dir.as_bytes());
                    for name in fs.list(&dir) {
                        // run-parts' naming rule, which ifupdown applies here.
                        let ok = name
                            .iter()
                            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
                        let file = child(&dir, &name);
                        if ok && fs.is_file(&file) {
                            read_file(fs, &file, depth + 1, out);
                        }
                    }
                }
            }
            _ if !is_stanza => {
                if let Some(s) = stanza.as_mut() {
                    option(s, keyword, &args);
                }
            }
            _ => {}
        }
    }
    if let Some(done) = stanza {
        merge(out, done);
    }
}

fn option(s: &mut Stanza, key: &str, args: &[&str]) {
    let iface = &mut s.iface;
    match key {
        "address" => s.addresses.extend(args.iter().map(|a| a.to_string())),
        "netmask" => s.netmask = args.first().map(|a| a.to_string()),
        "gateway" if iface.gateway.is_none() => iface.gateway = args.first().map(|a| a.to_string()),
        "dns-nameservers" | "dns-nameserver" => {
            push_unique(&mut iface.dns, args.iter().map(|a| a.to_string()));
        }
        "hwaddress" => {
            let mac = if args.first() == Some(&"ether") {
                args.get(1)
            } else {
                args.first()
            };
            iface.mac = mac.map(|m| m.to_string());
        }
        _ => {}
    }
}

/// Adds a finished stanza, folding it into an earlier one for the same interface.
fn merge(out: &mut Vec<NetworkInterface>, s: Stanza) {
    let mut new = s.iface;
    let mask = s.netmask.as_deref();
    new.addresses = s.addresses.iter().map(|a| cidr(a, mask)).collect();
    let Some(old) = out.iter_mut().find(|i| i.name == new.name) else {
        out.push(new);
        return;
    };
    old.method = stronger(old.method, new.method);
    push_unique(&mut old.addresses, new.addresses);
    push_unique(&mut old.dns, new.dns);
    old.gateway = old.gateway.take().or(new.gateway);
    old.mac = old.mac.take().or(new.mac);
}

fn method(name: &str) -> NetMethod {
    match name {
        "static" | "v4tunnel" | "tunnel" | "6to4" => NetMethod::Static,
        "dhcp" | "bootp" => NetMethod::Dhcp,
        "auto" => NetMethod::Auto,
        "loopback" => NetMethod::Loopback,
        _ => NetMethod::Manual,
    }
}

/// A relative include is taken relative to the including file's directory.
fn relative_to(file: &[u8], path: &[u8]) -> Vec<u8> {
    if path.starts_with(b"/") {
        path.to_vec()
    } else {
        child(split_last(file).0, path)
    }
}

/// Regular files matching `pattern`, sorted as the shell would; wildcards are honoured in
/// the last component only, which is how interfaces files use them.
fn glob(fs: &mut RootFs, pattern: &[u8]) -> Vec<Vec<u8>> {
    let (dir, last) = split_last(pattern);
    if !last.contains(&b'*') && !last.contains(&b'?') {
        return vec![pattern.to_vec()];
    }
    fs.list(dir)
        .into_iter()
        .filter(|name| (!name.starts_with(b".") || last.starts_with(b".")) && matches(last, name))
        .map(|name| child(dir, &name))
        .filter(|p| fs.is_file(p))
        .collect()
}

/// Shell wildcard match with `*` and `?`.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was and how much of the name it had taken, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn wildcards() {
        assert!(matches(b"*", b"eth0"));
        assert!(matches(b"e*0", b"eth0"));
        assert!(matches(b"*.cfg", b"a.b.cfg"));
        assert!(matches(b"eth?", b"eth1"));
        assert!(!matches(b"eth?", b"eth10"));
        assert!(!matches(b"*.cfg", b"a.cfgx"));
    }

    #[test]
    fn stanzas_sources_and_merging() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("etc/network/interfaces.d")).unwrap();
        fs::create_dir_all(r.join("etc/network/more")).unwrap();
        fs::write(
            r.join("etc/network/interfaces"),
            "# main file\nsource /etc/network/interfaces.d/*\nsource-directory more\n\n\
             auto lo\niface lo inet loopback\n\nallow-hotplug eth0\n\
             iface eth0 inet dhcp\n    hwaddress ether 52:54:00:12:34:56\n\
             iface eth0 inet6 static\n    address 2001:db8::5\n    netmask 64\n\
             \x20   dns-nameservers 2001:db8::53 \\\n      2001:db8::54\n\
             iface eth2 inet6 auto\n",
        )
        .unwrap();
        fs::write(
            r.join("etc/network/interfaces.d/eth1"),
            "auto eth1\niface eth1 inet static\n  address 10.1.2.3\n  netmask 255.255.0.0\n  \
             gateway 10.1.0.1\n  dns-nameservers 10.1.0.53 10.1.0.54\n",
        )
        .unwrap();
        fs::write(
            r.join("etc/network/interfaces.d/.hidden"),
            "iface h inet dhcp\n",
        )
        .unwrap();
        fs::write(r.join("etc/network/more/eth3"), "iface eth3 inet manual\n").unwrap();
        // Skipped by the run-parts naming rule.
        fs::write(
            r.join("etc/network/more/eth4.bak"),
            "iface eth4 inet dhcp\n",
        )
        .unwrap();
        // A loop of includes must end.
        fs::write(
            r.join("etc/network/more/loop"),
            "source /etc/network/more/loop\n",
        )
        .unwrap();

        let mut rfs = RootFs::new(r);
        let ifs = gather(&mut rfs);
        let names: Vec<_> = ifs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth1", "eth3", "lo", "eth0", "eth2"]);
        let eth1 = &ifs[0];
        assert_eq!(eth1.file, "/etc/network/interfaces.d/eth1");
        assert_eq!(eth1.method, NetMethod::Static);
        assert_eq!(eth1.addresses, ["10.1.2.3/16"]);
        assert_eq!(eth1.gateway.as_deref(), Some("10.1.0.1"));
        assert_eq!(eth1.dns, ["10.1.0.53", "10.1.0.54"]);
        assert_eq!(ifs[1].method, NetMethod::Manual);
        assert_eq!(ifs[2].method, NetMethod::Loopback);
        let eth0 = &ifs[3];
        assert_eq!(eth0.file, "/etc/network/interfaces");
        assert_eq!(eth0.method, NetMethod::Static);
        assert_eq!(eth0.addresses, ["2001:db8::5/64"]);
        assert_eq!(eth0.dns, ["2001:db8::53", "2001:db8::54"]);
        assert_eq!(eth0.mac.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(ifs[4].method, NetMethod::Auto);
        assert_eq!(rfs.errors.len(), 1, "{:?}", rfs.errors);
    }
}
