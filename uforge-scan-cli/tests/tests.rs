//! Integration tests of the uforge binaries against real Debian roots, real repositories and
//! real tools. One test binary, as in ripgrep: helpers in `util`, one module per area.

mod analysis;
mod help;
mod images;
mod layouts;
mod live;
mod publish;
mod quickstart;
mod scan;
mod templates;
mod util;
