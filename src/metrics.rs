//! Counters the daemon keeps for `/metrics` (Prometheus text format).
//!
//! Plain atomics, no registry crate: the set is small and fixed, and the
//! daemon must stay lean.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Upper bounds (seconds) of the event-to-publish latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A labelled counter: its name and its rendered label set.
type CounterKey = (&'static str, String);

#[derive(Default)]
pub struct Metrics {
    pub articles: AtomicU64,
    pub rejected_files: AtomicU64,
    pub publishes: AtomicU64,
    pub documents_written: AtomicU64,
    /// Batches that failed (and were retried): nonzero means look at the log.
    pub batch_failures: AtomicU64,
    /// Set once the first publish is done: `/healthz` answers 200 from then on.
    pub ready: AtomicBool,
    latency_counts: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Keyed by static route labels: counting a request allocates nothing.
    http: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Extra gauges other stages report (delivery backlog…).
    gauges: Mutex<BTreeMap<String, (String, f64)>>,
    /// Labelled counters other stages report (delivery failures per
    /// target…), keyed by name and rendered label set.
    counters: Mutex<BTreeMap<CounterKey, (&'static str, u64)>>,
}

impl Metrics {
    /// Record the time from a file event to its feeds being published.
    pub fn observe_latency(&self, seconds: f64) {
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.latency_counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn count_request(&self, route: &'static str, status: u16) {
        *self
            .http
            .lock()
            .expect("metrics lock")
            .entry((route, status))
            .or_default() += 1;
    }

    pub fn set_gauge(&self, name: &str, help: &str, value: f64) {
        self.gauges
            .lock()
            .expect("metrics lock")
            .insert(name.to_string(), (help.to_string(), value));
    }

    /// Add `n` to the counter `name` with these labels. Every label value
    /// must come from a bounded set (a kind, a configured name or URL): a
    /// value a stranger chose would grow `/metrics` without limit.
    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        n: u64,
    ) {
        self.counters
            .lock()
            .expect("metrics lock")
            .entry((name, render_labels(labels)))
            .or_insert((help, 0))
            .1 += n;
    }

    /// The current value of a labelled counter (0 when never added to).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        self.counters
            .lock()
            .expect("metrics lock")
            .get(&(name, render_labels(labels)))
            .map_or(0, |c| c.1)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let g = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        g(
            &mut out,
            "feedwire_articles",
            "gauge",
            "Articles in the catalog.",
            self.articles.load(Ordering::Relaxed),
        );
        g(
            &mut out,
            "feedwire_rejected_files",
            "gauge",
            "Files currently rejected.",
            self.rejected_files.load(Ordering::Relaxed),
        );
        g(
            &mut out,
            "feedwire_publishes_total",
            "counter",
            "Publish rounds.",
            self.publishes.load(Ordering::Relaxed),
        );
        g(
            &mut out,
            "feedwire_documents_written_total",
            "counter",
            "Feed documents written to disk.",
            self.documents_written.load(Ordering::Relaxed),
        );
        g(
            &mut out,
            "feedwire_batch_failures_total",
            "counter",
            "Batches that failed and were retried by a full reconciliation.",
            self.batch_failures.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP feedwire_publish_latency_seconds Time from a file event to its feeds being published."
        );
        let _ = writeln!(out, "# TYPE feedwire_publish_latency_seconds histogram");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "feedwire_publish_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "feedwire_publish_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "feedwire_publish_latency_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "feedwire_publish_latency_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP feedwire_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE feedwire_http_requests_total counter");
        for ((route, status), n) in self.http.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "feedwire_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        for (name, (help, v)) in self.gauges.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let mut last = "";
        for ((name, labels), (help, v)) in self.counters.lock().expect("metrics lock").iter() {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
        out
    }
}

/// `k="v",…` with each value escaped.
fn render_labels(labels: &[(&'static str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}{k}=\"{}\"", escape_label(v));
    }
    out
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_counters_render_once_per_name_with_escaped_labels() {
        let m = Metrics::default();
        let help = "Failed attempts.";
        m.add(
            "feedwire_x_total",
            help,
            &[("kind", "hub"), ("target", "http://h/\"q\"")],
            2,
        );
        m.add(
            "feedwire_x_total",
            help,
            &[("kind", "partner"), ("target", "a")],
            1,
        );
        m.add(
            "feedwire_x_total",
            help,
            &[("kind", "partner"), ("target", "a")],
            1,
        );
        let text = m.render();
        assert_eq!(
            text.matches("# TYPE feedwire_x_total counter").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("feedwire_x_total{kind=\"hub\",target=\"http://h/\\\"q\\\"\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("feedwire_x_total{kind=\"partner\",target=\"a\"} 2"),
            "{text}"
        );
        assert_eq!(
            m.counter("feedwire_x_total", &[("kind", "partner"), ("target", "a")]),
            2
        );
    }
}
