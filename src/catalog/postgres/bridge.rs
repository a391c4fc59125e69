//! The one place the synchronous catalog meets the async PostgreSQL client.
//!
//! The catalog's interface is synchronous: the pipeline runs on a plain
//! thread, `status` and the other commands have no runtime at all, and the
//! page renderer, the hub and the delivery worker call it from a thread of
//! their own, `spawn_blocking` or `block_in_place`. The client's connections
//! are driven by a small runtime owned by this module (two workers, started
//! on first use), never by the daemon's: a slow query can neither starve the
//! HTTP server of workers nor stop because the caller's runtime is busy.
//!
//! [`block_on`] runs a query future to completion from any of those places:
//! - outside any runtime: on the calling thread (the connection's I/O runs on
//!   this module's workers);
//! - inside a multi-threaded runtime (a worker, the thread in its
//!   `block_on`, a blocking-pool thread): through `block_in_place`, which
//!   hands that worker's other tasks to another thread first, so no worker
//!   of the daemon's runtime is ever blocked on the database;
//! - inside a current-thread runtime (tests): on a scoped helper thread, since
//!   that runtime can neither be blocked in place nor nest a `block_on`.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The catalog's runtime, started on first use.
fn runtime() -> anyhow::Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("feedwire-catalog")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("cannot start the PostgreSQL catalog's runtime: {e}"))
}

/// Run `fut` to completion on the catalog's runtime, from whatever context
/// the caller is in (see the module doc).
pub(crate) fn block_on<F>(fut: F) -> anyhow::Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    Ok(match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => rt.block_on(fut),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| rt.block_on(fut)),
        Ok(_) => std::thread::scope(|s| {
            s.spawn(|| rt.block_on(fut))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
    })
}

/// Like [`block_on`], for futures that are not `Send` (the copy from SQLite
/// holds SQLite statements across awaits): only where no runtime is entered,
/// i.e. the command line.
pub(crate) fn block_on_here<F: Future>(fut: F) -> anyhow::Result<F::Output> {
    if Handle::try_current().is_ok() {
        anyhow::bail!("this catalog operation runs only outside an async runtime");
    }
    Ok(runtime()?.block_on(fut))
}

/// Run `fut` in the background on the catalog's runtime (a listening
/// connection, which must outlive any one call).
pub(crate) fn spawn<F>(fut: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime()?.spawn(fut);
    Ok(())
}
