//! feedwire: a folder of news articles in, live feeds out.
//!
//! The crate is a one-way pipeline; each stage is a module that owns one
//! concern and knows nothing of how the others store things:
//!
//! `watch` → `ingest` → `catalog` → `render` → `publish` → `syndicate`
//!
//! See `docs/ARCHITECTURE.md` for the tour.

pub mod article;
pub mod ingest;
