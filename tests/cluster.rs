//! Several `feedwire run` instances on one PostgreSQL catalog, publishing
//! to a real S3 server: real processes, a real PostgreSQL
//! (`FEEDWIRE_TEST_DATABASE_URL`) and moto (`FEEDWIRE_TEST_S3_ENDPOINT`),
//! partners and pollers on loopback. Without both variables every test
//! says it was skipped and returns; `.ci/run` sets both and checks, from the
//! marker lines each test prints (`cluster test ran: NAME`), that every one
//! of them ran.

use crate::common::recorder::Recorder;
use crate::common::*;
use object_store::ObjectStoreExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(120);
const PREFIX: &str = "site";
const CATEGORIES: [&str; 3] = ["Thời sự", "Kinh tế", "Thể thao"];
const SLUGS: [&str; 3] = ["thoi-su", "kinh-te", "the-thao"];
/// Entries per archive page (RFC 5005).
const ARCHIVE_PAGE: usize = 20;
/// A live window every test but the failover fits in.
const WIDE: usize = 500;
/// The failover's live window: most of its 300 articles end up on archive
/// pages (PostgreSQL holds their bytes; no instance has a feeds folder).
const WINDOW: usize = 60;

/// The S3 server's address, or `None` (and a line saying the test was
/// skipped) when either server is missing.
fn servers(test: &str) -> Option<String> {
    let db = std::env::var(DATABASE_URL_VAR).is_ok_and(|v| !v.is_empty());
    let s3 = std::env::var("FEEDWIRE_TEST_S3_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty());
    match (db, s3) {
        (true, Some(endpoint)) => {
            say(&format!("cluster test ran: {test}"));
            Some(endpoint)
        }
        _ => {
            say(&format!(
                "cluster test skipped: {test}: FEEDWIRE_TEST_DATABASE_URL and FEEDWIRE_TEST_S3_ENDPOINT must both be set (see .ci/run)"
            ));
            None
        }
    }
}

/// A line on the process's stderr, past the harness's capture.
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

fn new_bucket(endpoint: &str, test: &str) -> String {
    let name: String = format!(
        "fw-cluster-{}-{}",
        std::process::id(),
        test.replace('_', "-")
    )
    .chars()
    .take(63)
    .collect();
    let name = name.trim_end_matches('-').to_string();
    let response = http_client()
        .put(format!("{endpoint}/{name}"))
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "cannot create bucket {name}"
    );
    name
}

/// The test's own reader of the bucket (what a CDN would fetch).
struct Bucket {
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
}

impl Bucket {
    fn new(endpoint: &str, bucket: &str) -> Bucket {
        feedwire::install_tls_provider();
        Bucket {
            store: AmazonS3Builder::new()
                .with_endpoint(endpoint)
                .with_allow_http(true)
                .with_bucket_name(bucket)
                .with_region("us-east-1")
                .with_access_key_id("testing")
                .with_secret_access_key("testing")
                .build()
                .unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// An object's ETag and body, or `None` while it does not exist.
    fn get(&self, key: &str) -> Option<(String, Vec<u8>)> {
        self.runtime.block_on(async {
            let got = match self.store.get(&Key::from(key)).await {
                Err(object_store::Error::NotFound { .. }) => return None,
                r => r.unwrap(),
            };
            let e_tag = got.meta.e_tag.clone().unwrap_or_default();
            Some((e_tag, got.bytes().await.unwrap().to_vec()))
        })
    }
}

/// The config every instance of a test shares: the same articles folder
/// (shared storage), catalog, bucket and partners. Feeds hold `window`
/// entries live; older ones go to archive pages of `ARCHIVE_PAGE` entries.
fn cluster_toml(
    window: usize,
    endpoint: &str,
    bucket: &str,
    cluster: &str,
    partners: &[(&str, &str, String)],
) -> String {
    let mut toml = format!(
        "[server]\nenabled = true\nlisten = \"127.0.0.1:0\"\n\n\
         [feeds]\nmax_items = {window}\narchive_page_size = {ARCHIVE_PAGE}\nmax_bytes = 8388608\n\n\
         [watch]\ndebounce_ms = 50\n\n\
         [delivery]\ntimeout_ms = 5000\nretry_base_ms = 200\nretry_max_ms = 1000\n\n\
         [cluster]\n{cluster}\n\n\
         [publish]\nfolder = false\ntarget = \"s3://{bucket}/{PREFIX}\"\n\n\
         [publish.s3]\nendpoint = \"{endpoint}\"\nallow_http = true\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\n"
    );
    for (name, format, url) in partners {
        toml.push_str(&format!(
            "\n[[partners]]\nname = \"{name}\"\nurl = \"{url}\"\nformat = \"{format}\"\nsecret = \"secret-{name}\"\n"
        ));
    }
    toml
}

fn article_name(i: usize) -> String {
    format!("n{i:03}")
}

fn title(i: usize, edited: bool) -> String {
    if edited {
        format!("Tin số {i} đã sửa")
    } else {
        format!("Tin số {i}")
    }
}

/// Write article `i` whole, then rename it in, as a newsroom's system does.
fn drop_article(site: &Site, i: usize, edited: bool) {
    let text = wire_text(
        CATEGORIES[i % 3],
        &title(i, edited),
        &[&format!("Nội dung của tin số {i}.")],
        "Phóng viên",
    );
    let staging = site.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let tmp = staging.join(format!("{}.txt", article_name(i)));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(
        &tmp,
        site.articles().join(format!("{}.txt", article_name(i))),
    )
    .unwrap();
}

fn entry_id(i: usize) -> String {
    format!("tag:test.example,2026:articles/{}", article_name(i))
}

/// One look at a published feed: its entries (id → published, updated,
/// title).
type Entries = BTreeMap<String, (String, String, String)>;

/// Per source, every version of the feed it served: its ETag and entries.
type Seen = HashMap<String, Vec<(String, Entries)>>;

fn entries(bytes: &[u8]) -> Entries {
    parse_feed(bytes)
        .entries
        .into_iter()
        .map(|e| {
            let published = e.published.map(|d| d.to_rfc3339()).unwrap_or_default();
            let updated = e.updated.map(|d| d.to_rfc3339()).unwrap_or_default();
            let title = e.title.map(|t| t.content).unwrap_or_default();
            (e.id, (published, updated, title))
        })
        .collect()
}

/// Records every version of the main Atom feed each source served during
/// the test: each instance over HTTP, and the object in the bucket.
struct Poller {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Poller {
    fn new() -> Poller {
        Poller {
            stop: Arc::default(),
            seen: Arc::default(),
            threads: Vec::new(),
        }
    }

    /// Poll `fetch` (ETag and body, or `None` while unreachable) every
    /// 50 ms under the name `source`, keeping each new version once.
    fn watch(
        &mut self,
        source: &str,
        fetch: impl Fn(Option<&str>) -> Option<Option<(String, Vec<u8>)>> + Send + 'static,
    ) {
        let (stop, seen, source) = (self.stop.clone(), self.seen.clone(), source.to_string());
        self.threads.push(std::thread::spawn(move || {
            let mut last: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                // Some(None): not modified since `last`.
                if let Some(Some((etag, body))) = fetch(last.as_deref())
                    && last.as_deref() != Some(etag.as_str())
                {
                    let parsed = entries(&body);
                    seen.lock()
                        .unwrap()
                        .entry(source.clone())
                        .or_default()
                        .push((etag.clone(), parsed));
                    last = Some(etag);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }

    fn watch_http(&mut self, source: &str, addr: String) {
        let http = http_client();
        self.watch(source, move |etag| {
            let mut req = http
                .get(format!("http://{addr}/feeds/atom.xml"))
                .timeout(Duration::from_secs(5));
            if let Some(e) = etag {
                req = req.header("If-None-Match", e);
            }
            let resp = req.send().ok()?;
            match resp.status().as_u16() {
                304 => Some(None),
                200 => {
                    let etag = resp.headers().get("etag")?.to_str().ok()?.to_string();
                    Some(Some((etag, resp.bytes().ok()?.to_vec())))
                }
                _ => None,
            }
        });
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// No source ever served an older version of the feed than one it served
/// before: an entry leaves the live feed only when a later version is full
/// (`window` entries) and every entry it holds is at least as new (it moved
/// to the archive); published dates never change, `updated` never goes
/// back, and an ETag never comes back after it changed.
fn assert_never_went_back(seen: &Seen, window: usize) {
    for (source, versions) in seen {
        let mut etags = BTreeSet::new();
        for pair in versions.windows(2) {
            let ((_, before), (etag, after)) = (&pair[0], &pair[1]);
            assert!(
                etags.insert(etag.clone()),
                "{source}: ETag {etag} came back after it changed"
            );
            let oldest_kept = after.values().map(|(p, _, _)| p.as_str()).min();
            for (id, (published, updated, _)) in before {
                let Some((p, u, _)) = after.get(id) else {
                    assert!(
                        after.len() == window
                            && oldest_kept.is_some_and(|o| o >= published.as_str()),
                        "{source}: {id} left the feed ({} entries, then {}) while older ones stayed: an older version was served",
                        before.len(),
                        after.len()
                    );
                    continue;
                };
                assert_eq!(p, published, "{source}: {id}'s published date moved");
                assert!(
                    u.as_str() >= updated.as_str(),
                    "{source}: {id}'s updated went back from {updated} to {u}"
                );
            }
        }
    }
}

/// Reads a document by its path under the feeds (`None`: not there).
type Fetch<'a> = dyn Fn(&str) -> Option<Vec<u8>> + 'a;

/// Every entry along a feed's RFC 5005 chain, live document first, then its
/// archive pages newest to oldest (`prev-archive` in Atom and RSS,
/// `next_url` in JSON Feed): id → (published, updated, title), with every
/// id counted (`Err` names one met twice). `get` reads a document by its
/// path under the feeds (`None`: not there).
fn chain(live: &str, get: &Fetch<'_>) -> Result<Entries, String> {
    let mut out = Entries::new();
    let mut next = Some(live.to_string());
    let mut pages = 0;
    while let Some(path) = next {
        pages += 1;
        if pages > 100 {
            return Err(format!("{live}: the chain is longer than 100 documents"));
        }
        let bytes = get(&path).ok_or_else(|| format!("{path} (from {live}) is missing"))?;
        let older = if path.ends_with(".json") {
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            json["next_url"].as_str().map(str::to_string)
        } else {
            parse_feed(&bytes)
                .links
                .into_iter()
                .find(|l| l.rel.as_deref() == Some("prev-archive"))
                .map(|l| l.href)
        };
        for (id, e) in entries(&bytes) {
            if out.insert(id.clone(), e).is_some() {
                return Err(format!("{id} twice along the chain of {live} (in {path})"));
            }
        }
        next = older.map(|url| {
            url.split_once("/feeds/")
                .unwrap_or_else(|| panic!("{url} is not under the feeds"))
                .1
                .to_string()
        });
    }
    Ok(out)
}

fn leader_of<'a>(daemons: &'a [&'a Daemon]) -> Option<usize> {
    daemons
        .iter()
        .position(|d| d.log().contains("became the leader"))
}

fn status(site: &Site) -> String {
    let out = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Issue 11's failover: two instances, a burst of 300 articles, two
/// partners; the leader is killed with -9 in mid-burst. The standby takes
/// over within a lease, a restarted instance joins as a standby, and
/// afterwards every article is in the feeds exactly once with its id and
/// date unchanged, every partner has every version (at least once, one
/// document per idempotency key), and no source (either instance's HTTP, the
/// bucket) ever served an older feed than it had.
#[test]
fn the_standby_takes_over_when_the_leader_is_killed_mid_burst_and_nothing_is_lost() {
    let test = "the_standby_takes_over";
    let Some(endpoint) = servers(test) else {
        return;
    };
    let bucket_name = new_bucket(&endpoint, test);
    let (portal, wire) = (
        Recorder::start(|_| (200, Vec::new())),
        Recorder::start(|_| (200, Vec::new())),
    );
    let lease_secs = 4;
    let site = Site::new(&cluster_toml(
        WINDOW,
        &endpoint,
        &bucket_name,
        &format!("lease_secs = {lease_secs}\nrenew_secs = 1\nclaim_secs = 20"),
        &[
            ("portal", "json", portal.url("/in")),
            ("wire", "rss", wire.url("/in")),
        ],
    ));
    let bucket = Bucket::new(&endpoint, &bucket_name);

    let first = site.start();
    assert!(first.log().contains("became the leader"), "{}", first.log());
    let second = site.start();
    assert!(
        second.log().contains("ready as a standby") && !second.log().contains("became the leader"),
        "{}",
        second.log()
    );
    let st = status(&site);
    assert!(st.contains("cluster   leader"), "{st}");
    assert_eq!(st.matches("  instance ").count(), 2, "{st}");

    let mut poller = Poller::new();
    poller.watch_http("first instance", first.http_addr());
    poller.watch_http("second instance", second.http_addr());
    poller.watch("bucket", move |_| {
        Some(bucket.get(&format!("{PREFIX}/atom.xml")))
    });

    // The burst; the leader is killed half-way through it.
    let total = 300;
    let mut killed_at = None;
    for i in 0..total {
        drop_article(&site, i, false);
        if i == total / 2 {
            killed_at = Some(Instant::now());
            first.kill9();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed_at = killed_at.unwrap();
    for i in total / 2 + 1..total {
        drop_article(&site, i, false);
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for("the standby takes the lease", LONG, || {
        second.log().contains("became the leader").then_some(())
    });
    let takeover = killed_at.elapsed();
    say(&format!(
        "cluster failover: the standby led {:.1} s after kill -9 (lease {lease_secs} s)",
        takeover.as_secs_f64()
    ));
    assert!(
        takeover < Duration::from_secs(lease_secs + 20),
        "the standby took {takeover:?} to take over a {lease_secs} s lease"
    );
    // The killed instance comes back (its supervisor restarts it): it
    // stands by.
    let third = site.start();
    assert!(
        third.log().contains("ready as a standby") && !third.log().contains("became the leader"),
        "{}",
        third.log()
    );
    poller.watch_http("restarted instance", third.http_addr());

    let leader_http = second.http_addr();
    let http = http_client();
    let feed = |addr: &str, path: &str| -> Option<Vec<u8>> {
        let resp = http
            .get(format!("http://{addr}/feeds/{path}"))
            .send()
            .ok()?;
        resp.status()
            .is_success()
            .then(|| resp.bytes().unwrap().to_vec())
    };
    let leader_get = |path: &str| feed(&leader_http, path);
    wait_for(
        "all 300 articles along the new leader's feed chain",
        LONG,
        || (chain("atom.xml", &leader_get).ok()?.len() == total).then_some(()),
    );
    // A second version of some articles, published by the new leader.
    let edited: Vec<usize> = (0..total).step_by(15).collect();
    for &i in &edited {
        drop_article(&site, i, true);
    }
    wait_for("the edits along the new leader's feed chain", LONG, || {
        let got = chain("atom.xml", &leader_get).ok()?;
        edited
            .iter()
            .all(|&i| got.get(&entry_id(i)).is_some_and(|e| e.2 == title(i, true)))
            .then_some(())
    });

    // Every partner gets every version: article i's first title, and the
    // second for an edited one; one document per idempotency key.
    for (rec, name) in [(&portal, "portal"), (&wire, "wire")] {
        let wanted = |i: usize| -> Vec<String> {
            let mut t = vec![title(i, false)];
            if edited.contains(&i) {
                t.push(title(i, true));
            }
            t
        };
        let deadline = Instant::now() + LONG;
        loop {
            let got = received(rec);
            let missing: Vec<(String, String)> = (0..total)
                .flat_map(|i| wanted(i).into_iter().map(move |t| (entry_id(i), t)))
                .filter(|(id, t)| !got.get(id).is_some_and(|ts| ts.contains(t)))
                .collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} still lacks {} version(s) after {LONG:?}, e.g. {:?}\nstatus:\n{}",
                missing.len(),
                &missing[..missing.len().min(5)],
                status(&site)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut by_key: HashMap<String, Vec<u8>> = HashMap::new();
        for r in rec.at("POST", "/in") {
            let key = r.headers["idempotency-key"].clone();
            if let Some(body) = by_key.get(&key) {
                assert_eq!(body, &r.body, "{name}: one idempotency key, two documents");
            }
            by_key.insert(key, r.body.clone());
        }
        assert_eq!(
            by_key.len(),
            total + edited.len(),
            "{name}: one key per version"
        );
    }

    // Every instance and the bucket end with the same feeds: every article
    // exactly once (in the main feed and in its category's), ids and
    // published dates as first seen.
    let third_http = third.http_addr();
    wait_for("the restarted standby serves the final feed", LONG, || {
        (feed(&third_http, "atom.xml")? == feed(&leader_http, "atom.xml")?).then_some(())
    });
    let seen = poller.finish();
    assert_never_went_back(&seen, WINDOW);
    let counts: Vec<(&str, usize)> = [
        "first instance",
        "second instance",
        "bucket",
        "restarted instance",
    ]
    .into_iter()
    .map(|source| (source, seen.get(source).map_or(0, Vec::len)))
    .collect();
    say(&format!(
        "cluster failover: feed versions seen per source: {counts:?}"
    ));
    for (source, n) in counts {
        assert!(
            n >= 2,
            "only {n} version(s) seen from {source}: the poller checked nothing"
        );
    }
    let mut first_published: HashMap<String, String> = HashMap::new();
    for versions in seen.values() {
        for (_, e) in versions {
            for (id, (published, _, _)) in e {
                let was = first_published
                    .entry(id.clone())
                    .or_insert(published.clone());
                assert_eq!(was, published, "{id}: its published date changed");
            }
        }
    }
    // Along each feed's chain (live window, then archive pages), from the
    // leader, the restarted standby (pages it never wrote: read from the
    // catalog) and the bucket: every article exactly once, in the main feed
    // and in its category's, with its published date as first seen.
    let bucket = Bucket::new(&endpoint, &bucket_name);
    let final_main = feed(&leader_http, "atom.xml").unwrap();
    assert_eq!(
        bucket.get(&format!("{PREFIX}/atom.xml")).unwrap().1,
        final_main,
        "the bucket holds what the leader serves"
    );
    let from_bucket = |path: &str| bucket.get(&format!("{PREFIX}/{path}")).map(|(_, b)| b);
    let from_third = |path: &str| feed(&third_http, path);
    let sources: [(&str, &Fetch<'_>); 3] = [
        ("leader", &leader_get),
        ("restarted standby", &from_third),
        ("bucket", &from_bucket),
    ];
    let want: BTreeSet<String> = (0..total).map(entry_id).collect();
    let mut main = Entries::new();
    for (source, get) in sources {
        for path in ["atom.xml", "rss.xml", "feed.json"] {
            let got = chain(path, get).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert_eq!(
                got.keys().cloned().collect::<BTreeSet<_>>(),
                want,
                "{source} {path}: every article once along the chain"
            );
            if path == "atom.xml" {
                assert!(
                    main.is_empty() || main == got,
                    "{source}: another chain than the leader's"
                );
                main = got;
            }
        }
        let mut in_categories = 0;
        for (c, slug) in SLUGS.iter().enumerate() {
            let got =
                chain(&format!("{slug}/atom.xml"), get).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert!(got.keys().all(|id| {
                let i: usize = id.rsplit('n').next().unwrap().parse().unwrap();
                i % 3 == c
            }));
            in_categories += got.len();
        }
        assert_eq!(
            in_categories, total,
            "{source}: every article in exactly one category feed"
        );
    }
    // Dates as the pollers first saw them, for every entry they saw in a
    // live window (one dropped early may have reached the archive between
    // two looks).
    let mut compared = 0;
    for i in 0..total {
        let (published, _, t) = &main[&entry_id(i)];
        assert_eq!(t, &title(i, edited.contains(&i)));
        if let Some(first) = first_published.get(&entry_id(i)) {
            assert_eq!(first, published, "{}", entry_id(i));
            compared += 1;
        }
    }
    assert!(
        compared >= WINDOW,
        "only {compared} published dates seen by the pollers"
    );

    // Deliveries were spread: both instances sent some.
    assert!(second.log().contains("claimed deliveries"));
    let st = status(&site);
    assert!(
        st.contains("instance") && st.contains("gone"),
        "the killed instance shows as gone: {st}"
    );
}

/// Per article id, the titles a partner received.
fn received(rec: &Recorder) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in rec.at("POST", "/in") {
        for e in parse_feed(&r.body).entries {
            let t = e.title.map(|t| t.content).unwrap_or_default();
            out.entry(e.id).or_default().insert(t);
        }
    }
    out
}

/// A leader stopped cleanly (SIGTERM) resigns: the standby takes over at
/// once, not when the lease would have lapsed (a minute here), and
/// publishes what arrives next. `status` shows the instances, the leader
/// and its lease throughout.
#[test]
fn a_clean_stop_hands_the_lease_over_at_once_and_status_shows_the_cluster() {
    let test = "a_clean_stop_hands_the_lease_over";
    let Some(endpoint) = servers(test) else {
        return;
    };
    let bucket_name = new_bucket(&endpoint, test);
    let site = Site::new(&cluster_toml(
        WIDE,
        &endpoint,
        &bucket_name,
        "instance = \"web-a\"\nlease_secs = 60\nrenew_secs = 5",
        &[],
    ));
    drop_article(&site, 1, false);
    let a = site.start();
    let b_site_config = std::fs::read_to_string(site.config()).unwrap();
    // The second instance: the same config with another name.
    let b_config = site.path().join("config-b.toml");
    std::fs::write(&b_config, b_site_config.replace("web-a", "web-b")).unwrap();
    let b = Daemon::start_with_config(&site, &b_config);
    let daemons = [&a, &b];
    assert_eq!(leader_of(&daemons), Some(0), "the first started leads");

    let st = status(&site);
    assert!(st.contains("cluster   leader web-a (term "), "{st}");
    assert!(st.contains("cluster.lease_secs = 60"), "{st}");
    assert!(
        st.contains("  instance web-a leader http 127.0.0.1:"),
        "{st}"
    );
    assert!(
        st.contains("  instance web-b standby http 127.0.0.1:"),
        "{st}"
    );

    // The standby serves what the leader published, with the same ETag.
    let http = http_client();
    let get = |d: &Daemon| {
        http.get(format!("http://{}/feeds/atom.xml", d.http_addr()))
            .send()
            .unwrap()
    };
    let (from_a, from_b) = (get(&a), get(&b));
    assert_eq!(from_a.headers()["etag"], from_b.headers()["etag"]);
    let doc = parse_feed(&from_b.bytes().unwrap());
    assert_eq!(ids(&doc), [entry_id(1)]);
    drop_article(&site, 2, false);
    wait_for("the standby serves the leader's next version", LONG, || {
        let got = entries(&get(&b).bytes().ok()?);
        got.contains_key(&entry_id(2)).then_some(())
    });

    let stopped = Instant::now();
    assert!(a.terminate().success());
    wait_for("web-b leads", Duration::from_secs(30), || {
        b.log().contains("became the leader").then_some(())
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "took {:?}: the lease was not handed over",
        stopped.elapsed()
    );
    drop_article(&site, 3, false);
    wait_for("the new leader publishes", LONG, || {
        let got = entries(&get(&b).bytes().ok()?);
        got.contains_key(&entry_id(3)).then_some(())
    });
    let st = status(&site);
    assert!(st.contains("cluster   leader web-b (term "), "{st}");
    assert!(st.contains("  instance web-a stopped"), "{st}");
}

fn signal(d: &Daemon, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A leader paused (SIGSTOP: a long GC-like stall, a frozen VM) past its
/// lease, with articles arriving meanwhile: the standby takes over and
/// publishes them. When the old leader wakes up it must not write what it
/// had in hand over the newer feeds (its catalog writes are fenced by its
/// term, its S3 writes conditional on what it last saw): it steps down and
/// serves the new leader's feeds. No source ever goes back.
#[test]
fn a_paused_leader_that_wakes_up_overwrites_nothing() {
    let test = "a_paused_leader_that_wakes_up";
    let Some(endpoint) = servers(test) else {
        return;
    };
    let bucket_name = new_bucket(&endpoint, test);
    let site = Site::new(&cluster_toml(
        WIDE,
        &endpoint,
        &bucket_name,
        "lease_secs = 3\nrenew_secs = 1",
        &[],
    ));
    drop_article(&site, 0, false);
    let a = site.start();
    let b = site.start();
    assert!(a.log().contains("became the leader") && !b.log().contains("became the leader"));
    let mut poller = Poller::new();
    poller.watch_http("paused leader", a.http_addr());
    poller.watch_http("standby", b.http_addr());
    let bucket = Bucket::new(&endpoint, &bucket_name);
    poller.watch("bucket", move |_| {
        Some(bucket.get(&format!("{PREFIX}/atom.xml")))
    });
    let http = http_client();
    let served = |d: &Daemon| -> Entries {
        http.get(format!("http://{}/feeds/atom.xml", d.http_addr()))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()
            .and_then(|r| r.bytes().ok())
            .map(|b| entries(&b))
            .unwrap_or_default()
    };

    signal(&a, "-STOP");
    // Arrives while the leader is frozen: its watcher queues the events.
    drop_article(&site, 1, false);
    wait_for("the standby takes over", LONG, || {
        b.log().contains("became the leader").then_some(())
    });
    for i in 2..6 {
        drop_article(&site, i, false);
    }
    wait_for("the new leader publishes everything", LONG, || {
        (served(&b).len() == 6).then_some(())
    });
    signal(&a, "-CONT");
    wait_for("the old leader steps down", LONG, || {
        a.log().contains("serving as a standby").then_some(())
    });
    drop_article(&site, 6, false);
    wait_for("the old leader serves the new leader's feeds", LONG, || {
        let (from_a, from_b) = (served(&a), served(&b));
        (from_a.len() == 7 && from_a == from_b).then_some(())
    });
    let seen = poller.finish();
    assert_never_went_back(&seen, WIDE);
    let bucket = Bucket::new(&endpoint, &bucket_name);
    let final_feed = entries(&bucket.get(&format!("{PREFIX}/atom.xml")).unwrap().1);
    assert_eq!(final_feed.len(), 7, "the bucket has the newest feed");
    let st = status(&site);
    assert!(st.contains("(term 2)"), "the second leader leads: {st}");
}

/// A loopback TCP proxy in front of the S3 server that the test can cut:
/// while down it refuses new connections and breaks the open ones, as an
/// unreachable store would.
struct Cut {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Cut {
    fn new(upstream: &str) -> Cut {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let rt = crate::common::recorder::runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, watch) = tokio::sync::watch::channel(true);
        rt.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut state = watch.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if !*state.borrow_and_update() {
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Cut { addr, up }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// The object store unreachable: the leader's publishes fail and are
/// retried, every instance keeps serving the last good feeds, and a standby
/// that takes over meanwhile (the leader killed) cannot start publishing: it
/// hands the lease back and tries again, serving all along. When the store
/// is back, everything written meanwhile is published: nothing is lost.
#[test]
fn an_unreachable_store_loses_nothing_and_the_last_feeds_stay_served() {
    let test = "an_unreachable_store";
    let Some(endpoint) = servers(test) else {
        return;
    };
    let bucket_name = new_bucket(&endpoint, test);
    let cut = Cut::new(&endpoint);
    let site = Site::new(
        &cluster_toml(
            WIDE,
            &cut.endpoint(),
            &bucket_name,
            "lease_secs = 3\nrenew_secs = 1",
            &[],
        )
        .replace("[publish.s3]\n", "[publish.s3]\ntimeout_secs = 2\n"),
    );
    drop_article(&site, 1, false);
    let a = site.start();
    let b = site.start();
    assert!(a.log().contains("became the leader") && !b.log().contains("became the leader"));
    let http = http_client();
    let served = |d: &Daemon| -> Option<Entries> {
        let r = http
            .get(format!("http://{}/feeds/atom.xml", d.http_addr()))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()?;
        r.status()
            .is_success()
            .then(|| entries(&r.bytes().unwrap()))
    };
    let bucket = Bucket::new(&endpoint, &bucket_name);
    let in_bucket = || entries(&bucket.get(&format!("{PREFIX}/atom.xml")).unwrap().1);
    assert_eq!(in_bucket().len(), 1);

    cut.set(false);
    drop_article(&site, 2, false);
    wait_for("the leader's publish fails", LONG, || {
        a.log().contains("could not process changes").then_some(())
    });
    for d in [&a, &b] {
        let got = served(d).expect("still serving");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            [&entry_id(1)],
            "the last good feed"
        );
    }

    // The leader dies while the store is away: the standby takes the lease,
    // cannot publish, hands it back, and keeps serving.
    a.kill9();
    wait_for(
        "the standby tried to lead and handed the lease back",
        LONG,
        || b.log().contains("resigning the lease").then_some(()),
    );
    assert_eq!(served(&b).expect("still serving").len(), 1);
    assert_eq!(in_bucket().len(), 1);
    // It waits a lease between attempts rather than spinning.
    std::thread::sleep(Duration::from_secs(6));
    let attempts = b.log().matches("became the leader").count();
    assert!(
        attempts <= 5,
        "{attempts} attempts to lead in about two leases: it must wait a lease between them"
    );

    cut.set(true);
    wait_for("both articles in the bucket", LONG, || {
        (in_bucket().len() == 2).then_some(())
    });
    wait_for("both articles served", LONG, || {
        (served(&b)?.len() == 2).then_some(())
    });
    let st = status(&site);
    assert!(st.contains("cluster   leader"), "{st}");
}
