//! A dry run of the HTML parser that measures what sanitising an article's
//! HTML would cost, and stops as soon as a bound is crossed.
//!
//! ammonia parses with html5ever into a reference-counted DOM, cleans it and
//! serialises it. Three parts of that are superlinear on hostile input, and
//! ammonia offers no hook to bound them:
//!
//! - html5ever's tree builder walks the stack of open elements for most tags
//!   (scope checks, implied end tags), so its work is elements × depth;
//!   4,000 nested `<div>`s or `>` quotes cost seconds.
//! - The DOM moves nodes by first finding them among their parent's children,
//!   so content the parser relocates (text inside a `<table>` but outside its
//!   cells, formatting tags closed out of order) costs siblings × moves; and
//!   formatting tags left open are reopened in every following paragraph,
//!   attributes and all, so 40 KB can become 100 MB.
//! - The serialiser rescans a text node (or attribute value) up to the next
//!   `<` or `>` after every `&` or U+0080–U+00BF character it escapes, so a
//!   line of a million ampersands is a trillion byte reads.
//!
//! This module runs html5ever's own tree builder (so the structure is exactly
//! the one ammonia will see) over a DOM that only keeps shape and counters:
//! depth, bytes created, the serialiser's scanning work and the DOM's moving
//! work. Input is fed in small slices and the run stops at the first slice
//! that crosses a bound, so the probe's own cost stays linear too.

use super::{IngestError, Limits};
use html5ever::interface::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::{Attribute, ParseOpts, QualName, local_name, ns, parse_fragment};
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::LazyLock;

/// Bytes fed to the parser between checks: small enough that a slice cannot
/// build much past a bound, large enough that feeding costs nothing.
const SLICE: usize = 1024;

/// The serialiser may read this many bytes per byte of allowed HTML while
/// looking for characters to escape (64 MB, a few milliseconds, at the
/// default cap). Reaching it takes over a thousand `&` or no-break spaces in
/// one 100 KB run of text without a tag; real paragraphs are a few KB.
const ESCAPE_WORK_PER_BYTE: u64 = 256;

/// The DOM may step over this many siblings per byte of allowed HTML while
/// moving nodes. Well-formed HTML moves none.
const MOVE_WORK_PER_BYTE: u64 = 16;

/// Can sanitising `html` cross a bound at all? Only when it holds raw HTML
/// (`well_formed` is false), or when an upper bound on the serialiser's
/// scanning, taken over the source bytes, exceeds its allowance. HTML that
/// pulldown-cmark generated from Markdown is well-formed: it nests as deep as
/// the Markdown (already bounded), and the parser neither moves nor reopens
/// anything in it. Skipping the dry run then halves the cost of a Markdown
/// article.
pub fn needed(html: &str, well_formed: bool, limits: &Limits) -> bool {
    // Source text nodes are at least as long as the parsed ones, every `&`
    // or C2 byte in the source is at most one character to escape, and only
    // `<` and `>` (which end text and tags alike) stop the count: `"` ends
    // an attribute value but not a text node.
    let allowed = limits.max_html_bytes as u64 * ESCAPE_WORK_PER_BYTE;
    if !well_formed {
        return true;
    }
    // Each such character costs at most the rest of the text: most articles
    // are settled by counting them (a loop the compiler vectorises).
    let bytes = html.as_bytes();
    let escapes: u64 = bytes
        .iter()
        .map(|&b| u64::from((b == b'&') | (b == 0xc2)))
        .sum();
    escapes * bytes.len() as u64 > allowed && escape_work(bytes, 0, b'<').0 > allowed
}

/// Check that sanitising `html` stays within `limits`, by parsing it the way
/// ammonia will and measuring. `html` is already at most `max_html_bytes`.
pub fn check(html: &str, limits: &Limits) -> Result<(), IngestError> {
    let meter = Rc::new(RefCell::new(Meter::new(limits)));
    let sink = Sink {
        meter: meter.clone(),
        document: Handle::new(Node::Document, 0),
    };
    // The same entry point and options as ammonia: a fragment in a <div>.
    let mut parser = parse_fragment(
        sink,
        ParseOpts::default(),
        QualName::new(None, ns!(html), local_name!("div")),
        vec![],
        false,
    );
    let mut start = 0;
    while start < html.len() {
        let mut end = (start + SLICE).min(html.len());
        while !html.is_char_boundary(end) {
            end += 1;
        }
        parser.process(StrTendril::from_slice(&html[start..end]));
        if let Some(e) = meter.borrow().exceeded.clone() {
            return Err(e);
        }
        start = end;
    }
    parser.finish();
    match meter.borrow().exceeded.clone() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What the probe has seen so far, and the first bound crossed.
struct Meter {
    nodes: Vec<Slot>,
    /// Elements may sit this deep below the fragment's root.
    max_depth: usize,
    max_nesting: usize,
    dom_bytes: usize,
    max_dom_bytes: usize,
    escape_work: u64,
    max_escape_work: u64,
    move_work: u64,
    max_move_work: u64,
    exceeded: Option<IngestError>,
}

/// The shape of one node: enough to follow the DOM's moves and merges.
#[derive(Default)]
struct Slot {
    parent: Option<usize>,
    children: Vec<usize>,
    depth: usize,
    is_text: bool,
    /// Text nodes: characters to escape seen since the last `<` or `>`;
    /// the serialiser rescans each of them on every byte that follows.
    open_escapes: u64,
}

impl Meter {
    fn new(limits: &Limits) -> Meter {
        let allowed = limits.max_html_bytes as u64;
        Meter {
            nodes: vec![Slot::default()],
            // The document is depth 0 and the fragment's root element 1.
            max_depth: limits.max_nesting + 1,
            max_nesting: limits.max_nesting,
            dom_bytes: 0,
            max_dom_bytes: limits.max_html_bytes,
            escape_work: 0,
            max_escape_work: allowed * ESCAPE_WORK_PER_BYTE,
            move_work: 0,
            max_move_work: allowed * MOVE_WORK_PER_BYTE,
            exceeded: None,
        }
    }

    fn stopped(&self) -> bool {
        self.exceeded.is_some()
    }

    fn stop(&mut self, e: IngestError) {
        if self.exceeded.is_none() {
            self.exceeded = Some(e);
        }
    }

    fn new_slot(&mut self, is_text: bool) -> usize {
        self.nodes.push(Slot {
            is_text,
            ..Slot::default()
        });
        self.nodes.len() - 1
    }

    fn add_bytes(&mut self, n: usize) {
        self.dom_bytes += n;
        if self.dom_bytes > self.max_dom_bytes {
            self.stop(IngestError::HtmlTooLarge {
                limit: self.max_dom_bytes,
            });
        }
    }

    fn add_escape_work(&mut self, work: u64) {
        self.escape_work += work;
        if self.escape_work > self.max_escape_work {
            self.stop(IngestError::HtmlTooCostly(
                "a run of text or an attribute holds many characters that must be escaped \
                 (& or Latin-1 signs such as © and no-break spaces) with no markup between them; \
                 break it into paragraphs"
                    .to_string(),
            ));
        }
    }

    /// The DOM finds a node's place by stepping over its earlier siblings.
    fn add_move_work(&mut self, siblings: usize) {
        self.move_work += siblings as u64;
        if self.move_work > self.max_move_work {
            self.stop(IngestError::HtmlTooCostly(
                "many elements sit where HTML does not allow them (content inside a <table> \
                 but outside its cells, or formatting tags closed out of order) and each has to \
                 be moved; fix the markup"
                    .to_string(),
            ));
        }
    }

    fn set_depth(&mut self, node: usize, depth: usize) {
        self.nodes[node].depth = depth;
        if depth > self.max_depth {
            self.stop(IngestError::TooDeep {
                what: "HTML elements".to_string(),
                limit: self.max_nesting,
            });
        }
    }

    /// Text joins a text node: count its bytes and the serialiser's scanning.
    fn add_text(&mut self, node: usize, text: &str) {
        self.add_bytes(text.len());
        let open = self.nodes[node].open_escapes;
        let (work, open) = escape_work(text.as_bytes(), open, b'<');
        self.nodes[node].open_escapes = open;
        self.add_escape_work(work);
    }

    fn add_attrs(&mut self, attrs: &[Attribute]) {
        for attr in attrs {
            self.add_bytes(attr.name.local.len() + attr.value.len() + 4);
            let (work, _) = escape_work(attr.value.as_bytes(), 0, b'"');
            self.add_escape_work(work);
        }
    }

    fn detach(&mut self, node: usize) {
        if let Some(parent) = self.nodes[node].parent.take() {
            self.add_move_work(self.nodes[parent].children.len());
            let children = &mut self.nodes[parent].children;
            if let Some(i) = children.iter().position(|&c| c == node) {
                children.remove(i);
            }
        }
    }

    fn append(&mut self, parent: usize, child: NodeOrText<Handle>) {
        match child {
            NodeOrText::AppendText(text) => {
                let last = self.nodes[parent].children.last().copied();
                let node = match last {
                    Some(last) if self.nodes[last].is_text => last,
                    _ => {
                        let node = self.new_slot(true);
                        self.nodes[node].parent = Some(parent);
                        self.nodes[parent].children.push(node);
                        node
                    }
                };
                self.add_text(node, &text);
            }
            NodeOrText::AppendNode(handle) => {
                let node = handle.id;
                self.detach(node);
                self.nodes[node].parent = Some(parent);
                self.nodes[parent].children.push(node);
                self.set_depth(node, self.nodes[parent].depth + 1);
            }
        }
    }

    fn insert_before(&mut self, sibling: usize, new: NodeOrText<Handle>) {
        let Some(parent) = self.nodes[sibling].parent else {
            return;
        };
        self.add_move_work(self.nodes[parent].children.len());
        let Some(i) = self.nodes[parent]
            .children
            .iter()
            .position(|&c| c == sibling)
        else {
            return;
        };
        match new {
            NodeOrText::AppendText(text) => {
                let before = i.checked_sub(1).map(|j| self.nodes[parent].children[j]);
                let node = match before {
                    Some(prev) if self.nodes[prev].is_text => prev,
                    _ => {
                        let node = self.new_slot(true);
                        self.nodes[node].parent = Some(parent);
                        self.nodes[parent].children.insert(i, node);
                        node
                    }
                };
                self.add_text(node, &text);
            }
            NodeOrText::AppendNode(handle) => {
                let node = handle.id;
                self.detach(node);
                let i = self.nodes[parent]
                    .children
                    .iter()
                    .position(|&c| c == sibling)
                    .unwrap_or(self.nodes[parent].children.len());
                self.nodes[parent].children.insert(i, node);
                self.nodes[node].parent = Some(parent);
                self.set_depth(node, self.nodes[sibling].depth);
            }
        }
    }

    fn reparent_children(&mut self, node: usize, new_parent: usize) {
        let children = std::mem::take(&mut self.nodes[node].children);
        self.add_move_work(children.len());
        let depth = self.nodes[new_parent].depth + 1;
        for &child in &children {
            self.nodes[child].parent = Some(new_parent);
            self.set_depth(child, depth);
        }
        self.nodes[new_parent].children.extend(children);
    }
}

/// The serialiser's scanning work for `bytes` appended to a text node (or
/// attribute value) that already has `open` unmatched characters to escape:
/// after escaping each `&` or U+0080–U+00BF character it searches on for the
/// next `<`, `>` or `stop` byte, so every byte after such a character, up to
/// the next of those, is read once more per character. Returns the work and
/// the new count of unmatched characters.
fn escape_work(bytes: &[u8], mut open: u64, stop: u8) -> (u64, u64) {
    let mut work = 0u64;
    for &b in bytes {
        work += open;
        if b == b'<' || b == b'>' || b == stop {
            open = 0;
        } else if b == b'&' || b == 0xc2 {
            open += 1;
        }
    }
    (work, open)
}

/// What a handle points at; only elements carry data the parser asks for.
enum Node {
    Document,
    Element {
        name: QualName,
        template_contents: Option<Handle>,
        mathml_annotation_xml_integration_point: bool,
    },
    Other,
}

/// A node handle: an index into the meter's slots plus what is immutable.
#[derive(Clone)]
struct Handle(Rc<HandleData>);

struct HandleData {
    id: usize,
    node: Node,
}

impl Handle {
    fn new(node: Node, id: usize) -> Handle {
        Handle(Rc::new(HandleData { id, node }))
    }
}

impl std::ops::Deref for Handle {
    type Target = HandleData;
    fn deref(&self) -> &HandleData {
        &self.0
    }
}

/// Returned for a name asked of a node that is not an element, which the
/// tree builder promises never to do.
static NOT_AN_ELEMENT: LazyLock<QualName> =
    LazyLock::new(|| QualName::new(None, ns!(html), local_name!("")));

struct Sink {
    meter: Rc<RefCell<Meter>>,
    document: Handle,
}

impl Sink {
    /// Run `f` on the meter unless a bound was already crossed: after that
    /// the parse is abandoned, so nothing more needs counting.
    fn with(&self, f: impl FnOnce(&mut Meter)) {
        let mut meter = self.meter.borrow_mut();
        if !meter.stopped() {
            f(&mut meter);
        }
    }

    fn new_node(&self, node: Node, bytes: usize) -> Handle {
        let mut meter = self.meter.borrow_mut();
        let id = meter.new_slot(false);
        meter.add_bytes(bytes);
        Handle::new(node, id)
    }
}

impl TreeSink for Sink {
    type Handle = Handle;
    type Output = ();
    type ElemName<'a> = &'a QualName;

    fn finish(self) {}

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> Handle {
        self.document.clone()
    }

    fn elem_name<'a>(&'a self, target: &'a Handle) -> &'a QualName {
        match &target.node {
            Node::Element { name, .. } => name,
            _ => &NOT_AN_ELEMENT,
        }
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> Handle {
        let template_contents = flags.template.then(|| self.new_node(Node::Document, 0));
        let handle = self.new_node(
            Node::Element {
                mathml_annotation_xml_integration_point: flags
                    .mathml_annotation_xml_integration_point,
                name: name.clone(),
                template_contents,
            },
            name.local.len() + 2,
        );
        self.with(|m| m.add_attrs(&attrs));
        handle
    }

    fn create_comment(&self, text: StrTendril) -> Handle {
        self.new_node(Node::Other, text.len())
    }

    fn create_pi(&self, target: StrTendril, data: StrTendril) -> Handle {
        self.new_node(Node::Other, target.len() + data.len())
    }

    fn append(&self, parent: &Handle, child: NodeOrText<Handle>) {
        self.with(|m| m.append(parent.id, child));
    }

    fn append_based_on_parent_node(
        &self,
        element: &Handle,
        prev_element: &Handle,
        child: NodeOrText<Handle>,
    ) {
        self.with(|m| {
            if m.nodes[element.id].parent.is_some() {
                m.insert_before(element.id, child);
            } else {
                m.append(prev_element.id, child);
            }
        });
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn get_template_contents(&self, target: &Handle) -> Handle {
        match &target.node {
            Node::Element {
                template_contents: Some(contents),
                ..
            } => {
                // Template contents sit as deep as their template.
                self.with(|m| {
                    let depth = m.nodes[target.id].depth;
                    m.set_depth(contents.id, depth);
                });
                contents.clone()
            }
            _ => target.clone(),
        }
    }

    fn same_node(&self, x: &Handle, y: &Handle) -> bool {
        Rc::ptr_eq(&x.0, &y.0)
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &Handle, new_node: NodeOrText<Handle>) {
        self.with(|m| m.insert_before(sibling.id, new_node));
    }

    fn add_attrs_if_missing(&self, _target: &Handle, attrs: Vec<Attribute>) {
        self.with(|m| m.add_attrs(&attrs));
    }

    fn remove_from_parent(&self, target: &Handle) {
        self.with(|m| m.detach(target.id));
    }

    fn reparent_children(&self, node: &Handle, new_parent: &Handle) {
        self.with(|m| m.reparent_children(node.id, new_parent.id));
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &Handle) -> bool {
        matches!(
            handle.node,
            Node::Element {
                mathml_annotation_xml_integration_point: true,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_markup_skips_the_dry_run_unless_escaping_could_be_costly() {
        let l = limits(64 << 10, 64);
        assert!(!needed("<p>a &amp; b</p>\n<ul><li>x</li></ul>", true, &l));
        assert!(
            needed("<p>a &amp; b</p>", false, &l),
            "raw HTML is always checked"
        );
        // Quotes do not end a text node, so they must not end the count.
        let flood = format!("<p>{}</p>", "&amp;\"".repeat(8_000));
        assert!(needed(&flood, true, &l));
        assert!(matches!(
            check(&flood, &l),
            Err(IngestError::HtmlTooCostly(_))
        ));
    }

    fn limits(max_html_bytes: usize, max_nesting: usize) -> Limits {
        Limits {
            max_html_bytes,
            max_nesting,
        }
    }

    #[test]
    fn escape_work_counts_rescans_up_to_the_next_angle_bracket() {
        // (bytes, stop byte, open before, work, open after)
        let cases: [(&[u8], u8, u64, u64, u64); 6] = [
            (b"plain text", b'<', 0, 0, 0),
            (b"a&b", b'<', 0, 1, 1),
            (b"&&&", b'<', 0, 3, 3),
            (b"&&<&", b'<', 0, 3, 1),
            (b"xy", b'<', 2, 4, 2),
            (b"&\"&", b'"', 0, 1, 1),
        ];
        for (bytes, stop, open, work, after) in cases {
            assert_eq!(
                escape_work(bytes, open, stop),
                (work, after),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn measures_the_parsers_structure_not_the_source_text() {
        let ok = limits(1 << 20, 8);
        // Unclosed <p> and <li> are closed by the parser: not nesting.
        let flat =
            "<p>a<p>b<p>c<p>d<p>e<p>f<p>g<p>h<p>i<p>j<ul><li>1<li>2<li>3<li>4</ul>".repeat(4);
        check(&flat, &ok).expect("unclosed paragraphs and items are flat");
        let deep = "<div>".repeat(9);
        assert_eq!(
            check(&deep, &ok),
            Err(IngestError::TooDeep {
                what: "HTML elements".into(),
                limit: 8
            })
        );
        check(&"<div>".repeat(8), &ok).expect("8 levels are allowed");
    }

    #[test]
    fn reopened_formatting_counts_against_the_size_limit() {
        // One open <b> with an attribute, reopened by the parser in each of
        // 2,000 paragraphs: 40 KB of source, 2 MB of DOM.
        let attr = "x".repeat(1000);
        let html = format!("<p><b title=\"{attr}\">a</p>{}", "<p>b</p>".repeat(2000));
        assert_eq!(
            check(&html, &limits(256 << 10, 64)),
            Err(IngestError::HtmlTooLarge { limit: 256 << 10 })
        );
    }

    #[test]
    fn escaping_floods_and_relocations_are_too_costly() {
        let l = limits(64 << 10, 64);
        for html in [
            format!("<p>{}</p>", "&".repeat(60_000)),
            format!("<p>{}</p>", "&amp;".repeat(12_000)),
            format!("<p>{}</p>", "©".repeat(30_000)),
            format!("<p>{}</p>", "\u{a0}".repeat(30_000)),
            format!("<p title=\"{}\">x</p>", "&".repeat(60_000)),
            format!("<table>{}", "<i>x</i>".repeat(6_000)),
        ] {
            assert!(
                matches!(check(&html, &l), Err(IngestError::HtmlTooCostly(_))),
                "{}…",
                &html[..40]
            );
        }
        // The same characters with markup between them are cheap.
        check(&"<p>&amp;&amp; ©©</p>".repeat(2_000), &l).expect("short runs");
    }
}
