//! How template values are spelled in `template.yml`: raw paths as text (or base64 when they
//! are not UTF-8), digests in hex, modes in octal, extended attributes in base64, and lists
//! written one entry per line.

use std::collections::BTreeMap;

use base64::Engine;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_saphyr::FlowMap;

use crate::model::RawPath;
use crate::rawpath::{to_text, TextPath, B64};

/// A list written one entry per line (each entry a YAML flow mapping), which keeps diffs of
/// long lists (packages, files) to the lines that changed.
pub(crate) fn flow_items<S: Serializer, T: Serialize>(
    items: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().map(FlowMap))
}

/// A raw path as it appears in the file: a string when it is UTF-8, else `{b64: ...}`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PathForm {
    Text(String),
    Bytes(B64Form),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct B64Form {
    b64: String,
}

impl PathForm {
    fn of(p: &[u8]) -> Self {
        match to_text(p) {
            TextPath::Utf8(s) => PathForm::Text(s.to_string()),
            TextPath::Base64(b64) => PathForm::Bytes(B64Form { b64 }),
        }
    }

    fn bytes<E: serde::de::Error>(self) -> Result<RawPath, E> {
        match self {
            PathForm::Text(s) => Ok(s.into_bytes()),
            PathForm::Bytes(b) => B64
                .decode(&b.b64)
                .map_err(|e| E::custom(format!("b64 {:?} is not base64: {e}", b.b64))),
        }
    }
}

/// `#[serde(with)]` for a [`RawPath`].
pub(crate) mod raw_path {
    use super::*;

    pub fn serialize<S: Serializer>(p: &[u8], s: S) -> Result<S::Ok, S::Error> {
        PathForm::of(p).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RawPath, D::Error> {
        PathForm::deserialize(d)?.bytes()
    }
}

/// `#[serde(with)]` for an optional [`RawPath`].
pub(crate) mod opt_raw_path {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<RawPath>, s: S) -> Result<S::Ok, S::Error> {
        p.as_deref().map(PathForm::of).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RawPath>, D::Error> {
        Option::<PathForm>::deserialize(d)?
            .map(PathForm::bytes)
            .transpose()
    }
}

/// A list of raw paths, one per line.
pub(crate) mod raw_paths {
    use super::*;

    pub fn serialize<S: Serializer>(p: &[RawPath], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(p.iter().map(|p| PathForm::of(p)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawPath>, D::Error> {
        Vec::<PathForm>::deserialize(d)?
            .into_iter()
            .map(PathForm::bytes)
            .collect()
    }
}

/// Lower-case hex of a SHA-256, as `sha256sum` prints it.
pub(crate) fn hex(d: &[u8; 32]) -> String {
    crate::blobstore::to_hex(d)
}

/// Parses 64 hex digits.
pub(crate) fn parse_hex(s: &str) -> Result<[u8; 32], String> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!("sha256 {s:?} is not 64 hex digits"));
    }
    let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        *o = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Ok(out)
}

/// `#[serde(with)]` for an optional SHA-256 in hex.
pub(crate) mod opt_sha256 {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        d.as_ref().map(hex).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse_hex(&s).map_err(D::Error::custom))
            .transpose()
    }
}

/// `#[serde(with)]` for permission bits written in octal (`"0644"`), as `chmod` takes them.
pub(crate) mod octal {
    use super::*;

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        format!("{mode:04o}").serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || D::Error::custom(format!("mode {s:?} is not an octal mode such as \"0644\""));
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        u32::from_str_radix(&s, 8).map_err(|_| bad())
    }
}

/// `#[serde(with)]` for extended attributes: name to base64 of the raw value.
pub(crate) mod xattrs {
    use super::*;

    pub fn serialize<S: Serializer>(
        x: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(x.iter().map(|(k, v)| (k, B64.encode(v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                let raw = B64.decode(&v).map_err(|e| {
                    D::Error::custom(format!("xattr {k}: value {v:?} is not base64: {e}"))
                })?;
                Ok((k, raw))
            })
            .collect()
    }
}

/// Whether a number is zero, for `skip_serializing_if`.
pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Whether a flag is unset, for `skip_serializing_if`.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
