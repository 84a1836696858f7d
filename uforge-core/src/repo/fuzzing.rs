//! Entry points for the fuzz targets (`fuzz/` at the top of the repository): the index parsers
//! are internal to the library otherwise. Not an API.

/// Parses a decompressed `Packages` index, keeping every architecture.
pub fn packages(data: &[u8]) -> crate::Result<usize> {
    super::packages::parse(data, |_| true, "fuzz").map(|v| v.len())
}

/// Parses a `Release` file, clear-signed (`InRelease`) or not.
pub fn release(text: &str) -> Result<(), String> {
    let plain = super::release::strip_clearsign(text).unwrap_or_else(|_| text.to_string());
    super::release::Release::parse(&plain).map(|_| ())
}
