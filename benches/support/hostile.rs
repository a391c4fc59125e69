//! Hostile article shapes of a chosen size: deep nesting, expanding
//! constructs and long lines, in Markdown and in the wire layout.
//!
//! Shared by the criterion bench (`benches/ingest.rs`) and the scaling table
//! (`examples/ingest_scaling.rs`) through `#[path]`, so the figures in both
//! come from the same bytes. Every generator returns about `size` bytes (never
//! more than `size` + one repeated unit) and a valid title, so what is measured
//! is the body, not an early "missing title".
#![allow(dead_code)]

/// One shape: a name for tables, the file name that selects its parser, and
/// its generator.
pub struct Shape {
    pub name: &'static str,
    pub file_name: &'static str,
    pub make: fn(usize) -> Vec<u8>,
}

/// `unit` repeated until `size` bytes (at least once).
fn fill(unit: &str, size: usize) -> String {
    unit.repeat((size / unit.len()).max(1))
}

/// A Markdown file: `# Title` then `body`.
fn md(body: String) -> Vec<u8> {
    format!("# Hostile\n\n{body}\n").into_bytes()
}

/// A wire file whose one body paragraph is `body`.
fn wire(body: String) -> Vec<u8> {
    format!("Thời sự\n\nHostile\n\nTTXVN - {body}/.\n").into_bytes()
}

/// Generators that produce `open` k times, `middle`, then `close` k times.
fn nest(open: &str, middle: &str, close: &str, size: usize) -> String {
    let k = (size / (open.len() + close.len())).max(1);
    format!("{}{middle}{}", open.repeat(k), close.repeat(k))
}

pub const SHAPES: &[Shape] = &[
    // The example: one line of `>` quote markers, each a level deeper.
    Shape {
        name: "md_quote_one_line",
        file_name: "q.md",
        make: |n| md(format!("{}x", fill("> ", n))),
    },
    Shape {
        name: "md_quote_no_space",
        file_name: "q.md",
        make: |n| md(format!("{}x", fill(">", n))),
    },
    // Every line one `>` deeper than the last (lazy continuation of a paragraph).
    Shape {
        name: "md_quote_staircase",
        file_name: "q.md",
        make: |n| {
            let mut s = String::new();
            let mut depth = 1;
            while s.len() < n {
                s.push_str(&">".repeat(depth));
                s.push_str(" x\n");
                depth += 1;
            }
            md(s)
        },
    },
    Shape {
        name: "md_list_one_line",
        file_name: "l.md",
        make: |n| md(format!("{}x", fill("- ", n))),
    },
    Shape {
        name: "md_ordered_list_one_line",
        file_name: "l.md",
        make: |n| md(format!("{}x", fill("1. ", n))),
    },
    Shape {
        name: "md_quote_list_mixed",
        file_name: "l.md",
        make: |n| md(format!("{}x", fill("> - ", n))),
    },
    Shape {
        name: "md_emphasis_nested",
        file_name: "e.md",
        make: |n| md(nest("_a ", "b", "_", n)),
    },
    Shape {
        name: "md_strong_nested",
        file_name: "e.md",
        make: |n| md(nest("**a ", "b", "**", n)),
    },
    Shape {
        name: "md_links_nested",
        file_name: "k.md",
        make: |n| md(nest("[", "a", "](u)", n)),
    },
    Shape {
        name: "md_images_nested",
        file_name: "k.md",
        make: |n| md(nest("![", "a", "](u)", n)),
    },
    Shape {
        name: "md_brackets_open",
        file_name: "k.md",
        make: |n| md(fill("[a", n)),
    },
    Shape {
        name: "md_html_div_nested",
        file_name: "h.md",
        make: |n| md(format!("{}x", fill("<div>", n))),
    },
    Shape {
        name: "md_html_span_inline",
        file_name: "h.md",
        make: |n| md(format!("a {}x", fill("<span>", n))),
    },
    // Unclosed formatting elements that differ by an attribute (so HTML's
    // three-of-a-kind limit does not apply), then many paragraphs: the HTML
    // parser reopens every one of them in every paragraph.
    Shape {
        name: "md_html_formatting_reopened",
        file_name: "h.md",
        make: |n| {
            let mut s = String::from("<div>");
            let mut i = 0;
            while s.len() < n / 2 {
                s.push_str(&format!("<b title={i}>"));
                i += 1;
            }
            while s.len() < n {
                s.push_str("<p>x</p>");
            }
            md(s)
        },
    },
    Shape {
        name: "md_html_table_nested",
        file_name: "h.md",
        make: |n| md(format!("<div>{}x", fill("<table><tr><td>", n))),
    },
    // Content in a table outside its cells is moved in front of the table:
    // each move looks the table up among its parent's (growing) children.
    Shape {
        name: "md_html_foster_parented",
        file_name: "h.md",
        make: |n| md(format!("<table>{}", fill("<i>x</i>", n))),
    },
    // Formatting tags closed across a block: each close moves the block.
    Shape {
        name: "md_html_misnested_formatting",
        file_name: "h.md",
        make: |n| md(format!("<div>{}", fill("<b><p>x</b>", n))),
    },
    // One unclosed formatting tag with a long attribute, reopened in every
    // paragraph that follows.
    Shape {
        name: "md_html_reopened_attribute",
        file_name: "h.md",
        make: |n| {
            let attr = "&".repeat(n / 4);
            let mut s = format!("<div><p><b title=\"{attr}\">x</p>");
            while s.len() < n {
                s.push_str("<p>y</p>");
            }
            md(s)
        },
    },
    Shape {
        name: "md_link_long_url_ampersands",
        file_name: "h.md",
        make: |n| md(format!("[a](x{})", fill("&", n))),
    },
    Shape {
        name: "md_entities_line",
        file_name: "n.md",
        make: |n| md(fill("&amp;", n)),
    },
    Shape {
        name: "md_nbsp_entities_line",
        file_name: "n.md",
        make: |n| md(fill("&nbsp;", n)),
    },
    // Bare ampersands in raw HTML: one character to escape per input byte.
    Shape {
        name: "md_html_bare_ampersands",
        file_name: "n.md",
        make: |n| md(format!("<p>{}</p>", fill("&", n))),
    },
    Shape {
        name: "md_latin1_signs_line",
        file_name: "n.md",
        make: |n| md(fill("©", n)),
    },
    Shape {
        name: "md_numeric_entities_line",
        file_name: "n.md",
        make: |n| md(fill("&#x1F600;", n)),
    },
    // A wide header, then short rows: each row is padded to the header's width.
    Shape {
        name: "md_table_padding",
        file_name: "t.md",
        make: |n| {
            let cols = (n / 8).max(1);
            let mut s = format!("{}|\n{}|\n", "|a".repeat(cols), "|-".repeat(cols));
            while s.len() < n {
                s.push_str("x\n");
            }
            md(s)
        },
    },
    // One long link target, referenced over and over.
    Shape {
        name: "md_reference_expansion",
        file_name: "r.md",
        make: |n| {
            let url = format!("https://example.com/{}", "a".repeat(n / 2));
            let mut s = format!("[r]: {url}\n\n");
            while s.len() < n {
                s.push_str("[r] ");
            }
            md(s)
        },
    },
    Shape {
        name: "md_code_spans",
        file_name: "c.md",
        make: |n| {
            let mut s = String::new();
            let mut k = 1;
            while s.len() < n {
                s.push_str(&"`".repeat(k));
                s.push('a');
                k += 1;
            }
            md(s)
        },
    },
    Shape {
        name: "md_combining_marks",
        file_name: "u.md",
        make: |n| md(format!("a{}", fill("\u{301}", n))),
    },
    Shape {
        name: "md_yaml_nested",
        file_name: "y.md",
        make: |n| {
            let k = n / 2;
            format!(
                "---\ntitle: T\nx: {}{}\n---\nBody\n",
                "[".repeat(k),
                "]".repeat(k)
            )
            .into_bytes()
        },
    },
    // Block mappings, each key one indentation step deeper.
    Shape {
        name: "md_yaml_block_nested",
        file_name: "y.md",
        make: |n| {
            let mut s = String::from("---\ntitle: T\nx:\n");
            let mut depth = 1;
            while s.len() < n {
                s.push_str(&" ".repeat(depth));
                s.push_str("x:\n");
                depth += 1;
            }
            s.push_str(&" ".repeat(depth));
            s.push_str("y\n---\nBody\n");
            s.into_bytes()
        },
    },
    Shape {
        name: "md_yaml_sequence_one_line",
        file_name: "y.md",
        make: |n| format!("---\ntitle: T\nx: {}y\n---\nBody\n", fill("- ", n)).into_bytes(),
    },
    Shape {
        name: "md_toml_nested",
        file_name: "y.md",
        make: |n| {
            let k = n / 2;
            format!(
                "+++\ntitle = \"T\"\nx = {}{}\n+++\nBody\n",
                "[".repeat(k),
                "]".repeat(k)
            )
            .into_bytes()
        },
    },
    Shape {
        name: "md_toml_dotted_keys",
        file_name: "y.md",
        make: |n| format!("+++\ntitle = \"T\"\n{}x = 1\n+++\nBody\n", fill("a.", n)).into_bytes(),
    },
    Shape {
        name: "md_toml_inline_tables",
        file_name: "y.md",
        make: |n| {
            let k = n / 6;
            format!(
                "+++\ntitle = \"T\"\nx = {}1{}\n+++\nBody\n",
                "{a = ".repeat(k),
                "}".repeat(k)
            )
            .into_bytes()
        },
    },
    Shape {
        name: "md_yaml_aliases",
        file_name: "y.md",
        make: |n| {
            // Each level refers to the previous one ten times.
            let mut s = String::from("---\ntitle: T\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
            let mut i = 1;
            while s.len() < n {
                let refs = vec![format!("*l{}", i - 1); 10].join(", ");
                s.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
                i += 1;
            }
            s.push_str("---\nBody\n");
            s.into_bytes()
        },
    },
    Shape {
        name: "wire_entities_line",
        file_name: "w.txt",
        make: |n| wire(fill("&amp;", n)),
    },
    Shape {
        name: "wire_quotes_line",
        file_name: "w.txt",
        make: |n| wire(fill("\"", n)),
    },
    Shape {
        name: "wire_caption_marks",
        file_name: "w.txt",
        make: |n| wire(fill("(Ảnh:", n)),
    },
    Shape {
        name: "wire_many_blocks",
        file_name: "w.txt",
        make: |n| {
            let mut s = String::from("Thời sự\n\nHostile\n\n");
            while s.len() < n {
                s.push_str("x.\n\n");
            }
            s.into_bytes()
        },
    },
    Shape {
        name: "wire_combining_marks",
        file_name: "w.txt",
        make: |n| wire(format!("a{}", fill("\u{301}", n))),
    },
];

pub fn shape(name: &str) -> Option<&'static Shape> {
    SHAPES.iter().find(|s| s.name == name)
}
