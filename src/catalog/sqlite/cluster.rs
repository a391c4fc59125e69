//! SQLite is one instance's catalog (a `[cluster]` needs PostgreSQL, and
//! the configuration refuses it here): that instance always leads, its
//! writes need no fence, no other instance serves its documents, and nothing
//! ever notifies it.

use super::{Sqlite, write_transaction_on};
use crate::catalog::cluster::{
    ClusterBackend, Election, InstanceInfo, LeaseInfo, Member, Notifications, PublishedDocument,
    Role, SharedDocument, Term,
};
use anyhow::Result;
use rusqlite::params;
use std::time::Duration;

impl ClusterBackend for Sqlite {
    fn set_fence(&mut self, _term: Option<Term>) {}

    fn elect(&self, me: &Member, _lease: Duration, _take_over: bool) -> Result<Election> {
        Ok(Election::Won(Term {
            holder: me.token.clone(),
            number: 0,
        }))
    }

    fn renew(&self, _term: &Term, _lease: Duration) -> Result<bool> {
        Ok(true)
    }

    fn resign(&self, _term: &Term) -> Result<()> {
        Ok(())
    }

    fn lease(&self) -> Result<Option<LeaseInfo>> {
        Ok(None)
    }

    fn heartbeat(&self, _me: &Member, _role: Role, _departed_after: Duration) -> Result<usize> {
        Ok(0)
    }

    fn instances(&self) -> Result<Vec<InstanceInfo>> {
        Ok(Vec::new())
    }

    /// The versions only: the one instance serves the bytes it published.
    fn record_published_documents(&self, docs: &[PublishedDocument<'_>]) -> Result<()> {
        write_transaction_on(&self.conn, |tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO published(path, hash, at) VALUES(?1, ?2, ?3)
                 ON CONFLICT(path) DO UPDATE SET hash = excluded.hash, at = excluded.at
                 WHERE published.hash IS NOT excluded.hash OR published.at IS NOT excluded.at",
            )?;
            for d in docs {
                stmt.execute(params![d.path, d.hash, d.first_published.timestamp()])?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn published_documents_since(&self, _seq: i64) -> Result<Vec<SharedDocument>> {
        Ok(Vec::new())
    }

    fn published_document(&self, _path: &str) -> Result<Option<SharedDocument>> {
        Ok(None)
    }

    fn listen(&self) -> Result<Notifications> {
        Ok(Notifications::none())
    }

    fn release_claims(&self, _token: &str) -> Result<usize> {
        Ok(0)
    }
}
