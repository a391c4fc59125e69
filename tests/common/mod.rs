//! Shared test harness: a temporary site (articles folder + config), the real
//! `feedwire` binary, and feed parsing with the independent `feed-rs` crate.
//!
//! With `FEEDWIRE_TEST_DATABASE_URL` set (an administrator's URL to a
//! throwaway PostgreSQL cluster, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), every site keeps its
//! catalog in a fresh database of its own (`[catalog] url`), dropped with the
//! site: the whole suite then runs on PostgreSQL. `.ci/run` runs it both ways.
#![allow(dead_code)]

pub mod ninjs;
pub mod recorder;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `site.base_url` every test site is given. Nothing listens there: a
/// daemon binds port 0 and tests talk to `Daemon::http_addr()`; the base URL
/// only names things (topic URLs, self links, the hub's link header).
pub const BASE_URL: &str = "http://127.0.0.1:8080";

/// The binary under test: this build's, or `FEEDWIRE_TEST_BIN` when set,
/// which is how a new test is shown to fail against an older build
/// (`FEEDWIRE_TEST_BIN=/path/to/old/feedwire cargo test --test suite NAME::`).
pub fn bin() -> String {
    std::env::var("FEEDWIRE_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_feedwire").to_string())
}

/// The corpus copied into the repository (a user's clone has no ../shared).
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

pub fn wire(name: &str) -> PathBuf {
    corpus().join("wire").join(name)
}

/// The variable naming the PostgreSQL cluster the suite also runs on.
pub const DATABASE_URL_VAR: &str = "FEEDWIRE_TEST_DATABASE_URL";

/// A database of its own in the test cluster, dropped at the end.
pub struct TestDatabase {
    admin: String,
    pub name: String,
    /// The database's URL, for `[catalog] url`.
    pub url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` when `FEEDWIRE_TEST_DATABASE_URL` is
    /// not set.
    pub fn create() -> Option<TestDatabase> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin = std::env::var(DATABASE_URL_VAR).ok()?;
        let name = format!(
            "feedwire_site_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin_exec(&admin, &format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(&admin)
            .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        Some(TestDatabase {
            admin,
            name,
            url: url.to_string(),
        })
    }

    /// Run SQL on this database (to look at what feedwire stored).
    pub fn query_one_i64(&self, sql: &str) -> i64 {
        query_one_i64(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin_exec(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn with_client<T>(url: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test database ({DATABASE_URL_VAR}): {e}"));
        let driver = tokio::spawn(connection);
        let out = f(&client).await;
        drop(client);
        let _ = driver.await;
        out
    })
}

fn admin_exec(admin: &str, sql: &str) {
    with_client(admin, async |c| {
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    })
}

fn query_one_i64(url: &str, sql: &str) -> i64 {
    with_client(url, async |c| {
        c.query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    })
}

/// A temporary feedwire installation.
pub struct Site {
    pub dir: tempfile::TempDir,
    /// Its PostgreSQL catalog, when the suite runs on PostgreSQL.
    pub database: Option<TestDatabase>,
}

impl Site {
    /// A site whose config has `extra` appended (TOML). Its catalog is in
    /// PostgreSQL when `FEEDWIRE_TEST_DATABASE_URL` is set (unless `extra`
    /// has a `[catalog]` of its own), else the SQLite file.
    pub fn new(extra: &str) -> Site {
        let database = if extra.contains("[catalog]") {
            None
        } else {
            TestDatabase::create()
        };
        let extra = match &database {
            Some(db) => format!("{extra}\n[catalog]\nurl = \"{}\"\n", db.url),
            None => extra.to_string(),
        };
        let mut site = Site::with_config(&extra);
        site.database = database;
        site
    }

    /// A site on the SQLite catalog whatever the environment says.
    pub fn new_sqlite(extra: &str) -> Site {
        Site::with_config(extra)
    }

    fn with_config(extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("articles")).unwrap();
        let config = format!(
            "[site]\ntitle = \"Tin thử\"\nbase_url = \"{BASE_URL}\"\ntag_authority = \"test.example,2026\"\n\n{extra}\n"
        );
        let config = if config.contains("[server]") {
            config
        } else {
            format!("{config}\n[server]\nenabled = false\n")
        };
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Site {
            dir,
            database: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }
    pub fn articles(&self) -> PathBuf {
        self.path().join("articles")
    }
    pub fn feeds(&self) -> PathBuf {
        self.path().join("feeds")
    }

    /// Copy a corpus file into the articles folder under `name`.
    pub fn add_wire(&self, corpus_name: &str, as_name: &str) -> PathBuf {
        let target = self.articles().join(as_name);
        std::fs::copy(wire(corpus_name), &target).unwrap();
        target
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let target = self.articles().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, bytes).unwrap();
        target
    }

    /// Run a CLI command to completion.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(self.path())
            .env("RUST_LOG", "info");
        cmd.output().unwrap()
    }

    pub fn build(&self) -> std::process::Output {
        let out = self.cli(&["build", "--config", self.config().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A published feed, parsed; it must exist.
    #[track_caller]
    pub fn feed(&self, rel: &str) -> feed_rs::model::Feed {
        let bytes = std::fs::read(self.feeds().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        parse_feed(&bytes)
    }

    /// A published feed, parsed, or `None` while it cannot be read (not
    /// published yet). Feeds are published atomically, so one that exists
    /// and does not parse is a failure, not a "not yet": that panics.
    #[track_caller]
    pub fn try_feed(&self, rel: &str) -> Option<feed_rs::model::Feed> {
        let bytes = std::fs::read(self.feeds().join(rel)).ok()?;
        Some(parse_feed(&bytes))
    }

    pub fn start(&self) -> Daemon {
        Daemon::start(self)
    }
}

/// A blocking HTTP client for talking to the daemon (TLS provider installed
/// first: feedwire's reqwest carries none of its own).
pub fn http_client() -> reqwest::blocking::Client {
    feedwire::install_tls_provider();
    reqwest::blocking::Client::new()
}

/// Parse a feed document (RSS, Atom or JSON Feed) with feed-rs, the parser
/// independent of feedwire's renderer. Panics naming the error and showing
/// the start of the document; the location is the caller's.
#[track_caller]
pub fn parse_feed(bytes: &[u8]) -> feed_rs::model::Feed {
    // A `match`, not `unwrap_or_else`: a closure would not report the caller.
    match feed_rs::parser::parse(bytes) {
        Ok(feed) => feed,
        Err(e) => {
            let start: String = String::from_utf8_lossy(bytes).chars().take(300).collect();
            panic!(
                "feed-rs cannot parse this {}-byte document as a feed ({e}); it begins: {start:?}",
                bytes.len()
            )
        }
    }
}

/// Entry titles of a parsed feed.
pub fn titles(feed: &feed_rs::model::Feed) -> Vec<String> {
    feed.entries
        .iter()
        .map(|e| {
            e.title
                .as_ref()
                .map(|t| t.content.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// Entry ids of a parsed feed.
pub fn ids(feed: &feed_rs::model::Feed) -> Vec<String> {
    feed.entries.iter().map(|e| e.id.clone()).collect()
}

/// Poll `cond` until it holds or the (generous) deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The real daemon as a child process, its stderr collected.
pub struct Daemon {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
    /// Read from the log once: it never changes while the daemon runs.
    http_addr: OnceLock<String>,
}

impl Daemon {
    pub fn start(site: &Site) -> Daemon {
        Daemon::spawn(site, Command::new(bin()))
    }

    /// Start on another config file of the site's (a second instance with
    /// settings of its own).
    pub fn start_with_config(site: &Site, config: &Path) -> Daemon {
        Daemon::spawn_with(site, Command::new(bin()), config)
    }

    /// Start with both open-file limits (soft and hard) set to `limit`, as a
    /// service manager would, so running out of descriptors is reachable.
    pub fn start_with_fd_limit(site: &Site, limit: u32) -> Daemon {
        let mut sh = Command::new("sh");
        // `exec` keeps the daemon's pid the child's, for /proc and signals.
        sh.args([
            "-c",
            &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
            &bin(),
        ]);
        Daemon::spawn(site, sh)
    }

    fn spawn(site: &Site, command: Command) -> Daemon {
        Daemon::spawn_with(site, command, &site.config())
    }

    fn spawn_with(site: &Site, mut command: Command, config: &Path) -> Daemon {
        let mut child = command
            .args(["run", "--config", config.to_str().unwrap()])
            .current_dir(site.path())
            .env("RUST_LOG", "feedwire=debug,info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let d = Daemon {
            child,
            log,
            http_addr: OnceLock::new(),
        };
        wait_for("daemon ready", Duration::from_secs(60), || {
            d.log().contains("ready").then_some(())
        });
        d
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The address the daemon's HTTP server listens on (`127.0.0.1:PORT`),
    /// as it logged it: the way to reach a daemon configured with port 0.
    pub fn http_addr(&self) -> String {
        self.http_addr
            .get_or_init(|| {
                wait_for("http address", Duration::from_secs(30), || {
                    let log = self.log();
                    let at = log.find("serving http://")?;
                    let rest = &log[at + "serving http://".len()..];
                    Some(rest[..rest.find('/')?].to_string())
                })
            })
            .clone()
    }

    /// Peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    /// Resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.child.id()))
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "daemon did not stop within 20 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A wire article with a given category, title and body, in the agency layout.
pub fn wire_text(category: &str, title: &str, paragraphs: &[&str], byline: &str) -> String {
    let mut s = format!("{category}\n\n{title}\n\nHà Nội\n\nBản tin ngắn về {title}.\n\n");
    for (i, p) in paragraphs.iter().enumerate() {
        let p = if i == 0 {
            format!("TTXVN - {p}")
        } else {
            p.to_string()
        };
        let p = if i + 1 == paragraphs.len() {
            format!("{p}/.")
        } else {
            p
        };
        s.push_str(&p);
        s.push_str("\n\n");
    }
    s.push_str(byline);
    s.push('\n');
    s
}
