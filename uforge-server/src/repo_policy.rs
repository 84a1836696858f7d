//! Which repositories an API user may make the server read.
//!
//! A repository line makes the server open a path or connect to a host. From an ordinary user
//! that must not reach what only the server can reach: `file:` and `copy:` URIs read the
//! server's own files (another user's recreated packages), and hosts on loopback, link-local,
//! private networks or the server's own addresses are services behind the server's back. Such
//! lines are accepted only from an administrator, or on a server started with
//! `--allow-local-repos`. The check runs when a line is registered and again before each
//! fetch, since what a name resolves to can change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};

use uforge_core::repo::SourceLine;

/// `--allow-local-repos`: set once at start.
static ALLOW_LOCAL: AtomicBool = AtomicBool::new(false);

/// Lets every user use local repositories (`--allow-local-repos`).
pub fn set_allow_local(allow: bool) {
    ALLOW_LOCAL.store(allow, Ordering::Relaxed);
}

/// Whether a caller may use any repository: an administrator, or anyone on a server started
/// with `--allow-local-repos`.
pub fn unrestricted(admin: bool) -> bool {
    admin || ALLOW_LOCAL.load(Ordering::Relaxed)
}

/// Why one of `lines` must not be fetched for this caller, naming the line. Blocking.
pub fn check_lines(lines: &[String], admin: bool) -> Result<(), String> {
    if unrestricted(admin) {
        return Ok(());
    }
    for line in lines {
        // A line that does not parse is refused by the library, naming it, before any fetch.
        let Ok(source) = SourceLine::parse(line) else {
            continue;
        };
        if let Some(why) = refusal(&source.uri) {
            return Err(format!("repository {line:?}: {why}"));
        }
    }
    Ok(())
}

/// Why `uri` must not be fetched for an ordinary user, if it must not. Blocking: it resolves
/// the host.
pub fn refusal(uri: &str) -> Option<String> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Some(format!("{uri:?} has no scheme"));
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "http" | "https" => {}
        "file" | "copy" => {
            return Some(format!(
                "{scheme}: repositories read the server's own files; only an administrator \
                 may register them"
            ))
        }
        _ => {
            return Some(format!(
                "{scheme}: repositories are not allowed; use http: or https:"
            ))
        }
    }
    let Some((host, port)) = host_port(rest, if scheme == "https" { 443 } else { 80 }) else {
        return Some(format!("{uri:?} names no host"));
    };
    let addrs: Vec<IpAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.map(|a| a.ip()).collect(),
        Err(e) => return Some(format!("cannot resolve {host}: {e}")),
    };
    if addrs.is_empty() {
        return Some(format!("{host} resolves to no address"));
    }
    let own = own_addresses();
    for ip in addrs {
        if let Some(why) = local_kind(ip) {
            return Some(format!(
                "{host} resolves to {ip}, a {why} address; only an administrator may register \
                 repositories there"
            ));
        }
        if own.contains(&ip) {
            return Some(format!(
                "{host} resolves to {ip}, an address of the server itself; only an \
                 administrator may register repositories there"
            ));
        }
    }
    None
}

/// Host and port of `//[user@]host[:port]/...`.
fn host_port(rest: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = rest.strip_prefix("//")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => default_port,
    };
    Some((host.to_string(), port))
}

/// What kind of address only the server can reach `ip` is, if it is one.
fn local_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => local_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return local_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) and IPv4-compatible addresses carry an IPv4 one.
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) || s[..6] == [0; 6] {
                let o = v6.octets();
                let v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
                if !v6.is_loopback() && !v6.is_unspecified() {
                    return local_v4(v4);
                }
            }
            local_v6(v6)
        }
    }
}

fn local_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Some("private")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("broadcast or multicast")
    } else {
        None
    }
}

fn local_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s0 = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s0 & 0xffc0) == 0xfe80 || (s0 & 0xffc0) == 0xfec0 {
        Some("link-local")
    } else if (s0 & 0xfe00) == 0xfc00 {
        Some("private")
    } else if ip.is_multicast() {
        Some("multicast")
    } else {
        None
    }
}

/// The addresses of this host's interfaces.
fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list we free below; nothing else aliases it.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family says its real type.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_repositories_are_refused() {
        for uri in [
            "file:/srv/data/repos/alice",
            "copy:/etc",
            "FILE:///x",
            "cdrom:/media",
            "http://127.0.0.1:8080/debian",
            "http://localhost/debian",
            "https://[::1]/d",
            "http://10.1.2.3/d",
            "http://169.254.169.254/latest",
            "http://[fe80::1]/d",
            "http://[::ffff:127.0.0.1]/d",
            "http://[fd00::5]/d",
            "http://user:pw@192.168.1.1:3142/d",
            "http://0.0.0.0/d",
        ] {
            assert!(refusal(uri).is_some(), "{uri} accepted");
        }
        let why = refusal("http://127.0.0.1/d").unwrap();
        assert!(why.contains("127.0.0.1, a loopback address"), "{why}");
        for own in own_addresses() {
            let uri = match own {
                IpAddr::V4(a) => format!("http://{a}/d"),
                IpAddr::V6(a) => format!("http://[{a}]/d"),
            };
            assert!(refusal(&uri).is_some(), "{uri} accepted");
        }
    }

    #[test]
    fn public_addresses_pass() {
        assert_eq!(refusal("http://203.0.113.7/debian"), None);
        assert_eq!(refusal("https://[2001:db8::1]:8443/debian"), None);
        assert_eq!(
            host_port("//u@[2001:db8::1]:81/x", 80),
            Some(("2001:db8::1".into(), 81))
        );
        assert_eq!(host_port("//h/x", 80), Some(("h".into(), 80)));
    }
}
