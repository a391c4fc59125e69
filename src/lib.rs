//! feedwire: a folder of news articles in, live feeds out.
//!
//! The crate is a one-way pipeline; each stage is a module that owns one
//! concern and knows nothing of how the others store things:
//!
//! `watch` → `ingest` → `catalog` → `render` → `publish` → `syndicate`
//!
//! [`pipeline`] drives a batch of files through the stages; [`app`] wires the
//! stages into the daemon. See `docs/ARCHITECTURE.md` for the tour.

pub mod app;
pub mod article;
pub mod catalog;
pub mod check;
mod cluster;
pub mod config;
pub mod html;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod publish;
pub mod render;
pub mod serve;
pub mod site;
pub mod source;
pub mod status;
pub mod syndicate;
pub mod watch;

/// Make rustls use the `ring` provider for every HTTPS client in the
/// process. feedwire builds reqwest without a bundled provider so that no C
/// crypto library (OpenSSL, aws-lc) has to be installed or compiled; a client
/// built before this would panic. Idempotent: call it before building any
/// client (tests and examples included).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
