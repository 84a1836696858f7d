//! `--to` URLs of `uforge image publish FILE` and `uforge image deploy`, parsed into a
//! [`TargetSpec`], a name at the target and, for a deployment, the machine to start.
//!
//! | URL | target |
//! |---|---|
//! | `/srv/images`, `dir:///srv/images`, `file:///srv/images` | directory |
//! | `oci://HOST[:PORT]/NAMESPACE/REPO[:TAG]` (`docker://` too) `?ca=FILE&insecure=1&http=1&chunk=32MiB` | registry |
//! | `s3://BUCKET/PREFIX/[NAME]?endpoint=URL&region=R&style=path\|virtual&part=16MiB&concurrency=4&ca=FILE` | S3 |
//! | `libvirt:///system`, `libvirt+ssh://host/system`, `qemu:///system` `?pool=P&network=N\|bridge=B\|user=1&forward=SPEC&net=CIDR&type=qemu&name=VM&memory=1024&cpus=2&firmware=bios` | libvirt |
//!
//! Credentials never go in the URL (a URL ends up in shell histories and process lists):
//! frontends take them from the environment or a file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::hardware::Firmware;
use super::target::{
    DirectoryTarget, LibvirtNetwork, LibvirtTarget, RegistryTarget, S3Target, TargetSpec,
    TlsSettings,
};
use super::InstanceSpec;
use crate::repo::percent_decode;
use crate::{Error, Result};

/// A parsed `--to` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The target.
    pub target: TargetSpec,
    /// The name at the target the URL gives (`REPO:TAG`, an object or volume name).
    pub name: Option<String>,
    /// The machine to start, when the URL gives `memory` or `cpus` (libvirt).
    pub instance: Option<InstanceSpec>,
}

/// Parses a `--to` URL; see the [module](self) documentation for the forms.
pub fn parse(url: &str) -> Result<Destination> {
    let bad = |why: &str| Error::Invalid(format!("--to {url}: {why}"));
    if url.starts_with('/') {
        return Ok(directory(PathBuf::from(url)));
    }
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| bad("not a URL or an absolute path"))?;
    match scheme {
        "dir" | "file" => {
            let path = crate::repo::FileFetcher::path_of(&format!("file:{rest}"))
                .map_err(|e| bad(&e.to_string()))?;
            Ok(directory(path))
        }
        "oci" | "docker" => registry(
            url,
            rest.strip_prefix("//")
                .ok_or_else(|| bad("expected oci://HOST/REPO"))?,
        ),
        "s3" => s3(
            url,
            rest.strip_prefix("//")
                .ok_or_else(|| bad("expected s3://BUCKET/PREFIX/"))?,
        ),
        s if s == "libvirt"
            || s == "qemu"
            || s.starts_with("libvirt+")
            || s.starts_with("qemu+") =>
        {
            libvirt(url, s, rest)
        }
        other => Err(bad(&format!(
            "unknown scheme `{other}`; use a path, dir:, oci:, s3: or libvirt:"
        ))),
    }
}

fn directory(path: PathBuf) -> Destination {
    Destination {
        target: TargetSpec::Directory(DirectoryTarget { path }),
        name: None,
        instance: None,
    }
}

/// `AUTHORITY/PATH` and the query, split; the query's values percent-decoded.
struct Parts<'a> {
    authority: &'a str,
    path: &'a str,
    query: Vec<(String, String)>,
}

fn split<'a>(url: &str, rest: &'a str) -> Result<Parts<'a>> {
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    if authority.contains('@') {
        let scheme = url.split(':').next().unwrap_or_default();
        return Err(Error::Invalid(format!(
            "--to {scheme}://…: credentials do not go in the URL; give them in the environment"
        )));
    }
    let text =
        |s: &str| String::from_utf8_lossy(&percent_decode(&s.replace('+', " "))).into_owned();
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (text(k), text(v))
        })
        .collect();
    Ok(Parts {
        authority,
        path,
        query,
    })
}

/// Query options, each taken once; what is left at the end is an error (a typo must not be
/// ignored) unless the caller passes it on.
struct Options {
    url: String,
    map: BTreeMap<String, Vec<String>>,
}

impl Options {
    fn new(url: &str, query: Vec<(String, String)>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in query {
            map.entry(k).or_default().push(v);
        }
        Options {
            url: url.to_string(),
            map,
        }
    }

    fn bad(&self, why: String) -> Error {
        Error::Invalid(format!(
            "--to {}: {why}",
            super::error::redact_url(&self.url)
        ))
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key).and_then(|mut v| v.pop())
    }

    fn take_all(&mut self, key: &str) -> Vec<String> {
        self.map.remove(key).unwrap_or_default()
    }

    fn flag(&mut self, key: &str) -> Result<bool> {
        match self.take(key).as_deref() {
            None => Ok(false),
            Some("" | "1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(v) => Err(self.bad(format!("{key}={v}: expected 1 or 0"))),
        }
    }

    fn size(&mut self, key: &str) -> Result<u64> {
        match self.take(key) {
            None => Ok(0),
            Some(v) => parse_size(&v).ok_or_else(|| self.bad(format!("{key}={v}: not a size"))),
        }
    }

    fn number<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.bad(format!("{key}={v}: not a number"))),
        }
    }

    fn tls(&mut self) -> Result<TlsSettings> {
        let ca_pem = match self.take("ca") {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(&path).map_err(|e| self.bad(format!("ca={path}: {e}")))?,
            ),
        };
        Ok(TlsSettings {
            ca_pem,
            insecure: self.flag("insecure")?,
        })
    }

    fn done(self) -> Result<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(self.bad(format!("unknown option `{k}`"))),
        }
    }
}

/// `32MiB`, `16M`, `1G`, `4096`: bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

fn registry(url: &str, rest: &str) -> Result<Destination> {
    let p = split(url, rest)?;
    let mut o = Options::new(url, p.query);
    if p.authority.is_empty() || p.path.is_empty() {
        return Err(o.bad("expected oci://REGISTRY/[NAMESPACE/]REPO[:TAG]".into()));
    }
    let (namespace, last) = match p.path.trim_end_matches('/').rsplit_once('/') {
        Some((ns, last)) => (ns.to_string(), last),
        None => (String::new(), p.path.trim_end_matches('/')),
    };
    let registry = if o.flag("http")? {
        format!("http://{}", p.authority)
    } else {
        p.authority.to_string()
    };
    let target = RegistryTarget {
        registry,
        namespace,
        tls: o.tls()?,
        chunk_size: o.size("chunk")?,
    };
    o.done()?;
    Ok(Destination {
        target: TargetSpec::Registry(target),
        name: Some(last.to_string()),
        instance: None,
    })
}

fn s3(url: &str, rest: &str) -> Result<Destination> {
    let p = split(url, rest)?;
    let mut o = Options::new(url, p.query);
    if p.authority.is_empty() {
        return Err(o.bad("expected s3://BUCKET/PREFIX/".into()));
    }
    let (prefix, name) = if p.path.is_empty() || p.path.ends_with('/') {
        (p.path.trim_matches('/').to_string(), None)
    } else {
        match p.path.rsplit_once('/') {
            Some((pre, n)) => (pre.trim_matches('/').to_string(), Some(n.to_string())),
            None => (String::new(), Some(p.path.to_string())),
        }
    };
    let region = o.take("region").unwrap_or_else(|| "us-east-1".into());
    let endpoint = o
        .take("endpoint")
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let path_style = match o.take("style").as_deref() {
        None | Some("path") => true,
        Some("virtual" | "vhost") => false,
        Some(v) => return Err(o.bad(format!("style={v}: expected path or virtual"))),
    };
    let target = S3Target {
        endpoint,
        region,
        bucket: p.authority.to_string(),
        prefix,
        path_style,
        tls: o.tls()?,
        part_size: o.size("part")?,
        concurrency: o.number("concurrency")?.unwrap_or(0),
    };
    o.done()?;
    Ok(Destination {
        target: TargetSpec::S3(target),
        name,
        instance: None,
    })
}

fn libvirt(url: &str, scheme: &str, rest: &str) -> Result<Destination> {
    let p = split(url, rest.strip_prefix("//").unwrap_or(rest))?;
    let mut o = Options::new(url, p.query);
    let driver = match scheme.split_once('+') {
        Some((_, transport)) => format!("qemu+{transport}"),
        None => "qemu".to_string(),
    };
    let pool = o.take("pool").unwrap_or_else(|| "default".into());
    let forwards = o.take_all("forward");
    for f in &forwards {
        if !valid_forward(f) {
            return Err(o.bad(format!(
                "forward={f}: expected PROTO:[HOSTADDR]:PORT-[GUESTADDR]:PORT"
            )));
        }
    }
    let net = o.take("net");
    let network = if o.flag("user")? || !forwards.is_empty() || net.is_some() {
        LibvirtNetwork::User { net, forwards }
    } else if let Some(b) = o.take("bridge") {
        LibvirtNetwork::Bridge { name: b }
    } else {
        LibvirtNetwork::Network {
            name: o.take("network").unwrap_or_else(|| "default".into()),
        }
    };
    let domain_type = o.take("type").unwrap_or_else(|| "kvm".into());
    if domain_type != "kvm" && domain_type != "qemu" {
        return Err(o.bad(format!("type={domain_type}: expected kvm or qemu")));
    }
    let name = o.take("name");
    let memory: Option<u64> = o.number("memory")?;
    let cpus: Option<u32> = o.number("cpus")?;
    let firmware = match o.take("firmware") {
        None => Firmware::Auto,
        Some(f) => Firmware::parse(&f)
            .ok_or_else(|| o.bad(format!("firmware={f}: expected auto, bios or uefi")))?,
    };
    let instance = (memory.is_some() || cpus.is_some()).then(|| InstanceSpec {
        name: name.clone(),
        memory_mib: memory.unwrap_or(1024),
        cpus: cpus.unwrap_or(1),
        firmware,
    });
    // What is left belongs to libvirt's own URI (socket=, keyfile=, no_verify=...).
    let rest: Vec<String> = std::mem::take(&mut o.map)
        .into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |v| format!("{k}={v}")))
        .collect();
    let mut uri = format!("{driver}://{}/{}", p.authority, p.path);
    if !rest.is_empty() {
        uri.push('?');
        uri.push_str(&rest.join("&"));
    }
    Ok(Destination {
        target: TargetSpec::Libvirt(LibvirtTarget {
            uri,
            pool,
            network,
            domain_type,
        }),
        name,
        instance,
    })
}

/// A QEMU `hostfwd` rule, nothing more: it goes into a `-netdev` option list, where a comma
/// would start another option.
pub(crate) fn valid_forward(f: &str) -> bool {
    let Some((proto, rest)) = f.split_once(':') else {
        return false;
    };
    let Some((host, guest)) = rest.split_once('-') else {
        return false;
    };
    let side = |s: &str| {
        let (addr, port) = s.rsplit_once(':').unwrap_or(("", s));
        addr.chars().all(|c| c.is_ascii_digit() || c == '.')
            && !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
    };
    (proto == "tcp" || proto == "udp") && side(host) && side(guest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_url() {
        let d = parse("/srv/images").unwrap();
        assert_eq!(d.target.display(), "directory /srv/images");
        let d = parse("dir:///srv/my%20images").unwrap();
        assert_eq!(d.target.display(), "directory /srv/my images");

        let d = parse("oci://127.0.0.1:5000/team/web/app:v1?chunk=8MiB&insecure=1").unwrap();
        let TargetSpec::Registry(r) = &d.target else {
            panic!()
        };
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.namespace, "team/web");
        assert_eq!(r.chunk_size, 8 << 20);
        assert!(r.tls.insecure);
        assert_eq!(d.name.as_deref(), Some("app:v1"));
        let d = parse("docker://localhost:5000/app?http=1").unwrap();
        let TargetSpec::Registry(r) = &d.target else {
            panic!()
        };
        assert_eq!(
            (r.registry.as_str(), r.namespace.as_str()),
            ("http://localhost:5000", "")
        );

        let d =
            parse("s3://bkt/images/?endpoint=http://127.0.0.1:3900&region=garage&part=8M").unwrap();
        let TargetSpec::S3(s) = &d.target else {
            panic!()
        };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("bkt", "images"));
        assert_eq!((s.region.as_str(), s.part_size), ("garage", 8 << 20));
        assert!(s.path_style && d.name.is_none());
        let d = parse("s3://bkt/a/b/web.qcow2?region=eu-west-1&style=virtual").unwrap();
        let TargetSpec::S3(s) = &d.target else {
            panic!()
        };
        assert_eq!(s.endpoint, "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(
            (s.prefix.as_str(), d.name.as_deref()),
            ("a/b", Some("web.qcow2"))
        );
        assert!(!s.path_style);

        let d = parse(
            "libvirt:///system?socket=/tmp/x/sock&pool=uf&type=qemu&forward=tcp:127.0.0.1:8080-:80\
             &memory=512&cpus=2&firmware=uefi&name=vm1",
        )
        .unwrap();
        let TargetSpec::Libvirt(l) = &d.target else {
            panic!()
        };
        assert_eq!(l.uri, "qemu:///system?socket=/tmp/x/sock");
        assert_eq!((l.pool.as_str(), l.domain_type.as_str()), ("uf", "qemu"));
        assert_eq!(
            l.network,
            LibvirtNetwork::User {
                net: None,
                forwards: vec!["tcp:127.0.0.1:8080-:80".into()]
            }
        );
        let i = d.instance.unwrap();
        assert_eq!((i.memory_mib, i.cpus, i.firmware), (512, 2, Firmware::Uefi));
        assert_eq!(i.name.as_deref(), Some("vm1"));
        let d = parse("libvirt+ssh://host/system?bridge=br0").unwrap();
        let TargetSpec::Libvirt(l) = &d.target else {
            panic!()
        };
        assert_eq!(l.uri, "qemu+ssh://host/system");
        assert_eq!(l.network, LibvirtNetwork::Bridge { name: "br0".into() });
        assert!(d.instance.is_none());
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, why) in [
            ("ftp://x/y", "unknown scheme"),
            ("relative/path", "not a URL"),
            ("oci://user:pw@reg/app", "credentials do not go in the URL"),
            ("oci://reg", "expected oci://"),
            ("s3://b/p/?regoin=x", "unknown option `regoin`"),
            ("s3://b/?part=lots", "not a size"),
            ("libvirt:///system?forward=tcp:1-:80,smb=/", "forward="),
            ("libvirt:///system?type=xen", "expected kvm or qemu"),
        ] {
            let e = parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
        assert!(valid_forward("udp::5353-10.0.2.15:53"));
        assert!(!valid_forward("tcp:8080:80"));
        assert_eq!(parse_size("32MiB"), Some(32 << 20));
        assert_eq!(parse_size("7"), Some(7));
    }
}
