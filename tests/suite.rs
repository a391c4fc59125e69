//! The integration suite, one test binary: each module is one concern
//! (its file beside this one says what it checks), sharing `common`'s
//! harness (a temporary site, the real `feedwire` binary, feed-rs).
//!
//! One binary rather than one per file: each binary statically links the
//! whole crate and its dependencies, so twenty of them took twenty links
//! and 1.1 GB of disk for the same tests (a CI machine short of disk failed
//! to link one). Run one concern with `cargo test --test suite daemon::`.

mod common;

mod abuse_http;
mod abuse_hub;
mod archives;
mod build;
mod catalog_outage;
mod cluster;
mod daemon;
mod data_safety;
mod gen_corpus_smoke;
mod indexnow;
mod ingest_corpus;
mod ingest_hostile;
mod lifecycle;
mod migrate_catalog;
mod ninjs;
mod partner_pull;
mod publish_s3;
mod serve_http;
mod sitemaps;
mod syndicate;
