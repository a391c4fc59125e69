//! `feedwire migrate-catalog`: a SQLite catalog copied into an empty
//! PostgreSQL one, every table, in one transaction, so an agency moves
//! without re-dating its archive (first-seen times, published versions and
//! the outbox come along as they are).

use super::schema::DATA_TABLES;
use super::{BATCH_LOCK, HUB_LOCK, Postgres, bridge::block_on_here, q};
use crate::catalog::sqlite::Sqlite;
use crate::config::PostgresUrl;
use anyhow::{Context, Result, bail};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// How a column is read from SQLite and written to PostgreSQL.
#[derive(Clone, Copy)]
enum Col {
    Text,
    NullText,
    Int,
    NullInt,
    /// SQLite's 0/1 integer as a boolean.
    Bool,
    NullBytes,
}

use Col::*;

/// Every table with rows worth keeping, and its columns. Reservations of
/// verifications in flight are not: a starting daemon clears them anyway.
const TABLES: &[(&str, &[(&str, Col)])] = &[
    (
        "identities",
        &[
            ("id", Text),
            ("first_seen_us", Int),
            ("content_hash", Text),
            ("changed_at_us", Int),
            ("version", Int),
            ("public_since_us", NullInt),
            ("killed_at_us", NullInt),
            ("kill_reason", NullText),
        ],
    ),
    (
        "articles",
        &[
            ("id", Text),
            ("path", Text),
            ("published_us", Int),
            ("entry", Text),
            ("state", Text),
            ("embargo_until_us", NullInt),
        ],
    ),
    (
        "memberships",
        &[
            ("feed", Text),
            ("published_us", Int),
            ("article_id", Text),
            ("page", Int),
        ],
    ),
    ("categories", &[("slug", Text), ("name", Text)]),
    (
        "files",
        &[
            ("path", Text),
            ("size", Int),
            ("mtime_ns", Int),
            ("hash", Text),
            ("article_id", NullText),
            ("inode", Int),
        ],
    ),
    (
        "rejections",
        &[
            ("path", Text),
            ("reason", Text),
            ("at", Int),
            ("duplicate_of", NullText),
        ],
    ),
    (
        "held_removals",
        &[
            ("path", Text),
            ("article_id", Text),
            ("held_at", Int),
            ("approved", Bool),
        ],
    ),
    ("published", &[("path", Text), ("hash", Text), ("at", Int)]),
    ("meta", &[("key", Text), ("value", Text)]),
    (
        "syndicate_outbox",
        &[
            ("id", Int),
            ("kind", Text),
            ("target", Text),
            ("topic", Text),
            ("article", Text),
            ("body", NullBytes),
            ("content_type", Text),
            ("idem", Text),
            ("ready", Bool),
            ("state", Text),
            ("created_ms", Int),
            ("next_ms", Int),
            ("attempts", Int),
            ("last_error", Text),
        ],
    ),
    (
        "syndicate_subscriptions",
        &[
            ("topic", Text),
            ("callback", Text),
            ("secret", NullText),
            ("lease_secs", Int),
            ("expires_at", Int),
            ("created_at", Int),
            ("client", Text),
        ],
    ),
    (
        "tombstones",
        &[
            ("id", Text),
            ("killed_at_us", Int),
            ("reason", NullText),
            ("feeds", Text),
            ("expires_at_us", Int),
        ],
    ),
    (
        "editorial",
        &[
            ("id", Text),
            ("status", NullText),
            ("embargo_until_us", NullInt),
            ("correction", NullText),
            ("reason", NullText),
            ("updated_at_us", Int),
        ],
    ),
    (
        "operator_commands",
        &[
            ("seq", Int),
            ("command", Text),
            ("article_id", Text),
            ("argument", NullText),
            ("who", Text),
            ("at_us", Int),
            ("applied", Bool),
        ],
    ),
    (
        "archive_pages",
        &[
            ("feed", Text),
            ("page", Int),
            ("assigned", Int),
            ("stale", Bool),
        ],
    ),
];

/// Rows copied, per table.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

/// Copy the SQLite catalog at `sqlite_path` into the (empty) PostgreSQL
/// catalog at `url`. Command line only (no async runtime may be running).
pub(crate) fn copy_from_sqlite(
    sqlite_path: &std::path::Path,
    url: &PostgresUrl,
) -> Result<CopyReport> {
    if !sqlite_path.is_file() {
        bail!(
            "no SQLite catalog at {}: nothing to copy (check paths.state in the config)",
            sqlite_path.display()
        );
    }
    let sqlite = Sqlite::open(sqlite_path)?;
    let target = Postgres::open(url)?;
    block_on_here(async {
        let mut conn = target.client().await?;
        let tx = conn.transaction().await?;
        // Nobody writes the target meanwhile (a daemon started too early).
        tx.query(
            "SELECT pg_advisory_xact_lock($1), pg_advisory_xact_lock($2)",
            &[&BATCH_LOCK, &HUB_LOCK],
        )
        .await?;
        for table in DATA_TABLES {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {table})");
            if q::one(&tx, &sql, &[]).await?.get::<_, bool>(0) {
                bail!(
                    "the PostgreSQL catalog {url} is not empty (table {table} has rows): migrate-catalog copies into an empty catalog only; give it a new database"
                );
            }
        }
        // One read transaction: the copy is one moment of the SQLite catalog.
        let src = sqlite.connection();
        src.execute_batch("BEGIN")?;
        let mut report = CopyReport::default();
        for (table, columns) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let names = names.join(", ");
            let types: Vec<Type> = columns
                .iter()
                .map(|(_, c)| match c {
                    Text | NullText => Type::TEXT,
                    Int | NullInt => Type::INT8,
                    Bool => Type::BOOL,
                    NullBytes => Type::BYTEA,
                })
                .collect();
            let sink = tx
                .copy_in(&format!(
                    "COPY {table} ({names}) FROM STDIN (FORMAT binary)"
                ))
                .await?;
            let writer = BinaryCopyInWriter::new(sink, &types);
            let mut writer = std::pin::pin!(writer);
            let mut stmt = src.prepare(&format!("SELECT {names} FROM {table}"))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let mut values: Vec<Box<dyn ToSql + Sync + Send>> =
                    Vec::with_capacity(columns.len());
                for (i, (_, col)) in columns.iter().enumerate() {
                    values.push(match col {
                        Text => Box::new(row.get::<_, String>(i)?),
                        NullText => Box::new(row.get::<_, Option<String>>(i)?),
                        Int => Box::new(row.get::<_, i64>(i)?),
                        NullInt => Box::new(row.get::<_, Option<i64>>(i)?),
                        Bool => Box::new(row.get::<_, i64>(i)? != 0),
                        NullBytes => Box::new(row.get::<_, Option<Vec<u8>>>(i)?),
                    });
                }
                let refs: Vec<&(dyn ToSql + Sync)> = values
                    .iter()
                    .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                writer
                    .as_mut()
                    .write(&refs)
                    .await
                    .with_context(|| format!("cannot copy a row of {table}"))?;
            }
            let n = writer
                .as_mut()
                .finish()
                .await
                .with_context(|| format!("cannot copy {table}"))?;
            report.tables.push((table, n));
        }
        // Outbox ids are never reused: continue after the highest SQLite
        // ever handed out, not only the highest still there.
        let last_id: i64 = src.query_row(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'syndicate_outbox'), 0),
                        coalesce((SELECT max(id) FROM syndicate_outbox), 0))",
            [],
            |r| r.get(0),
        )?;
        if last_id > 0 {
            tx.query(
                "SELECT setval(pg_get_serial_sequence('syndicate_outbox', 'id'), $1)",
                &[&last_id],
            )
            .await?;
        }
        let last_seq: i64 = src.query_row(
            "SELECT coalesce(max(seq), 0) FROM operator_commands",
            [],
            |r| r.get(0),
        )?;
        if last_seq > 0 {
            tx.query(
                "SELECT setval(pg_get_serial_sequence('operator_commands', 'seq'), $1)",
                &[&last_seq],
            )
            .await?;
        }
        src.execute_batch("COMMIT")?;
        tx.commit()
            .await
            .context("cannot commit the copy into PostgreSQL")?;
        Ok(report)
    })?
}
