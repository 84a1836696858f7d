//! Reading the container images uforge writes (and others like them) for a push: the OCI
//! layout tar (`oci-archive`) and `docker save` archives. Members are located once and then
//! read in place from the archive, so layers stream to the registry without being copied out.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::super::error::{ErrorKind, Result, TargetError};
use super::super::io::{image_io, FileRange};
use crate::image::Format;

pub(crate) const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Where a blob's bytes are.
pub(crate) enum Data {
    /// In the archive, from this offset.
    Member(u64),
    /// In memory (a manifest or config written here).
    Memory(Vec<u8>),
}

/// A blob to push: config or layer.
pub(crate) struct Blob {
    pub digest: String,
    pub size: u64,
    pub data: Data,
}

/// An image read from an archive.
pub(crate) struct Image {
    /// The manifest, byte for byte as it is pushed (its digest is the image's).
    pub manifest: Vec<u8>,
    pub media_type: String,
    /// Config first, then the layers.
    pub blobs: Vec<Blob>,
    /// The image's own name and tag, when the archive says (`web01`, `latest`).
    pub name: Option<String>,
    pub tag: Option<String>,
}

/// Regular members of a tar: name (without `./`) to data offset and size.
fn members(target: &str, path: &Path, file: File) -> Result<HashMap<String, (u64, u64)>> {
    let bad = |e: std::io::Error| image_io(target, "read", path, &e);
    let mut ar = tar::Archive::new(file);
    let mut out = HashMap::new();
    for e in ar.entries_with_seek().map_err(bad)? {
        let e = e.map_err(bad)?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let name = name.trim_start_matches("./").to_string();
        out.insert(name, (e.raw_file_position(), e.size()));
    }
    Ok(out)
}

fn corrupt(target: &str, path: &Path, why: impl std::fmt::Display) -> TargetError {
    TargetError::new(
        target,
        ErrorKind::Image,
        format!("{}: {why}", path.display()),
    )
}

/// Reads a small member whole.
fn read_member(target: &str, path: &Path, file: &File, at: (u64, u64)) -> Result<Vec<u8>> {
    if at.1 > 64 << 20 {
        return Err(corrupt(target, path, "a manifest or config over 64 MiB"));
    }
    let mut out = Vec::with_capacity(at.1 as usize);
    FileRange::new(file, at.0, at.1)
        .read_to_end(&mut out)
        .map_err(|e| image_io(target, "read", path, &e))?;
    Ok(out)
}

fn sha256_hex(data: &[u8]) -> String {
    crate::blobstore::to_hex(&Sha256::digest(data).into())
}

/// Opens the container image at `path` in `format` (`oci` or `docker-archive`).
pub(crate) fn open(target: &str, path: &Path, format: Format) -> Result<(File, Image)> {
    let file = File::open(path).map_err(|e| image_io(target, "open", path, &e))?;
    let index = members(
        target,
        path,
        file.try_clone()
            .map_err(|e| image_io(target, "open", path, &e))?,
    )?;
    let image = match format {
        Format::Oci => oci(target, path, &file, &index)?,
        Format::DockerArchive => docker(target, path, &file, &index)?,
        other => {
            return Err(TargetError::new(
                target,
                ErrorKind::Unsupported,
                format!("a registry takes oci and docker-archive images, not {other}"),
            ))
        }
    };
    Ok((file, image))
}

fn json_of(target: &str, path: &Path, what: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(target, path, format!("{what}: {e}")))
}

fn oci(
    target: &str,
    path: &Path,
    file: &File,
    index: &HashMap<String, (u64, u64)>,
) -> Result<Image> {
    let member = |name: &str| {
        index
            .get(name)
            .copied()
            .ok_or_else(|| corrupt(target, path, format!("no {name} in the OCI layout")))
    };
    let idx = json_of(
        target,
        path,
        "index.json",
        &read_member(target, path, file, member("index.json")?)?,
    )?;
    let manifests = idx["manifests"].as_array().cloned().unwrap_or_default();
    let desc = match manifests.as_slice() {
        [one] => one.clone(),
        [] => return Err(corrupt(target, path, "index.json lists no image")),
        _ => {
            return Err(corrupt(
                target,
                path,
                format!(
                    "index.json lists {} images; push one at a time",
                    manifests.len()
                ),
            ))
        }
    };
    let media_type = desc["mediaType"]
        .as_str()
        .unwrap_or(MEDIA_OCI_MANIFEST)
        .to_string();
    if media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST {
        return Err(TargetError::new(
            target,
            ErrorKind::Unsupported,
            format!(
                "{}: a multi-platform index; push a single image",
                path.display()
            ),
        ));
    }
    let blob_member = |d: &Value| -> Result<(String, u64, u64)> {
        let digest = d["digest"].as_str().unwrap_or_default().to_string();
        let (alg, hex) = digest
            .split_once(':')
            .ok_or_else(|| corrupt(target, path, format!("bad digest `{digest}`")))?;
        let (off, len) = member(&format!("blobs/{alg}/{hex}"))?;
        let size = d["size"].as_u64().unwrap_or(len);
        if size != len {
            return Err(corrupt(
                target,
                path,
                format!("blob {digest} holds {len} bytes, its descriptor says {size}"),
            ));
        }
        Ok((digest, off, len))
    };
    let (mdigest, moff, mlen) = blob_member(&desc)?;
    let manifest = read_member(target, path, file, (moff, mlen))?;
    if format!("sha256:{}", sha256_hex(&manifest)) != mdigest {
        return Err(corrupt(
            target,
            path,
            format!("the manifest does not hash to {mdigest}"),
        ));
    }
    let m = json_of(target, path, "the manifest", &manifest)?;
    let mut blobs = Vec::new();
    let layers = m["layers"].as_array().cloned().unwrap_or_default();
    for d in std::iter::once(&m["config"]).chain(layers.iter()) {
        let (digest, off, size) = blob_member(d)?;
        blobs.push(Blob {
            digest,
            size,
            data: Data::Member(off),
        });
    }
    let ann = &desc["annotations"];
    Ok(Image {
        manifest,
        media_type: m["mediaType"].as_str().unwrap_or(&media_type).to_string(),
        blobs,
        name: ann["org.opencontainers.image.title"]
            .as_str()
            .map(str::to_string),
        tag: ann["org.opencontainers.image.ref.name"]
            .as_str()
            .map(str::to_string),
    })
}

fn docker(
    target: &str,
    path: &Path,
    file: &File,
    index: &HashMap<String, (u64, u64)>,
) -> Result<Image> {
    let member = |name: &str| {
        index
            .get(name.trim_start_matches("./"))
            .copied()
            .ok_or_else(|| corrupt(target, path, format!("no {name} in the docker archive")))
    };
    let list = json_of(
        target,
        path,
        "manifest.json",
        &read_member(target, path, file, member("manifest.json")?)?,
    )?;
    let entry = match list.as_array().map(Vec::as_slice) {
        Some([one]) => one.clone(),
        _ => {
            return Err(corrupt(
                target,
                path,
                "manifest.json must list exactly one image",
            ))
        }
    };
    let config_name = entry["Config"].as_str().unwrap_or_default();
    let config = read_member(target, path, file, member(config_name)?)?;
    let cfg = json_of(target, path, config_name, &config)?;
    let diff_ids = cfg["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let layer_names = entry["Layers"].as_array().cloned().unwrap_or_default();
    if diff_ids.len() != layer_names.len() {
        return Err(corrupt(
            target,
            path,
            "the config's diff_ids and the layers differ in number",
        ));
    }
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let mut blobs = vec![Blob {
        digest: config_digest.clone(),
        size: config.len() as u64,
        data: Data::Memory(config.clone()),
    }];
    let mut descs = Vec::new();
    for (name, diff_id) in layer_names.iter().zip(&diff_ids) {
        let (off, size) = member(name.as_str().unwrap_or_default())?;
        let mut magic = [0u8; 2];
        let n = FileRange::new(file, off, size.min(2))
            .read(&mut magic)
            .map_err(|e| image_io(target, "read", path, &e))?;
        // docker save writes layers uncompressed: their digest is the diff_id. A compressed
        // one is hashed here.
        let (digest, media) = if n == 2 && magic == [0x1f, 0x8b] {
            let mut h = Sha256::new();
            super::super::io::hash_range(&mut h, file, off, size, &crate::progress::NoProgress)
                .map_err(|e| image_io(target, "read", path, &e))?;
            (
                format!("sha256:{}", crate::blobstore::to_hex(&h.finalize().into())),
                MEDIA_OCI_LAYER_GZIP,
            )
        } else {
            (
                diff_id.as_str().unwrap_or_default().to_string(),
                MEDIA_OCI_LAYER,
            )
        };
        descs.push(json!({ "mediaType": media, "digest": digest, "size": size }));
        blobs.push(Blob {
            digest,
            size,
            data: Data::Member(off),
        });
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": { "mediaType": MEDIA_OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": descs,
    }))
    .expect("JSON values serialize");
    let repo_tag = entry["RepoTags"][0].as_str().unwrap_or_default();
    let (name, tag) = match repo_tag.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (Some(n.to_string()), Some(t.to_string())),
        _ if !repo_tag.is_empty() => (Some(repo_tag.to_string()), None),
        _ => (None, None),
    };
    Ok(Image {
        manifest,
        media_type: MEDIA_OCI_MANIFEST.to_string(),
        blobs,
        name,
        tag,
    })
}
