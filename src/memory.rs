//! Handing freed heap memory back to the operating system.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena for
//! its next allocation, and returns little of it to the system on its own.
//! The daemon's work comes in bursts on several threads (the start-up
//! publish renders and checks thousands of documents in parallel; a load of
//! HTTP requests compresses on every worker), and it idles for hours
//! between them, so freed memory would otherwise stay resident for the life
//! of the process: over 100 000 articles, a daemon at 65 MiB after its
//! start-up publish went to 41 MiB after one `malloc_trim`, with nothing
//! it holds released.
//!
//! [`Trim`] is the policy: the pipeline thread calls it when it goes idle,
//! and it trims after work, or after a while in any case (what HTTP
//! workers freed), never more often than [`Trim::MIN_INTERVAL`]: a trim
//! walks every arena under its lock, so it is kept off the busy path.
//! Elsewhere than glibc it does nothing.

use std::time::{Duration, Instant};

/// When to hand freed memory back (see the module's documentation).
pub struct Trim {
    /// Work was done since the last trim.
    due: bool,
    last: Instant,
}

impl Default for Trim {
    fn default() -> Self {
        Trim::new()
    }
}

impl Trim {
    /// Two trims are at least this far apart.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
    /// Without work of our own, a trim this often for what other threads
    /// (HTTP workers) freed.
    pub const AT_LEAST_EVERY: Duration = Duration::from_secs(60);

    pub fn new() -> Trim {
        Trim {
            due: false,
            last: Instant::now(),
        }
    }

    /// Work that allocated and freed a lot has just finished.
    pub fn after_work(&mut self) {
        self.due = true;
    }

    /// The caller has nothing to do right now: trim if it is time.
    pub fn when_idle(&mut self, now: Instant) {
        let since = now.saturating_duration_since(self.last);
        let time = if self.due {
            since >= Self::MIN_INTERVAL
        } else {
            since >= Self::AT_LEAST_EVERY
        };
        if time {
            release_free_memory();
            self.due = false;
            self.last = now;
        }
    }
}

/// Return the free memory the allocator holds to the system now.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = Instant::now();
        // SAFETY: malloc_trim only reorganises the allocator's own free
        // lists; it takes the arena locks itself and may be called from any
        // thread at any time.
        let released = unsafe { libc::malloc_trim(0) } == 1;
        tracing::debug!(
            released,
            elapsed_us = started.elapsed().as_micros() as u64,
            "handed free heap memory back to the system"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_after_work_once_the_interval_has_passed_and_otherwise_rarely() {
        let start = Instant::now();
        let mut trim = Trim {
            due: false,
            last: start,
        };
        // Idle without work: only after AT_LEAST_EVERY.
        trim.when_idle(start + Trim::MIN_INTERVAL);
        assert_eq!(trim.last, start);
        trim.when_idle(start + Trim::AT_LEAST_EVERY);
        assert_eq!(trim.last, start + Trim::AT_LEAST_EVERY);
        // Work: the next idle moment past MIN_INTERVAL trims.
        let t = trim.last;
        trim.after_work();
        trim.when_idle(t + Trim::MIN_INTERVAL / 2);
        assert_eq!(trim.last, t);
        trim.when_idle(t + Trim::MIN_INTERVAL);
        assert_eq!(trim.last, t + Trim::MIN_INTERVAL);
        assert!(!trim.due);
    }
}
