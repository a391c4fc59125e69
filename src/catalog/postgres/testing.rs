//! Databases for tests: a fresh one per test in the cluster that
//! `FEEDWIRE_TEST_DATABASE_URL` names (an administrator's URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped at the end.

use super::bridge::block_on;
use crate::config::PostgresUrl;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const ADMIN_URL_VAR: &str = "FEEDWIRE_TEST_DATABASE_URL";

pub(crate) struct TestDatabase {
    admin: String,
    name: String,
    pub url: PostgresUrl,
}

impl TestDatabase {
    /// A new empty database, or `None` when no test cluster is configured.
    pub(crate) fn create() -> Option<TestDatabase> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin = std::env::var(ADMIN_URL_VAR).ok()?;
        let name = format!(
            "feedwire_unit_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin_exec(&admin, &format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(&admin).expect("the test database URL parses");
        url.set_path(&format!("/{name}"));
        let url = PostgresUrl::parse(url.as_str(), ADMIN_URL_VAR).expect("a PostgreSQL URL");
        Some(TestDatabase { admin, name, url })
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

/// Run `sql` on a connection of its own to the administrator's database.
pub(crate) fn admin_exec(admin: &str, sql: &str) {
    block_on(async {
        let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {ADMIN_URL_VAR}: {e}"));
        let driver = tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        drop(client);
        let _ = driver.await;
    })
    .unwrap();
}
