//! Publishing to object storage (`[publish] target = "s3://…"`) against a real
//! S3 server: moto (PyPI `moto[server]`) through `.ci/moto_s3.py`, which
//! serialises writes so moto's conditional writes are atomic as S3's are
//! (stock `moto_server` checks and stores in two unlocked steps, and the
//! concurrent-writers test then fails now and then under load), started by
//! `.ci/run` on loopback and named by
//! `FEEDWIRE_TEST_S3_ENDPOINT` (`http://127.0.0.1:PORT`). Without the variable
//! every test says it was skipped and returns, so a plain `cargo test` passes
//! on a machine without moto. Each test uses a bucket of its own.
//!
//! Each test prints a marker line straight to the process's stderr (not
//! through the test harness's capture), so `.ci/run` can count that the S3
//! tests really ran: `s3 test ran: NAME` or `s3 test skipped: …`.

use crate::common::*;
use feedwire::config::Config;
use feedwire::publish::{S3, Target};
use feedwire::render::{DocKind, Document};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const PREFIX: &str = "site/feeds";

/// The server's address, or `None` (and a line saying the test was skipped).
fn endpoint(test: &str) -> Option<String> {
    match std::env::var("FEEDWIRE_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => {
            say(&format!("s3 test ran: {test} against {e}"));
            Some(e)
        }
        _ => {
            say(&format!(
                "s3 test skipped: {test}: FEEDWIRE_TEST_S3_ENDPOINT not set (see .ci/run)"
            ));
            None
        }
    }
}

/// A line on the process's stderr, past the harness's capture, in one write.
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// A new, empty bucket for one test. moto creates buckets on an unsigned
/// `PUT /bucket` (path style).
fn new_bucket(endpoint: &str, test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "fw-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        test.replace('_', "-")
    );
    let name: String = name.chars().take(63).collect();
    let name = name.trim_end_matches('-').to_string();
    let response = http_client()
        .put(format!("{endpoint}/{name}"))
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "cannot create bucket {name}: {}",
        response.status()
    );
    name
}

/// `[publish]` and `[publish.s3]` for a bucket on the test server.
fn publish_toml(endpoint: &str, bucket: &str, extra_s3: &str) -> String {
    format!(
        "[publish]\ntarget = \"s3://{bucket}/{PREFIX}\"\n\n[publish.s3]\nendpoint = \"{endpoint}\"\nallow_http = true\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\n{extra_s3}\n"
    )
}

/// The test's own client for reading back what feedwire wrote.
struct Bucket {
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
}

/// One object as read back.
struct Object {
    body: Vec<u8>,
    e_tag: String,
    content_type: Option<String>,
    cache_control: Option<String>,
    content_encoding: Option<String>,
}

impl Bucket {
    fn new(endpoint: &str, bucket: &str) -> Bucket {
        feedwire::install_tls_provider();
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Bucket { store, runtime }
    }

    fn get(&self, key: &str) -> Option<Object> {
        self.runtime.block_on(async {
            let got = match self.store.get(&Key::from(key)).await {
                Err(object_store::Error::NotFound { .. }) => return None,
                r => r.unwrap(),
            };
            let attr = |a: Attribute| got.attributes.get(&a).map(|v| v.to_string());
            let (content_type, cache_control, content_encoding) = (
                attr(Attribute::ContentType),
                attr(Attribute::CacheControl),
                attr(Attribute::ContentEncoding),
            );
            let e_tag = got.meta.e_tag.clone().unwrap();
            Some(Object {
                body: got.bytes().await.unwrap().to_vec(),
                e_tag,
                content_type,
                cache_control,
                content_encoding,
            })
        })
    }

    fn put(&self, key: &str, body: &[u8]) {
        self.runtime.block_on(async {
            self.store
                .put(&Key::from(key), body.to_vec().into())
                .await
                .unwrap();
        });
    }

    /// Every key in the bucket with its ETag and modification time.
    fn list(&self) -> BTreeMap<String, (String, chrono::DateTime<chrono::Utc>)> {
        use futures_util::TryStreamExt;
        self.runtime.block_on(async {
            let metas: Vec<object_store::ObjectMeta> =
                self.store.list(None).try_collect().await.unwrap();
            metas
                .into_iter()
                .map(|m| (m.location.to_string(), (m.e_tag.unwrap(), m.last_modified)))
                .collect()
        })
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every file under the feeds folder, as paths relative to it.
fn published_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `feedwire build` with `env` set for the child only; returns stdout.
fn build_with_env(site: &Site, env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["build", "--config", site.config().to_str().unwrap()])
        .current_dir(site.path())
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn article(site: &Site, name: &str, category: &str, title: &str) {
    site.write(
        name,
        wire_text(category, title, &["Nội dung bài viết."], "Thu Hiền"),
    );
}

const T1: &str = "Hà Nội thí điểm tuyến buýt điện kết nối ga đường sắt đô thị";
const T2: &str = "Quốc hội thảo luận dự án luật về dữ liệu";
const T3: &str = "Giải bóng đá thanh niên khởi tranh tại Đà Nẵng";

#[test]
fn build_publishes_every_document_to_s3_with_its_type_cache_control_and_gzip_copy() {
    let test = "build_publishes_every_document";
    let Some(endpoint) = endpoint(test) else {
        return;
    };
    let bucket = new_bucket(&endpoint, test);
    // The secret comes from the environment (`env:NAME`), as in production;
    // the folder stays on by default alongside.
    let toml = publish_toml(&endpoint, &bucket, "").replace(
        "secret_access_key = \"testing\"",
        "secret_access_key = \"env:FEEDWIRE_TEST_S3_SECRET\"",
    );
    let site = Site::new(&format!(
        "{toml}\n[server]\nenabled = false\ncache_control = \"public, max-age=17\"\n"
    ));
    article(&site, "a.txt", "Thời sự", T1);
    article(&site, "b.txt", "Thể thao", T3);
    build_with_env(&site, &[("FEEDWIRE_TEST_S3_SECRET", "testing")]);

    let s3 = Bucket::new(&endpoint, &bucket);
    let files = published_files(&site.feeds());
    // The site-root documents (sitemaps, robots.txt) go with the feeds.
    for name in [
        "rss.xml",
        "index.opml",
        "sitemap.xml",
        "news-sitemap.xml",
        "robots.txt",
    ] {
        assert!(files.contains(&name.to_string()), "{name}: {files:?}");
    }
    let mut expected_keys = Vec::new();
    for rel in &files {
        let on_disk = std::fs::read(site.feeds().join(rel)).unwrap();
        let kind = match rel.as_str() {
            "robots.txt" => DocKind::Text,
            "sitemap.xml" | "news-sitemap.xml" => DocKind::Sitemap,
            // An article's ninjs document (`ninjs/<id>.json`), or a feed.
            _ => DocKind::from_path(rel)
                .or_else(|| rel.starts_with("ninjs/").then_some(DocKind::Ninjs))
                .unwrap(),
        };
        let key = format!("{PREFIX}/{rel}");
        let plain = s3
            .get(&key)
            .unwrap_or_else(|| panic!("{key} not published"));
        assert_eq!(plain.body, on_disk, "{key}: same bytes as the folder");
        assert_eq!(
            plain.content_type.as_deref(),
            Some(kind.content_type()),
            "{key}"
        );
        assert_eq!(
            plain.cache_control.as_deref(),
            Some("public, max-age=17"),
            "{key}"
        );
        assert_eq!(plain.content_encoding, None, "{key}");
        let gz = s3
            .get(&format!("{key}.gz"))
            .unwrap_or_else(|| panic!("{key}.gz not published"));
        assert_eq!(gz.content_encoding.as_deref(), Some("gzip"), "{key}.gz");
        assert_eq!(
            gz.content_type.as_deref(),
            Some(kind.content_type()),
            "{key}.gz"
        );
        assert_eq!(
            gz.cache_control.as_deref(),
            Some("public, max-age=17"),
            "{key}.gz"
        );
        assert_eq!(
            gunzip(&gz.body),
            on_disk,
            "{key}.gz holds the same document"
        );
        if DocKind::FEEDS.contains(&kind) {
            let feed = feed_rs::parser::parse(plain.body.as_slice())
                .unwrap_or_else(|e| panic!("{key} does not parse: {e}"));
            assert!(!feed.entries.is_empty(), "{key} has entries");
        }
        expected_keys.push(key.clone());
        expected_keys.push(format!("{key}.gz"));
    }
    expected_keys.sort();
    let listed: Vec<String> = s3.list().into_keys().collect();
    assert_eq!(listed, expected_keys, "nothing else (no temporary objects)");
    let main = feed_rs::parser::parse(
        s3.get(&format!("{PREFIX}/atom.xml"))
            .unwrap()
            .body
            .as_slice(),
    )
    .unwrap();
    let mut got = titles(&main);
    got.sort();
    let mut want = vec![T1.to_string(), T3.to_string()];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn the_daemon_publishes_a_new_article_to_s3_and_retries_after_a_lost_race() {
    let test = "the_daemon_publishes";
    let Some(endpoint) = endpoint(test) else {
        return;
    };
    let bucket = new_bucket(&endpoint, test);
    // The object store alone: no feeds folder.
    let site = Site::new(&format!(
        "[watch]\ndebounce_ms = 100\n{}",
        publish_toml(&endpoint, &bucket, "").replace("[publish]\n", "[publish]\nfolder = false\n")
    ));
    article(&site, "a.txt", "Thời sự", T1);
    let daemon = site.start();
    let s3 = Bucket::new(&endpoint, &bucket);
    let feed_titles = |key: &str| {
        s3.get(&format!("{PREFIX}/{key}"))
            .and_then(|o| feed_rs::parser::parse(o.body.as_slice()).ok())
            .map(|f| titles(&f))
            .unwrap_or_default()
    };
    assert_eq!(feed_titles("rss.xml"), vec![T1.to_string()]);
    // Someone else (another instance) replaces the main feed behind the
    // daemon's back: its next write of it must fail rather than overwrite
    // what it has not seen, and its retry must read it again and then
    // publish over it.
    s3.put(&format!("{PREFIX}/rss.xml"), b"another instance's rss.xml");
    article(&site, "b.txt", "Thời sự", T2);
    wait_for("the new article in the S3 main feed", WAIT, || {
        feed_titles("rss.xml")
            .contains(&T2.to_string())
            .then_some(())
    });
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "s3://{bucket}/{PREFIX}/rss.xml was changed by someone else"
        )) && log.contains("another feedwire instance may be publishing"),
        "the refused write is logged, naming the object: {log}"
    );
    // The retry logs "recovered" once its whole publish is done, after the
    // main feed (and more) were written: wait for it, do not race it.
    wait_for("the retry's recovery", WAIT, || {
        daemon.log().contains("recovered").then_some(())
    });
    wait_for("the new article in the S3 category feed", WAIT, || {
        feed_titles("thoi-su/atom.xml")
            .contains(&T2.to_string())
            .then_some(())
    });
    assert!(
        !site.feeds().exists(),
        "publish.folder = false writes no feeds folder"
    );
    let status = daemon.terminate();
    assert!(status.success(), "daemon exit: {status:?}");
}

#[test]
fn unchanged_documents_are_not_rewritten() {
    let test = "unchanged_documents";
    let Some(endpoint) = endpoint(test) else {
        return;
    };
    let bucket = new_bucket(&endpoint, test);
    let site = Site::new(
        &publish_toml(&endpoint, &bucket, "").replace("[publish]\n", "[publish]\nfolder = false\n"),
    );
    article(&site, "a.txt", "Thời sự", T1);
    article(&site, "b.txt", "Thể thao", T3);
    let first = build_with_env(&site, &[]);
    assert!(!first.contains("; 0 feed documents written"), "{first}");
    let s3 = Bucket::new(&endpoint, &bucket);
    let before = s3.list();
    assert!(
        before.contains_key(&format!("{PREFIX}/the-thao/rss.xml.gz")),
        "{before:?}"
    );

    // S3 times are whole seconds: wait past one, so a rewrite would show.
    std::thread::sleep(Duration::from_millis(1100));
    // A new process knows nothing of what it wrote before: it reads each
    // object, finds the same bytes, and writes nothing.
    let second = build_with_env(&site, &[]);
    assert!(second.contains("; 0 feed documents written"), "{second}");
    assert_eq!(s3.list(), before, "no object was rewritten");

    // A change in one category rewrites its feeds and the site-wide ones,
    // and leaves the other category's alone.
    article(&site, "c.txt", "Thời sự", T2);
    std::thread::sleep(Duration::from_millis(1100));
    build_with_env(&site, &[]);
    let after = s3.list();
    for key in [
        "rss.xml",
        "atom.xml",
        "thoi-su/rss.xml",
        "thoi-su/feed.json.gz",
    ] {
        let key = format!("{PREFIX}/{key}");
        assert_ne!(after[&key], before[&key], "{key} changed and was rewritten");
    }
    for key in [
        "the-thao/rss.xml",
        "the-thao/atom.xml.gz",
        "the-thao/feed.json",
        "index.opml",
    ] {
        let key = format!("{PREFIX}/{key}");
        assert_eq!(
            after[&key], before[&key],
            "{key} did not change and was left alone"
        );
    }
}

/// Each article's ninjs document goes to object storage like the feeds
/// (with its gzip copy); put back under embargo, both objects are deleted;
/// killed, the canceled document replaces them (issue 13, point 1).
#[test]
fn ninjs_documents_follow_their_articles_in_s3() {
    let test = "ninjs_documents";
    let Some(endpoint) = endpoint(test) else {
        return;
    };
    let bucket = new_bucket(&endpoint, test);
    let site = Site::new(&format!(
        "[watch]\ndebounce_ms = 100\n{}",
        publish_toml(&endpoint, &bucket, "").replace("[publish]\n", "[publish]\nfolder = false\n")
    ));
    article(&site, "a.txt", "Thời sự", T1);
    article(&site, "b.txt", "Thời sự", T2);
    let daemon = site.start();
    let s3 = Bucket::new(&endpoint, &bucket);
    let key = |id: &str| format!("{PREFIX}/ninjs/{id}.json");
    let status = |id: &str| {
        s3.get(&key(id)).map(|o| {
            let v = crate::common::ninjs::parse_item(&o.body);
            assert_eq!(
                o.content_type.as_deref(),
                Some(DocKind::Ninjs.content_type())
            );
            v["pubStatus"].as_str().unwrap().to_string()
        })
    };
    assert_eq!(status("a").as_deref(), Some("usable"));
    let gz = s3.get(&format!("{}.gz", key("a"))).unwrap();
    assert_eq!(gunzip(&gz.body), s3.get(&key("a")).unwrap().body);

    let cfg = site.config();
    let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let out = site.cli(&["embargo", "a", &later, "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("a's objects deleted", WAIT, || {
        (s3.get(&key("a")).is_none() && s3.get(&format!("{}.gz", key("a"))).is_none()).then_some(())
    });
    let out = site.cli(&[
        "kill",
        "b",
        "--reason",
        "Sai",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("b canceled", WAIT, || {
        (status("b").as_deref() == Some("canceled")).then_some(())
    });
    assert!(daemon.terminate().success());
}

/// A target of its own (as another instance would have) on the test bucket.
fn target(endpoint: &str, bucket: &str, extra_s3: &str) -> S3 {
    let toml = format!(
        "[server]\nenabled = false\n{}",
        publish_toml(endpoint, bucket, extra_s3)
            .replace("[publish]\n", "[publish]\nfolder = false\n")
    );
    let cfg = Config::from_toml(&toml, Path::new("/nonexistent/config.toml")).unwrap();
    S3::new(&cfg).unwrap()
}

fn document(path: &str, bytes: &[u8]) -> (Document, blake3::Hash) {
    let doc = Document {
        path: path.to_string(),
        kind: DocKind::from_path(path).unwrap(),
        bytes: bytes.to_vec(),
        entries: 0,
        updated: None,
    };
    let hash = blake3::hash(bytes);
    (doc, hash)
}

/// Publish one document as the pipeline does: look up, skip if held, write.
fn publish(target: &mut S3, doc: &(Document, blake3::Hash)) -> anyhow::Result<()> {
    target.look_up(&[doc.0.path.as_str()])?;
    if target.holds(&doc.0.path, &doc.1) {
        return Ok(());
    }
    target.write(&[(&doc.0, doc.1)])
}

#[test]
fn a_stale_publisher_cannot_overwrite_a_newer_feed() {
    let test = "a_stale_publisher";
    let Some(endpoint) = endpoint(test) else {
        return;
    };
    let bucket = new_bucket(&endpoint, test);
    let s3 = Bucket::new(&endpoint, &bucket);
    let key = format!("{PREFIX}/thoi-su/rss.xml");
    let mut stale = target(&endpoint, &bucket, "");
    let mut newer = target(&endpoint, &bucket, "");

    publish(&mut stale, &document("thoi-su/rss.xml", b"version 1")).unwrap();
    let v1 = s3.get(&key).unwrap();
    assert_eq!(v1.body, b"version 1");

    // Another instance reads version 1 and replaces it with version 2.
    publish(&mut newer, &document("thoi-su/rss.xml", b"version 2")).unwrap();
    let v2 = s3.get(&key).unwrap();
    assert_eq!(v2.body, b"version 2");
    assert_ne!(v2.e_tag, v1.e_tag);

    // The first instance still holds version 1's ETag: its write (of an
    // older rendering) must fail, for the document and its gzip copy alike.
    let err = publish(&mut stale, &document("thoi-su/rss.xml", b"version 0"))
        .expect_err("a stale writer must not overwrite a newer object");
    let message = format!("{err:#}");
    assert!(
        message.contains(&format!("s3://{bucket}/{key}"))
            && message.contains("another feedwire instance"),
        "the error names the object and the likely cause: {message}"
    );
    assert_eq!(
        s3.get(&key).unwrap().body,
        b"version 2",
        "the newer bytes stay"
    );
    assert_eq!(
        gunzip(&s3.get(&format!("{key}.gz")).unwrap().body),
        b"version 2"
    );

    // Its next attempt reads the object again first, and so replaces only
    // what it has now seen.
    publish(&mut stale, &document("thoi-su/rss.xml", b"version 3")).unwrap();
    assert_eq!(s3.get(&key).unwrap().body, b"version 3");

    // Creating is conditional too: an object that appeared after a writer
    // found the path empty is not overwritten.
    let mut early = target(&endpoint, &bucket, "gzip = false");
    early.look_up(&["atom.xml"]).unwrap();
    s3.put(&format!("{PREFIX}/atom.xml"), b"someone else's");
    let err = publish(&mut early, &document("atom.xml", b"ours")).unwrap_err();
    assert!(
        format!("{err:#}").contains("another feedwire instance"),
        "{err:#}"
    );
    assert_eq!(
        s3.get(&format!("{PREFIX}/atom.xml")).unwrap().body,
        b"someone else's"
    );
}

#[test]
fn concurrent_conditional_writes_never_lose_an_update() {
    // A counter in one object, raised by several writers at once, each
    // through a fresh target (as a fresh instance would): read the value,
    // write value + 1 only over what was read. If any write replaced a
    // version its writer had not seen, an increment would be lost and the
    // final value would fall short of the number of successful writes.
    let test = "concurrent_conditional_writes";
    let Some(endpoint) = endpoint(test) else {
        return;
    };
    const WRITERS: usize = 6;
    const EACH: usize = 5;
    let bucket = new_bucket(&endpoint, test);
    let s3 = Bucket::new(&endpoint, &bucket);
    let path = "counter/rss.xml";
    let key = format!("{PREFIX}/{path}");
    s3.put(&key, b"0");
    let refused = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            scope.spawn(|| {
                let reader = Bucket::new(&endpoint, &bucket);
                let mut done = 0;
                let mut attempts = 0;
                while done < EACH {
                    attempts += 1;
                    assert!(attempts < 2000, "no progress");
                    let seen = reader.get(&key).unwrap().body;
                    let n: usize = std::str::from_utf8(&seen).unwrap().parse().unwrap();
                    let mut writer = target(&endpoint, &bucket, "gzip = false\nconcurrency = 1");
                    writer.look_up(&[path]).unwrap();
                    if !writer.holds(path, &blake3::hash(&seen)) {
                        continue; // it moved between our read and the target's
                    }
                    let next = document(path, (n + 1).to_string().as_bytes());
                    match writer.write(&[(&next.0, next.1)]) {
                        Ok(()) => done += 1,
                        Err(e) => {
                            let message = format!("{e:#}");
                            assert!(
                                message.contains("another feedwire instance"),
                                "only a lost race may fail a write: {message}"
                            );
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let last = s3.get(&key).unwrap().body;
    say(&format!(
        "s3 concurrent writes: {} succeeded, {} refused by their precondition",
        WRITERS * EACH,
        refused.load(Ordering::Relaxed)
    ));
    assert_eq!(
        String::from_utf8(last).unwrap(),
        (WRITERS * EACH).to_string(),
        "every successful write replaced exactly the version its writer had read"
    );
}
