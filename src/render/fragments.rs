//! Entry fragments: an entry's RSS `<item>`, Atom `<entry>` and JSON Feed
//! item, each rendered once and joined into the documents that hold it.
//!
//! A new article changes one entry of a live window of 50; rendering the
//! whole window again in three formats was most of an event's rendering
//! time. Each format's writer renders an entry the same way wherever it
//! stands (the same indentation, nothing carried over from the entry
//! before), so a document is its head and tail, written by the same crate
//! around a placeholder entry, with the fragments in the placeholder's
//! place: byte for byte what the crate writes for the whole document. The
//! unit tests below compare the two for every kind of entry, and
//! `tests/archives.rs` checks that what events publish is what a full
//! build renders. The gate still parses every joined document whole.
//!
//! A [`Fragments`] belongs to one configuration (the pipeline holds one):
//! a fragment depends on the entry and the site settings only, never on
//! the feed or page around it. Fragments are found by a key over every
//! field of the entry ([`key`]), so an edited entry is rendered again. They
//! are found in two places: a memo bounded by bytes ([`DEFAULT_BUDGET`];
//! past it the least recently used go), and the live documents HTTP
//! serves, whose bytes the store holds anyway: after a round the pipeline
//! hands their served bodies over ([`Fragments::adopt`]), and a document is
//! taken only if every fragment sits exactly where it was joined.

use super::{Context, DocKind};
use crate::article::{Category, Entry, Status};
use anyhow::Result;
use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// What the pipeline's memo may hold, in bytes of fragments: the main
/// feed's live window and newest archive page at the default
/// `feeds.max_items` (about 100 entries of ≈ 13 KB of fragments in the
/// three formats of a news article). The pipeline uses the memo for the
/// main feed only, the feed every event touches: a category's window comes
/// round once per so many events that remembering every window cost
/// 20 MiB at 100k articles for little more (BENCHMARKS.md).
pub const DEFAULT_BUDGET: usize = 2 * 1024 * 1024;

/// The key of an entry's fragments: BLAKE3 over every field (128 bits).
pub type Key = [u8; 16];

/// The key of an entry: every field that can change what any format
/// writes, each length-prefixed. The destructuring is exhaustive on
/// purpose: a field added to [`Entry`] does not compile until it is keyed.
pub fn key(entry: &Entry) -> Key {
    let Entry {
        id,
        title,
        summary,
        content_html,
        authors,
        categories,
        tags,
        image,
        language,
        dateline,
        published,
        updated,
        version,
        status,
        embargoed_until,
        correction,
        first_seen,
        content_created,
    } = entry;
    let mut h = blake3::Hasher::new();
    let text = |h: &mut blake3::Hasher, s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    let maybe_text = |h: &mut blake3::Hasher, s: &Option<String>| match s {
        Some(s) => {
            h.update(&[1]);
            text(h, s);
        }
        None => {
            h.update(&[0]);
        }
    };
    let date = |h: &mut blake3::Hasher, d: &DateTime<FixedOffset>| {
        h.update(&d.timestamp().to_le_bytes());
        h.update(&d.timestamp_subsec_nanos().to_le_bytes());
        h.update(&d.offset().local_minus_utc().to_le_bytes());
    };
    let maybe_date = |h: &mut blake3::Hasher, d: &Option<DateTime<FixedOffset>>| match d {
        Some(d) => {
            h.update(&[1]);
            date(h, d);
        }
        None => {
            h.update(&[0]);
        }
    };
    text(&mut h, id);
    text(&mut h, title);
    maybe_text(&mut h, summary);
    text(&mut h, content_html);
    h.update(&(authors.len() as u64).to_le_bytes());
    for a in authors {
        text(&mut h, a);
    }
    h.update(&(categories.len() as u64).to_le_bytes());
    for Category { name, slug } in categories {
        text(&mut h, name);
        text(&mut h, slug);
    }
    h.update(&(tags.len() as u64).to_le_bytes());
    for t in tags {
        text(&mut h, t);
    }
    maybe_text(&mut h, image);
    text(&mut h, language);
    maybe_text(&mut h, dateline);
    date(&mut h, published);
    date(&mut h, updated);
    h.update(&version.to_le_bytes());
    h.update(&[match status {
        Status::Usable => 0,
        Status::Withheld => 1,
        Status::Canceled => 2,
    }]);
    maybe_date(&mut h, embargoed_until);
    maybe_text(&mut h, correction);
    maybe_date(&mut h, first_seen);
    maybe_date(&mut h, content_created);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// A bounded memo of rendered fragments, shared by the threads that render
/// a round's documents; and the fragments inside the live documents HTTP
/// serves ([`Fragments::adopt`]), which cost no memory of their own.
pub struct Fragments {
    budget: usize,
    memo: Mutex<Memo>,
    /// Live documents joined in this round, with where each fragment is.
    pending: Mutex<HashMap<String, Joined>>,
    served: Mutex<Served>,
    /// Fragments rendered (not found): what the tests check reuse by.
    rendered: std::sync::atomic::AtomicUsize,
}

/// How a document uses the memo.
#[derive(Clone, Copy)]
pub struct Reuse<'a> {
    pub memo: &'a Fragments,
    /// Keep the fragments rendered for it in the memo (else they are only
    /// found again inside a served document).
    pub remember: bool,
}

impl Reuse<'_> {
    /// Each entry's fragment in this format, in order: found, or rendered
    /// by `render`.
    pub(super) fn fragments(
        self,
        kind: DocKind,
        entries: &[Entry],
        keys: &[Key],
        render: impl Fn(&Entry) -> Result<Vec<u8>>,
    ) -> Result<Vec<Arc<[u8]>>> {
        entries
            .iter()
            .zip(keys)
            .map(|(e, key)| {
                self.memo
                    .get_or_render(kind, *key, self.remember, || render(e))
            })
            .collect()
    }
}

/// A live document as joined: its kind, and each entry's key, fragment and
/// place in the bytes.
struct Joined {
    kind: DocKind,
    spans: Vec<(Key, Arc<[u8]>, Range<usize>)>,
}

/// Fragments found inside the live documents HTTP serves: a feed's window
/// differs by an entry or two from its last version, so the rest are cut
/// from that version's bytes, shared with the store that serves them.
#[derive(Default)]
struct Served {
    /// Per path: the body, and the keys of the fragments in it.
    docs: HashMap<String, (Bytes, DocKind, Vec<Key>)>,
    /// Per fragment: the path of a document holding it, and where.
    index: HashMap<(DocKind, Key), (String, Range<usize>)>,
}

#[derive(Default)]
struct Memo {
    slots: HashMap<(DocKind, Key), Slot>,
    bytes: usize,
    /// Goes up by one per use: a slot's `used` orders eviction.
    clock: u64,
}

struct Slot {
    fragment: Arc<[u8]>,
    used: u64,
}

impl Fragments {
    /// A memo holding at most about `budget` bytes of fragments.
    pub fn new(budget: usize) -> Fragments {
        Fragments {
            budget,
            memo: Mutex::default(),
            pending: Mutex::default(),
            served: Mutex::default(),
            rendered: Default::default(),
        }
    }

    /// The fragment of the entry with this key in this format: from the
    /// memo, else cut from a served document, else rendered by `render`
    /// (and kept in the memo when `remember`).
    pub(super) fn get_or_render(
        &self,
        kind: DocKind,
        key: Key,
        remember: bool,
        render: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<[u8]>> {
        {
            let mut memo = self.memo.lock().expect("fragment memo lock");
            memo.clock += 1;
            let now = memo.clock;
            if let Some(slot) = memo.slots.get_mut(&(kind, key)) {
                slot.used = now;
                return Ok(slot.fragment.clone());
            }
        }
        {
            let served = self.served.lock().expect("served fragments lock");
            if let Some((path, range)) = served.index.get(&(kind, key))
                && let Some((body, _, _)) = served.docs.get(path)
                && let Some(fragment) = body.get(range.clone())
            {
                return Ok(fragment.into());
            }
        }
        // Rendered outside the lock: two threads may render the same
        // fragment at once, and the second insert simply replaces the first.
        let fragment: Arc<[u8]> = render()?.into();
        self.rendered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !remember {
            return Ok(fragment);
        }
        let mut memo = self.memo.lock().expect("fragment memo lock");
        memo.clock += 1;
        let now = memo.clock;
        memo.bytes += fragment.len();
        if let Some(old) = memo.slots.insert(
            (kind, key),
            Slot {
                fragment: fragment.clone(),
                used: now,
            },
        ) {
            memo.bytes -= old.fragment.len();
        }
        if memo.bytes > self.budget {
            memo.evict_to(self.budget / 4 * 3);
        }
        Ok(fragment)
    }

    /// Bytes of fragments held.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.memo.lock().expect("fragment memo lock").bytes
    }

    /// Note where a live document joined in this round holds each fragment.
    fn joined(&self, path: String, joined: Joined) {
        self.pending
            .lock()
            .expect("pending fragments lock")
            .insert(path, joined);
    }

    /// After a round is published: take the live documents joined in it
    /// whose served body (`served`, by path: what HTTP now answers) holds
    /// exactly the fragments they were joined from, so that the next
    /// round cuts its unchanged entries from there. A document the gate
    /// refused, or one served differently, is not taken, and any earlier
    /// version of it is let go.
    pub fn adopt(&self, served: impl Fn(&str) -> Option<Bytes>) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("pending fragments lock"));
        let mut held = self.served.lock().expect("served fragments lock");
        for (path, joined) in pending {
            if let Some((_, kind, keys)) = held.docs.remove(&path) {
                for key in keys {
                    if held
                        .index
                        .get(&(kind, key))
                        .is_some_and(|(p, _)| *p == path)
                    {
                        held.index.remove(&(kind, key));
                    }
                }
            }
            let Some(body) = served(&path) else { continue };
            let same = joined
                .spans
                .iter()
                .all(|(_, fragment, range)| body.get(range.clone()) == Some(&fragment[..]));
            if !same {
                continue;
            }
            let mut keys = Vec::with_capacity(joined.spans.len());
            for (key, _, range) in joined.spans {
                held.index.insert((joined.kind, key), (path.clone(), range));
                keys.push(key);
            }
            held.docs.insert(path, (body, joined.kind, keys));
        }
    }

    /// How many fragments were rendered rather than found.
    #[cfg(test)]
    fn rendered(&self) -> usize {
        self.rendered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many served documents fragments are cut from.
    #[cfg(test)]
    fn served_documents(&self) -> usize {
        self.served
            .lock()
            .expect("served fragments lock")
            .docs
            .len()
    }
}

/// Join a document from its head, its entries' fragments and its tail; a
/// live document (not an archive page, which HTTP reads from the feeds
/// folder) is noted for [`Fragments::adopt`].
pub(super) fn join_document(
    ctx: &Context<'_>,
    kind: DocKind,
    head: &[u8],
    fragments: Vec<Arc<[u8]>>,
    separator: &[u8],
    tail: &[u8],
) -> Vec<u8> {
    let out = join(head, &fragments, separator, tail);
    if let (Some((reuse, keys)), None, None) = (ctx.fragments, ctx.page, &ctx.info.partner) {
        let mut at = head.len();
        let spans = keys
            .iter()
            .zip(fragments)
            .map(|(key, fragment)| {
                let range = at..at + fragment.len();
                at = range.end + separator.len();
                (*key, fragment, range)
            })
            .collect();
        reuse
            .memo
            .joined(ctx.info.path(kind), Joined { kind, spans });
    }
    out
}

impl Memo {
    /// Drop the least recently used slots until at most `target` bytes are
    /// held. Sorting every slot is fine: this runs once per quarter of the
    /// budget rendered anew.
    fn evict_to(&mut self, target: usize) {
        let mut ages: Vec<(u64, (DocKind, Key))> =
            self.slots.iter().map(|(k, s)| (s.used, *k)).collect();
        ages.sort_unstable_by_key(|(used, _)| *used);
        for (_, k) in ages {
            if self.bytes <= target {
                break;
            }
            if let Some(slot) = self.slots.remove(&k) {
                self.bytes -= slot.fragment.len();
            }
        }
    }
}

/// Where `needle` first occurs in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where `needle` last occurs in `haystack`.
pub(super) fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// `head`, then the fragments, then `tail`, in one allocation.
fn join(head: &[u8], fragments: &[Arc<[u8]>], separator: &[u8], tail: &[u8]) -> Vec<u8> {
    let body: usize = fragments.iter().map(|f| f.len() + separator.len()).sum();
    let mut out = Vec::with_capacity(head.len() + body + tail.len());
    out.extend_from_slice(head);
    for (i, f) in fragments.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator);
        }
        out.extend_from_slice(f);
    }
    out.extend_from_slice(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Category;
    use crate::catalog::{FeedKey, Tombstone};
    use crate::config::Config;
    use crate::render::{Context, FeedInfo, render_with};
    use chrono::{Duration, TimeZone, Utc};
    use std::path::Path;

    fn cfg(extra: &str) -> Config {
        Config::from_toml(
            &format!(
                "[site]\ntag_authority = \"t.example,2026\"\nbase_url = \"https://tin.example\"\nlanguage = \"vi\"\n{extra}"
            ),
            Path::new("/tmp/config.toml"),
        )
        .unwrap()
    }

    type Variant = Box<dyn Fn(&mut Entry)>;

    /// Entries covering what changes an entry's markup: with and without
    /// lead, authors, image, categories, tags, correction; another
    /// language; an embargo mark; text that looks like the markers the
    /// joiner looks for; every offset.
    fn entries() -> Vec<Entry> {
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let t = tz.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let base = Entry {
            id: "2026/tin-1".into(),
            title: "Tiêu đề <b>đậm</b> & \"trích\"".into(),
            summary: Some("Tóm tắt".into()),
            content_html: "<p>Nội dung</p>".into(),
            authors: vec!["Lê A".into()],
            categories: vec![Category::new("Thể thao")],
            tags: vec!["bóng đá".into()],
            image: Some("https://img.example/a.jpg".into()),
            language: "vi".into(),
            dateline: Some("Huế".into()),
            published: t,
            updated: t + Duration::hours(1),
            version: 1,
            status: Status::Usable,
            embargoed_until: None,
            correction: None,
            first_seen: None,
            content_created: None,
        };
        let mut out = vec![base.clone()];
        let variants: Vec<Variant> = vec![
            Box::new(|e| {
                e.summary = None;
                e.authors.clear();
                e.image = None;
            }),
            Box::new(|e| {
                e.categories.clear();
                e.tags.clear();
                e.dateline = None;
            }),
            Box::new(|e| {
                e.language = "en".into();
                e.correction = Some("Sửa <tên>".into());
                e.version = 2;
            }),
            Box::new(|e| {
                e.status = Status::Withheld;
                e.embargoed_until = Some(e.published + Duration::days(1));
            }),
            Box::new(|e| {
                e.content_html =
                    "<p>\n    <item>\n  <entry>\n  \"items\": []</item></entry>]]></p>".into();
                e.title = "</item>\n    <item>".into();
                e.summary = Some("]]> \n  ]\n}".into());
            }),
            Box::new(|e| {
                e.published = e
                    .published
                    .with_timezone(&FixedOffset::west_opt(5 * 3600).unwrap());
                e.updated = Utc.timestamp_opt(1_800_000_000, 5).unwrap().fixed_offset();
                e.authors = vec!["A".into(), "B".into(), "C".into()];
                e.categories.push(Category::new("Kinh tế"));
                e.image = Some("https://img.example/b.png?x=1&y=2".into());
            }),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut e = base.clone();
            e.id = format!("2026/tin-{}", i + 2);
            change(&mut e);
            out.push(e);
        }
        out
    }

    fn tombstones() -> Vec<Tombstone> {
        vec![Tombstone {
            id: "2026/da-go".into(),
            killed_at: Utc.timestamp_opt(1_780_000_000, 0).unwrap(),
            reason: Some("sai <sự thật>".into()),
            feeds: vec![FeedKey::Main],
            expires_at: Utc.timestamp_opt(1_790_000_000, 0).unwrap(),
        }]
    }

    /// Every format, joined from fragments (from a fresh memo, then from
    /// the memo filled by the first pass), is byte for byte what the crate
    /// writes for the whole document: live documents and archive pages,
    /// with and without hubs and tombstones, each subset of the entries.
    #[test]
    fn joined_documents_are_the_documents_the_crates_write() {
        let all = entries();
        let gone = tombstones();
        for cfg in [
            cfg(""),
            cfg("[websub]\nhubs = [\"https://hub.example/\"]\n"),
        ] {
            let memo = Fragments::new(DEFAULT_BUDGET);
            for info in [
                FeedInfo::new(&cfg, FeedKey::Main, None),
                FeedInfo::new(&cfg, FeedKey::Category("the-thao".into()), None),
            ] {
                for (page, stones) in [(None, &gone[..]), (None, &[][..]), (Some(3), &[][..])] {
                    for n in 0..=all.len() {
                        for start in [0, all.len() - n] {
                            let entries = &all[start..start + n];
                            let keys: Vec<Key> = entries.iter().map(key).collect();
                            for pass in 0..2 {
                                for kind in DocKind::FEEDS {
                                    let ctx = |fragments| Context {
                                        cfg: &cfg,
                                        info: &info,
                                        updated: all[0].updated,
                                        tombstones: stones,
                                        page,
                                        fragments,
                                    };
                                    let whole = render_with(&ctx(None), entries, kind).unwrap();
                                    let reuse = Reuse {
                                        memo: &memo,
                                        remember: true,
                                    };
                                    let joined =
                                        render_with(&ctx(Some((reuse, &keys[..]))), entries, kind)
                                            .unwrap();
                                    assert!(
                                        whole == joined,
                                        "{kind:?} page {page:?} entries {start}..{} pass {pass}:\n--- whole\n{}\n--- joined\n{}",
                                        start + n,
                                        String::from_utf8_lossy(&whole),
                                        String::from_utf8_lossy(&joined)
                                    );
                                }
                            }
                        }
                    }
                }
            }
            assert!(memo.held_bytes() > 0, "the joined path was taken");
        }
    }

    /// Any change to an entry changes its key, the time zone of a date
    /// included (the same instant is written differently).
    #[test]
    fn every_field_is_in_the_key() {
        let all = entries();
        let mut keys: Vec<Key> = all.iter().map(key).collect();
        let mut e = all[0].clone();
        e.published = e
            .published
            .with_timezone(&FixedOffset::east_opt(0).unwrap());
        assert_eq!(e.published, all[0].published, "the same instant");
        keys.push(key(&e));
        let mut e = all[0].clone();
        e.first_seen = Some(e.published);
        keys.push(key(&e));
        let mut e = all[0].clone();
        e.tags = vec!["bóng".into(), "đá".into()];
        keys.push(key(&e));
        let mut e = all[0].clone();
        e.tags = vec!["bóngđá".into()];
        keys.push(key(&e));
        let unique: std::collections::HashSet<Key> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len());
        assert_eq!(key(&all[0]), key(&all[0].clone()));
    }

    /// The memo stays within its budget, keeping the fragments used last.
    #[test]
    fn the_memo_keeps_to_its_budget() {
        let memo = Fragments::new(10_000);
        let render = |i: u8| move || Ok(vec![i; 1_000]);
        for i in 0..50u8 {
            let mut k = [0u8; 16];
            k[0] = i;
            let f = memo
                .get_or_render(DocKind::Rss, k, true, render(i))
                .unwrap();
            assert_eq!(&f[..], &[i; 1_000][..]);
            assert!(memo.held_bytes() <= 10_000, "{}", memo.held_bytes());
        }
        // The newest is held: asking again does not render.
        let mut k = [0u8; 16];
        k[0] = 49;
        memo.get_or_render(DocKind::Rss, k, true, || panic!("rendered again"))
            .unwrap();
    }

    /// A feed whose fragments are not remembered cuts its unchanged
    /// entries from the version HTTP serves once it is adopted: the next
    /// window (one entry new, the oldest gone) renders one entry per
    /// format, and gives the bytes the crate writes whole. A served body
    /// other than the one joined is not adopted.
    #[test]
    fn unchanged_entries_are_cut_from_the_served_version() {
        let cfg = cfg("");
        let all = entries();
        let info = FeedInfo::new(&cfg, FeedKey::Category("the-thao".into()), None);
        let memo = Fragments::new(DEFAULT_BUDGET);
        let reuse = Some(Reuse {
            memo: &memo,
            remember: false,
        });
        let window = &all[1..];
        let first = crate::render::render_feed(&cfg, &info, window, &[], reuse).unwrap();
        assert_eq!(memo.rendered(), 3 * window.len());
        assert_eq!(memo.held_bytes(), 0, "not remembered");
        // Served as rendered: adopted.
        memo.adopt(|path| {
            first
                .iter()
                .find(|d| d.path == path)
                .map(|d| Bytes::from(d.bytes.clone()))
        });
        assert_eq!(memo.served_documents(), 3);
        let next = &all[..all.len() - 1];
        let second = crate::render::render_feed(&cfg, &info, next, &[], reuse).unwrap();
        assert_eq!(
            memo.rendered(),
            3 * window.len() + 3,
            "one new entry per format"
        );
        let whole = crate::render::render_feed(&cfg, &info, next, &[], None).unwrap();
        for (a, b) in whole.iter().zip(&second) {
            assert!(a.bytes == b.bytes, "{} differs", a.path);
        }
        // Served as something else (the gate refused it, say): let go.
        memo.adopt(|_| Some(Bytes::from_static(b"not what was joined")));
        assert_eq!(memo.served_documents(), 0);
        let before = memo.rendered();
        crate::render::render_feed(&cfg, &info, next, &[], reuse).unwrap();
        assert_eq!(memo.rendered(), before + 3 * next.len());
    }
}
