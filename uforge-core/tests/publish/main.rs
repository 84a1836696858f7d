//! Publishing end to end against real targets started by the tests: a directory, Debian's
//! docker-registry (TLS with its own CA, htpasswd or token auth), a Garage S3 store, and a
//! private libvirtd running TCG guests. One test binary; a module per target.

mod directory;
mod libvirt;
mod registry;
mod s3;
mod util;
