//! The overlay: a tar of exactly the wanted paths, written as a stream and verified on reading.
