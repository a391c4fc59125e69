//! The published set in memory: what the HTTP server answers from.
//!
//! Validators are computed once per publish and compressed bodies once per
//! document version (on first demand, off the publishing thread), never per
//! request: a poll costs a hash-map lookup and a copy. Compressing at
//! publish time would put ~100 ms of brotli on every event's path to disk.

use crate::render::{DocKind, Document};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::any::Any;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, OnceLock, RwLock};
use tokio::sync::broadcast;

/// One published document with everything HTTP needs.
pub struct Served {
    pub path: String,
    pub kind: DocKind,
    /// Reference-counted so a response shares the bytes instead of copying.
    pub body: Bytes,
    gzip: OnceLock<Bytes>,
    brotli: OnceLock<Bytes>,
    /// Strong validator from the content hash: survives restarts.
    pub etag: String,
    /// When this version was first published (kept across restarts by the
    /// catalog), so it only ever moves forward for a path.
    pub last_modified: DateTime<Utc>,
    /// Whatever the HTTP server prepares once per version (its response
    /// heads): they depend on configuration the store does not know, so the
    /// store only keeps them, as opaque as the server wants.
    prepared: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("etag", &self.etag)
            .field("last_modified", &self.last_modified)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Served {
    /// The body gzip-compressed (computed once per version).
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| gzip(&self.body).into())
    }

    /// The body brotli-compressed (computed once per version).
    pub fn brotli(&self) -> &Bytes {
        self.brotli.get_or_init(|| brotli(&self.body).into())
    }

    /// What `make` prepares from this version, made on first demand and kept
    /// with it (so it goes when the version is replaced). One caller type
    /// per process: `None` if another type was stored first.
    pub fn prepared<T: Any + Send + Sync>(&self, make: impl FnOnce(&Served) -> T) -> Option<&T> {
        self.prepared
            .get_or_init(|| Box::new(make(self)))
            .downcast_ref::<T>()
    }
}

/// Shared handle to the published set. Cloning is cheap.
#[derive(Clone)]
pub struct Store {
    inner: Arc<RwLock<HashMap<String, Arc<Served>>>>,
    changed: broadcast::Sender<String>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Store {
        let (changed, _) = broadcast::channel(1024);
        Store {
            inner: Arc::default(),
            changed,
        }
    }

    /// The document at a path under the feeds folder.
    pub fn get(&self, path: &str) -> Option<Arc<Served>> {
        self.inner.read().expect("store lock").get(path).cloned()
    }

    /// Paths whose content changed are announced here (for WebSub).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    pub(super) fn put(&self, doc: &Document, hash: blake3::Hash, first_published: DateTime<Utc>) {
        self.insert(
            &doc.path,
            doc.kind,
            &hash.to_hex()[..32],
            || Bytes::from(doc.bytes.clone()),
            first_published,
        );
    }

    /// Serve a document another instance published (read back from the
    /// catalog). `version_hash` is its recorded version's hash (the first 32
    /// hex digits of the BLAKE3 hash of the bytes), so the `ETag` is the one
    /// the publishing instance gives it: behind a load balancer, a reader
    /// revalidates against any instance.
    pub fn put_published(
        &self,
        path: &str,
        kind: DocKind,
        body: Vec<u8>,
        version_hash: &str,
        first_published: DateTime<Utc>,
    ) {
        self.insert(
            path,
            kind,
            version_hash,
            || Bytes::from(body),
            first_published,
        );
    }

    fn insert(
        &self,
        path: &str,
        kind: DocKind,
        version_hash: &str,
        body: impl FnOnce() -> Bytes,
        first_published: DateTime<Utc>,
    ) {
        let etag = format!("\"{version_hash}\"");
        if self.get(path).is_some_and(|s| s.etag == etag) {
            return;
        }
        let served = Served {
            path: path.to_string(),
            kind,
            gzip: OnceLock::new(),
            brotli: OnceLock::new(),
            body: body(),
            etag,
            last_modified: first_published,
            prepared: OnceLock::new(),
        };
        self.inner
            .write()
            .expect("store lock")
            .insert(path.to_string(), Arc::new(served));
        let _ = self.changed.send(path.to_string());
    }
}

/// The compression every served document uses (also the HTML pages').
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).expect("in-memory gzip");
    enc.finish().expect("in-memory gzip")
}

pub(crate) fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = ::brotli::CompressorWriter::new(&mut out, 4096, 6, 20);
        enc.write_all(bytes).expect("in-memory brotli");
    }
    out
}
