//! Publishes an image file to a `--to` URL, the way `uforge image publish FILE --to URL`
//! will: `cargo run --release -p uforge-examples --example publish -- FILE URL`.
//!
//! Credentials come from the environment, never the URL: `UFORGE_TARGET_USER` and
//! `UFORGE_TARGET_PASSWORD` (registry, libvirt), `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` (S3). Prints the publication as JSON.

use uforge_core::progress::NoProgress;
use uforge_core::publish::{self, destination, sniff, Credentials, PublishRequest, TargetKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, url] = args.as_slice() else {
        return Err("usage: publish FILE URL".into());
    };
    let dest = destination::parse(url)?;
    let env = |k: &str| std::env::var(k).ok();
    let credentials = match dest.target.kind() {
        TargetKind::S3 => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Credentials::access_key(id, secret),
            _ => Credentials::None,
        },
        TargetKind::Directory => Credentials::None,
        _ => match (env("UFORGE_TARGET_USER"), env("UFORGE_TARGET_PASSWORD")) {
            (Some(u), Some(p)) => Credentials::password(u, p),
            _ => Credentials::None,
        },
    };
    let path = std::path::Path::new(file);
    let mut req = PublishRequest::new(path, sniff::detect(path)?);
    req.name = dest.name;
    req.instance = dest.instance;
    let p = publish::publish(&dest.target, credentials, &req, &NoProgress)?;
    println!("{}", serde_json::to_string_pretty(&p)?);
    Ok(())
}
