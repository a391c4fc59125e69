//! What only PostgreSQL has: its migrations, and the bridge between the
//! synchronous catalog and the async client from every context the daemon
//! calls it from. They need `FEEDWIRE_TEST_DATABASE_URL` (see `testing`);
//! without it they say so and check nothing.

use super::testing::{ADMIN_URL_VAR, TestDatabase};
use super::*;
use crate::catalog::Catalog;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn database() -> Option<TestDatabase> {
    let db = TestDatabase::create();
    if db.is_none() {
        eprintln!("skipped: {ADMIN_URL_VAR} is not set");
    }
    db
}

fn open(db: &TestDatabase) -> Catalog {
    Catalog::open(
        &crate::config::CatalogLocation::Postgres(db.url.clone()),
        chrono_tz::UTC,
    )
    .unwrap()
}

/// A direct connection, for looking at what the catalog wrote.
fn inspect(db: &TestDatabase, sql: &str) -> Vec<tokio_postgres::Row> {
    let pool = pool_for(&db.url).unwrap();
    block_on(async { q::rows(&pool.get().await.unwrap(), sql, &[]).await.unwrap() }).unwrap()
}

/// A fresh database gets every table; opening it again writes nothing (the
/// version row is the same row version), and a newer one is refused.
#[test]
fn a_fresh_database_migrates_once_and_a_newer_one_is_refused() {
    let Some(db) = database() else { return };
    let first = open(&db);
    let tables = inspect(
        &db,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )[0]
    .get::<_, i64>(0);
    assert_eq!(
        tables as usize,
        schema::DATA_TABLES.len() + 2,
        "data tables, the version, data_version"
    );
    let row_version = |db: &TestDatabase| -> (i32, String) {
        let r = &inspect(db, "SELECT version, xmin::text FROM feedwire_schema")[0];
        (r.get(0), r.get(1))
    };
    let before = row_version(&db);
    assert_eq!(before.0, schema::SCHEMA_VERSION);
    drop(first);
    let _again = open(&db);
    let _third = open(&db);
    assert_eq!(
        row_version(&db),
        before,
        "opening a current catalog wrote to it"
    );

    inspect(
        &db,
        "UPDATE feedwire_schema SET version = version + 1 RETURNING version",
    );
    let err = Catalog::open(
        &crate::config::CatalogLocation::Postgres(db.url.clone()),
        chrono_tz::UTC,
    )
    .err()
    .expect("a newer catalog must be refused");
    assert!(
        format!("{err:#}").contains("newer than this feedwire"),
        "{err:#}"
    );
}

/// `status` on a database feedwire never wrote to says so, and creates
/// nothing.
#[test]
fn commands_refuse_a_database_without_a_catalog() {
    let Some(db) = database() else { return };
    let err = Catalog::open_existing(
        &crate::config::CatalogLocation::Postgres(db.url.clone()),
        chrono_tz::UTC,
    )
    .err()
    .expect("no catalog there yet");
    assert!(
        format!("{err:#}").contains("no catalog in PostgreSQL"),
        "{err:#}"
    );
    let tables = inspect(
        &db,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )[0]
    .get::<_, i64>(0);
    assert_eq!(tables, 0);
}

/// The catalog answers from every context feedwire calls it from: a plain
/// thread (pipeline, commands), a worker of a multi-threaded runtime, the
/// thread inside its `block_on`, `spawn_blocking`, `block_in_place`, and a
/// current-thread runtime.
#[test]
fn the_catalog_answers_from_every_calling_context() {
    let Some(db) = database() else { return };
    let c = open(&db);
    c.set_meta("k", "v").unwrap();
    let read = |c: &Catalog| c.meta("k").unwrap().unwrap();
    let c = std::thread::spawn(move || {
        assert_eq!(read(&c), "v", "on a plain thread");
        c
    })
    .join()
    .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = std::sync::Arc::new(std::sync::Mutex::new(c));
    rt.block_on(async {
        assert_eq!(read(&c.lock().unwrap()), "v", "in the runtime's block_on");
        let on_worker = c.clone();
        let v = tokio::spawn(async move { read(&on_worker.lock().unwrap()) });
        assert_eq!(v.await.unwrap(), "v", "on a worker");
        let blocking = c.clone();
        let v = tokio::task::spawn_blocking(move || read(&blocking.lock().unwrap()));
        assert_eq!(v.await.unwrap(), "v", "in spawn_blocking");
        let in_place = c.clone();
        let v =
            tokio::spawn(
                async move { tokio::task::block_in_place(|| read(&in_place.lock().unwrap())) },
            );
        assert_eq!(v.await.unwrap(), "v", "in block_in_place");
    });
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = current.block_on(async { read(&c.lock().unwrap()) });
    assert_eq!(v, "v", "in a current-thread runtime");
}

/// A catalog call that waits (here for a batch's lock) on a worker of the
/// daemon's runtime does not hold that worker: with one worker, another
/// task still runs meanwhile.
#[test]
fn a_waiting_catalog_call_does_not_block_a_runtime_worker() {
    let Some(db) = database() else { return };
    let mut pipeline = open(&db);
    let operator = open(&db);
    let batch = pipeline.batch().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let approved = std::sync::Arc::new(AtomicBool::new(false));
    let done = approved.clone();
    // Waits for the batch's lock, called straight from an async task.
    let waiting = rt.spawn(async move {
        operator.approve_held_removals().unwrap();
        done.store(true, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !approved.load(Ordering::SeqCst),
        "approval must wait for the batch"
    );
    // Answered through a std channel: a blocked worker would also stop the
    // runtime's timers, so a runtime timeout could not report it.
    let (answer, answered) = std::sync::mpsc::channel();
    rt.spawn(async move { answer.send(42).unwrap() });
    let other = answered.recv_timeout(Duration::from_secs(10));
    let waited = !approved.load(Ordering::SeqCst);
    // Release the catalog call before judging, so a failure cannot hang.
    batch.commit().unwrap();
    rt.block_on(waiting).unwrap();
    assert_eq!(
        other.ok(),
        Some(42),
        "another task could not run while the catalog waited"
    );
    assert!(waited, "approval must wait for the batch");
    assert!(approved.load(Ordering::SeqCst));
}

/// Free text with a NUL (a hostile file's or receiver's) is stored, not
/// refused: PostgreSQL text cannot hold NUL.
#[test]
fn text_with_nul_is_stored() {
    let Some(db) = database() else { return };
    let mut c = open(&db);
    let mut b = c.batch().unwrap();
    let stamp = FileStamp {
        size: 1,
        mtime_ns: 1,
        inode: 1,
        hash: "h".into(),
    };
    b.reject("a.txt", &stamp, "bad byte \0 here", None, Utc::now())
        .unwrap();
    b.commit().unwrap();
    assert_eq!(c.rejections().unwrap()[0].reason, "bad byte \u{FFFD} here");
}
