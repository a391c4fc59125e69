//! The benchmark corpus generator (`examples/gen_corpus.rs`) is deterministic
//! and writes articles feedwire reads the way the generator meant them.

#[path = "../benches/support/corpus.rs"]
mod corpus;

use feedwire::article::Format;
use feedwire::ingest::{IngestOptions, parse};
use std::collections::BTreeMap;
use std::path::Path;

fn opts() -> IngestOptions {
    IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 4 << 20,
        now: chrono::Utc::now(),
        limits: Default::default(),
    }
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn same_seed_same_bytes_and_every_file_parses_as_generated() {
    const N: u64 = 20;
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    corpus::write_corpus(&a.path().join("wire"), Some(&a.path().join("hugo")), N, 7).unwrap();
    corpus::write_corpus(&b.path().join("wire"), Some(&b.path().join("hugo")), N, 7).unwrap();
    let posts = |d: &Path| d.join("hugo/content/posts");
    let wire_a = read_dir(&a.path().join("wire"));
    assert_eq!(wire_a.len(), N as usize);
    assert_eq!(
        wire_a,
        read_dir(&b.path().join("wire")),
        "wire bytes differ"
    );
    assert_eq!(
        read_dir(&posts(a.path())),
        read_dir(&posts(b.path())),
        "Markdown differs"
    );
    assert!(a.path().join("hugo/hugo.toml").is_file());

    let name_re = regex::Regex::new(r"^\d{6}_[0-9a-f]{16}\.txt$").unwrap();
    let mut categories = std::collections::BTreeSet::new();
    for i in 0..N {
        let g = corpus::article(7, i);
        let name = g.wire_name();
        assert!(name_re.is_match(&name), "{name}");
        let art = parse(&name, &wire_a[&name], &opts()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(art.format, Format::Wire);
        assert_eq!(art.id, g.id);
        assert_eq!(art.category(), Some(g.category), "{name}");
        assert_eq!(art.title, g.title, "{name}");
        assert_eq!(art.dateline.as_deref(), g.dateline, "{name}");
        assert_eq!(art.lead, g.lead, "{name}");
        assert_eq!(art.paragraphs.len(), g.paragraphs.len(), "{name}");
        assert_eq!(art.captions.len(), g.captions.len(), "{name}");
        assert_eq!(art.authors, g.authors, "{name}");
        assert_eq!(art.see_more, g.see_more, "{name}");
        categories.insert(g.category);

        let md_name = g.markdown_name();
        let md = std::fs::read(posts(a.path()).join(&md_name)).unwrap();
        let art = parse(&md_name, &md, &opts()).unwrap_or_else(|e| panic!("{md_name}: {e}"));
        assert_eq!(art.format, Format::Markdown);
        assert_eq!(art.id, g.id);
        assert_eq!(art.title, g.title);
        assert_eq!(art.categories, vec![g.category.to_string()]);
        assert_eq!(art.authors, g.authors);
        assert_eq!(art.lead, g.lead);
        assert_eq!(art.published.unwrap().to_rfc3339(), g.date_rfc3339());
    }
    assert!(categories.len() > 5, "{categories:?}");
    assert!(corpus::CATEGORIES.len() >= 12);
    // Another seed gives another corpus.
    assert_ne!(corpus::article(8, 0), corpus::article(7, 0));
}
