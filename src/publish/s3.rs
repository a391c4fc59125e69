//! Object storage (Amazon S3 or an S3-compatible store) as a publish
//! [`Target`]: each document is one object under `s3://bucket/prefix/`, with
//! its `Content-Type` and `Cache-Control`, and (`publish.s3.gzip`) a
//! gzip-encoded sibling `<key>.gz` for a CDN to hand to clients that accept
//! gzip.
//!
//! **Writes are conditional.** This target remembers, per object, the ETag it
//! last wrote or read and the content it holds. A new object is created with
//! `If-None-Match: *`, an existing one replaced with `If-Match: <that ETag>`.
//! An object this process has not seen yet is read first (feeds are small):
//! the same bytes mean nothing to write; other bytes are replaced against the
//! ETag just read. When the store refuses a write's precondition, someone
//! else (another instance) wrote the object since this process looked at it:
//! the write is not retried with a fresh ETag. The publish fails, naming the
//! object; what this process knew of it is forgotten, so the daemon's batch
//! retry reads it again (and re-renders from the catalog) before writing.
//!
//! So a writer only ever replaces the version it has seen: it can never
//! overwrite a newer object with what it rendered before that object was
//! written. It does not order two instances' renderings of the same moment:
//! which of two concurrent, up-to-date writers lands last is the store's
//! choice, and each object is conditional on its own (a document and its
//! `.gz` are two objects, each replaced atomically).
//!
//! The [`Target`] trait is synchronous (the pipeline runs on a plain thread),
//! and `feedwire build` has no async runtime at all; this target owns a
//! current-thread tokio runtime and blocks on it. It never runs inside
//! another runtime's thread: the daemon's pipeline thread is a plain one.

use super::{Target, gzip};
use crate::config::{Config, S3Location};
use crate::render::Document;
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig, UpdateVersion,
};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// An object larger than this is not read back to compare (no document of
/// ours is near it): it is simply replaced, conditionally.
const LOOK_UP_LIMIT: u64 = 32 << 20;

/// A failed request is retried this many times (within the request timeout
/// again), then the publish fails and the daemon's batch retry takes over.
const MAX_RETRIES: usize = 3;

/// What this process knows one object holds.
#[derive(Debug, Clone)]
enum Held {
    /// Not there when looked at: the next write creates it, `If-None-Match: *`.
    Absent,
    /// There with this ETag. `hash` is that of the document it carries (for
    /// a `.gz`, of the bytes inside), `None` when it is not a readable
    /// document of ours; the next write replaces it, `If-Match: <e_tag>`.
    Present {
        e_tag: String,
        hash: Option<blake3::Hash>,
    },
}

/// One document's object: the document itself, or its gzip-encoded copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Gzip,
}

impl Variant {
    /// The object's name under the prefix.
    fn name(self, path: &str) -> String {
        match self {
            Variant::Plain => path.to_string(),
            Variant::Gzip => format!("{path}.gz"),
        }
    }
}

pub struct S3 {
    store: Arc<AmazonS3>,
    location: S3Location,
    cache_control: String,
    variants: Vec<Variant>,
    concurrency: usize,
    /// `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// By object name (`rss.xml`, `thoi-su/atom.xml.gz`); an object missing
    /// here is read before it is written.
    held: Mutex<HashMap<String, Held>>,
}

impl S3 {
    /// The target `publish.target` names, with `[publish.s3]`'s settings and
    /// `server.cache_control`. No request is made until the first publish.
    pub fn new(cfg: &Config) -> Result<S3> {
        let location = cfg
            .publish
            .location
            .clone()
            .context("publish.target is not set")?;
        let settings = cfg.publish.s3.clone().unwrap_or_default();
        crate::install_tls_provider();
        let timeout = Duration::from_secs(settings.timeout_secs);
        let options = ClientOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(timeout.min(Duration::from_secs(5)));
        let retry = RetryConfig {
            max_retries: MAX_RETRIES,
            retry_timeout: timeout,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_client_options(options)
            .with_allow_http(settings.allow_http)
            .with_retry(retry)
            .with_bucket_name(&location.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if !settings.endpoint.is_empty() {
            builder = builder.with_endpoint(&settings.endpoint);
        }
        let store = builder
            .build()
            .with_context(|| format!("cannot set up the S3 client for {location}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the S3 target's runtime")?;
        let mut variants = vec![Variant::Plain];
        if settings.gzip {
            variants.push(Variant::Gzip);
        }
        Ok(S3 {
            store: Arc::new(store),
            location,
            cache_control: cfg.server.cache_control.clone(),
            variants,
            concurrency: settings.concurrency,
            runtime: Some(runtime),
            held: Mutex::default(),
        })
    }

    fn key(&self, name: &str) -> Key {
        let prefix = self.location.prefix.split('/').filter(|p| !p.is_empty());
        Key::from_iter(prefix.chain(name.split('/')))
    }

    /// `s3://bucket/prefix/name`, for messages.
    fn url(&self, name: &str) -> String {
        match self.location.prefix.as_str() {
            "" => format!("s3://{}/{name}", self.location.bucket),
            prefix => format!("s3://{}/{prefix}/{name}", self.location.bucket),
        }
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the target")
            .block_on(future)
    }

    /// Read the objects this process has not seen yet (all at once, within
    /// `publish.s3.concurrency`) and remember what they hold.
    fn look_up_unknown(&self, names: Vec<(String, Variant)>) -> Result<()> {
        let unknown: Vec<(String, Variant)> = {
            let held = self.held.lock().expect("held lock");
            names
                .into_iter()
                .filter(|(name, _)| !held.contains_key(name))
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let results = self.block_on(async {
            let permits = Arc::new(Semaphore::new(self.concurrency));
            let mut tasks = JoinSet::new();
            for (name, variant) in unknown {
                let store = self.store.clone();
                let key = self.key(&name);
                let permits = permits.clone();
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    (name, read_object(&store, &key, variant).await)
                });
            }
            tasks.join_all().await
        });
        let mut held = self.held.lock().expect("held lock");
        let mut failure = None;
        for (name, result) in results {
            match result {
                Ok(h) => {
                    held.insert(name, h);
                }
                Err(e) => {
                    failure.get_or_insert(
                        anyhow!(e).context(format!("cannot read {} to compare", self.url(&name))),
                    );
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// What the object at `key` holds now.
async fn read_object(store: &AmazonS3, key: &Key, variant: Variant) -> object_store::Result<Held> {
    let got = match store.get(key).await {
        Err(object_store::Error::NotFound { .. }) => return Ok(Held::Absent),
        r => r?,
    };
    let Some(e_tag) = got.meta.e_tag.clone() else {
        return Err(object_store::Error::Generic {
            store: "S3",
            source: format!(
                "the store sent no ETag for {key}: conditional writes need one (is it S3-compatible?)"
            )
            .into(),
        });
    };
    if got.meta.size > LOOK_UP_LIMIT {
        return Ok(Held::Present { e_tag, hash: None });
    }
    let body = got.bytes().await?;
    let hash = match variant {
        Variant::Plain => Some(blake3::hash(&body)),
        Variant::Gzip => gunzip(&body).map(|b| blake3::hash(&b)),
    };
    Ok(Held::Present { e_tag, hash })
}

/// The bytes inside a gzip object of ours; `None` for anything else.
fn gunzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(LOOK_UP_LIMIT + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= LOOK_UP_LIMIT).then_some(out)
}

/// One object to write and the condition it is written under.
struct Upload {
    name: String,
    hash: blake3::Hash,
    body: Bytes,
    attributes: Attributes,
    mode: PutMode,
    /// `PutMode::Create`: it was absent (for the message when it is not).
    creating: bool,
}

impl Target for S3 {
    fn describe(&self) -> String {
        format!("object storage {}", self.location)
    }

    fn look_up(&self, paths: &[&str]) -> Result<()> {
        let names = paths
            .iter()
            .flat_map(|path| self.variants.iter().map(|v| (v.name(path), *v)))
            .collect();
        self.look_up_unknown(names)
    }

    fn holds(&self, path: &str, hash: &blake3::Hash) -> bool {
        let held = self.held.lock().expect("held lock");
        self.variants.iter().all(|v| {
            matches!(held.get(&v.name(path)), Some(Held::Present { hash: Some(h), .. }) if h == hash)
        })
    }

    fn write(&mut self, docs: &[(&Document, blake3::Hash)]) -> Result<()> {
        let paths: Vec<&str> = docs.iter().map(|(doc, _)| doc.path.as_str()).collect();
        self.look_up(&paths)?;
        let mut uploads = Vec::new();
        {
            let held = self.held.lock().expect("held lock");
            for (doc, hash) in docs {
                for variant in &self.variants {
                    let name = variant.name(&doc.path);
                    let (mode, creating) = match held.get(&name) {
                        Some(Held::Present { hash: Some(h), .. }) if h == hash => continue,
                        Some(Held::Present { e_tag, .. }) => (
                            PutMode::Update(UpdateVersion {
                                e_tag: Some(e_tag.clone()),
                                version: None,
                            }),
                            false,
                        ),
                        Some(Held::Absent) | None => (PutMode::Create, true),
                    };
                    let mut attributes = Attributes::new();
                    attributes.insert(Attribute::ContentType, doc.kind.content_type().into());
                    attributes.insert(Attribute::CacheControl, self.cache_control.clone().into());
                    let body = match variant {
                        Variant::Plain => Bytes::from(doc.bytes.clone()),
                        Variant::Gzip => {
                            attributes.insert(Attribute::ContentEncoding, "gzip".into());
                            Bytes::from(gzip(&doc.bytes))
                        }
                    };
                    uploads.push(Upload {
                        name,
                        hash: *hash,
                        body,
                        attributes,
                        mode,
                        creating,
                    });
                }
            }
        }
        if uploads.is_empty() {
            return Ok(());
        }
        let results = self.block_on(async {
            let permits = Arc::new(Semaphore::new(self.concurrency));
            let mut tasks = JoinSet::new();
            for upload in uploads {
                let store = self.store.clone();
                let key = self.key(&upload.name);
                let permits = permits.clone();
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let options = PutOptions {
                        mode: upload.mode.clone(),
                        attributes: upload.attributes.clone(),
                        ..PutOptions::default()
                    };
                    let result = store
                        .put_opts(&key, PutPayload::from_bytes(upload.body.clone()), options)
                        .await;
                    (upload, result)
                });
            }
            tasks.join_all().await
        });
        // Every upload has finished (none is left running behind an error):
        // remember what succeeded, forget what failed, report the failures.
        let mut held = self.held.lock().expect("held lock");
        let mut lost = Vec::new();
        let mut failed = None;
        for (upload, result) in results {
            match result {
                Ok(put) => match put.e_tag {
                    Some(e_tag) => {
                        held.insert(
                            upload.name,
                            Held::Present {
                                e_tag,
                                hash: Some(upload.hash),
                            },
                        );
                    }
                    // Without an ETag the next write must read it first.
                    None => {
                        held.remove(&upload.name);
                    }
                },
                Err(e) => {
                    // Whatever the store holds now, it is read again first.
                    held.remove(&upload.name);
                    match e {
                        object_store::Error::Precondition { .. }
                        | object_store::Error::AlreadyExists { .. } => {
                            lost.push((self.url(&upload.name), upload.creating))
                        }
                        e => {
                            failed.get_or_insert(
                                anyhow!(e)
                                    .context(format!("cannot write {}", self.url(&upload.name))),
                            );
                        }
                    }
                }
            }
        }
        if let Some((url, creating)) = lost.first() {
            let what = if *creating {
                "was created by someone else after this instance found it absent"
            } else {
                "was changed by someone else since this instance last read or wrote it"
            };
            let more = match lost.len() {
                1 => String::new(),
                n => format!(" ({} more objects likewise)", n - 1),
            };
            bail!(
                "{url} {what}{more}: another feedwire instance may be publishing to {}. Nothing was overwritten; the next attempt (the daemon retries by itself) reads the objects again first. If two instances publish different content, give each its own prefix",
                self.location
            );
        }
        failed.map_or(Ok(()), Err)
    }

    fn remove(&mut self, paths: &[&str]) -> Result<()> {
        // Objects known to be absent need no request.
        let names: Vec<String> = {
            let held = self.held.lock().expect("held lock");
            paths
                .iter()
                .flat_map(|path| self.variants.iter().map(|v| v.name(path)))
                .filter(|name| !matches!(held.get(name), Some(Held::Absent)))
                .collect()
        };
        if names.is_empty() {
            return Ok(());
        }
        self.delete(names)
    }
}

impl S3 {
    /// Delete these objects (every variant), all at once within
    /// `publish.s3.concurrency`. Deleting is not conditional (S3 has no
    /// precondition on it): an object already gone is fine, and one written
    /// meanwhile by another instance is gone too, as the catalog says.
    fn delete(&self, names: Vec<String>) -> Result<()> {
        let results = self.block_on(async {
            let permits = Arc::new(Semaphore::new(self.concurrency));
            let mut tasks = JoinSet::new();
            for name in names {
                let store = self.store.clone();
                let key = self.key(&name);
                let permits = permits.clone();
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let result = match store.delete(&key).await {
                        Err(object_store::Error::NotFound { .. }) => Ok(()),
                        r => r,
                    };
                    (name, result)
                });
            }
            tasks.join_all().await
        });
        let mut held = self.held.lock().expect("held lock");
        let mut failed = None;
        for (name, result) in results {
            match result {
                Ok(()) => {
                    held.insert(name, Held::Absent);
                }
                Err(e) => {
                    held.remove(&name);
                    failed.get_or_insert(
                        anyhow!(e).context(format!("cannot delete {}", self.url(&name))),
                    );
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

impl Drop for S3 {
    /// Without blocking: the target may be dropped inside the daemon's own
    /// runtime (a failed start-up), where a blocking shutdown would panic.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sit_under_the_prefix_and_gzip_copies_beside_their_document() {
        let cfg = Config::from_toml(
            "[publish]\ntarget = \"s3://bucket-a/site/feeds\"\n[publish.s3]\naccess_key_id = \"k\"\nsecret_access_key = \"s\"",
            std::path::Path::new("/srv/feedwire/config.toml"),
        )
        .unwrap();
        let s3 = S3::new(&cfg).unwrap();
        assert_eq!(
            s3.key(&Variant::Gzip.name("thoi-su/rss.xml")).as_ref(),
            "site/feeds/thoi-su/rss.xml.gz"
        );
        assert_eq!(s3.url("rss.xml"), "s3://bucket-a/site/feeds/rss.xml");
        assert_eq!(s3.describe(), "object storage s3://bucket-a/site/feeds");
        assert!(!s3.holds("rss.xml", &blake3::hash(b"x")));
    }

    /// `Pipeline::open` runs inside the daemon's runtime: a target dropped
    /// there (start-up failing after it was built) must not panic, as
    /// dropping a runtime inside another normally does.
    #[tokio::test]
    async fn dropping_the_target_inside_a_runtime_is_safe() {
        let cfg = Config::from_toml(
            "[publish]\ntarget = \"s3://bucket-a\"\n[publish.s3]\naccess_key_id = \"k\"\nsecret_access_key = \"s\"",
            std::path::Path::new("/srv/feedwire/config.toml"),
        )
        .unwrap();
        drop(S3::new(&cfg).unwrap());
    }

    #[test]
    fn gunzip_reads_our_gzip_and_refuses_anything_else() {
        assert_eq!(gunzip(&gzip(b"feed")).as_deref(), Some(&b"feed"[..]));
        assert_eq!(gunzip(b"not gzip"), None);
    }
}
