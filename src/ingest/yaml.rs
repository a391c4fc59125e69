//! Checks YAML front matter passes before it is deserialised.
//!
//! Two YAML shapes make the parser's work superlinear in the text:
//!
//! - Flow collections nested deep (`x: [[[[…]]]]`): libyaml's scanner looks
//!   at every open level for every token, so 80 KB of `[` costs seconds. The
//!   parser's own depth limit only applies after the whole text is scanned.
//! - Aliases (`*a`) are expanded where they are used, and an alias to a list
//!   of aliases doubles or decuples at every level (the "billion laughs"):
//!   serde_yaml_ng stops only after a hundred jumps per event, by which time
//!   a 1 MB file has produced gigabytes.
//!
//! [`check`] bounds both in time linear in the front matter: a character
//! scan for flow depth, then one visit of the document that counts values,
//! alias expansions included, against a budget a file without aliases never
//! needs.

use super::{IngestError, Limits};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use std::cell::Cell;
use std::fmt;

/// Check `src` (the text between the `---` fences) against `limits`.
/// Syntax errors are left for the real deserialisation to report.
pub fn check(src: &str, limits: &Limits) -> Result<(), IngestError> {
    if flow_depth_exceeds(src, limits.max_nesting) {
        return Err(IngestError::TooDeep {
            what: "front-matter lists and maps".to_string(),
            limit: limits.max_nesting,
        });
    }
    // Without `*` there is no alias to expand.
    if !src.contains('*') {
        return Ok(());
    }
    let budget = Budget {
        left: Cell::new(2 * src.len() + 1024),
        exhausted: Cell::new(false),
    };
    let visited = Count(&budget).deserialize(serde_yaml_ng::Deserializer::from_str(src));
    if visited.is_err() && budget.exhausted.get() {
        return Err(IngestError::FrontMatter(
            "YAML aliases (`*name`) expand the front matter to far more values than it is \
             written with; write the values out instead"
                .to_string(),
        ));
    }
    Ok(())
}

/// Do YAML flow collections (`[…]`, `{…}`) nest more than `limit` deep?
///
/// A `[` or `{` opens a collection only where a value can start (after
/// whitespace, `,`, or another opener), and quotes open a quoted scalar only
/// there too (`it's` is plain text); inside quotes and comments nothing
/// counts. A `[` in a plain scalar (`Giá [USD]`) may be counted where YAML
/// would not, which only matters past `limit` such brackets.
fn flow_depth_exceeds(src: &str, limit: usize) -> bool {
    enum State {
        Plain,
        Single,
        Double,
        Comment,
    }
    let mut state = State::Plain;
    let mut depth = 0usize;
    let mut value_start = true;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Plain => {
                let mut opened = false;
                match c {
                    '#' if value_start => state = State::Comment,
                    '\'' if value_start => state = State::Single,
                    '"' if value_start => state = State::Double,
                    '[' | '{' if value_start => {
                        opened = true;
                        depth += 1;
                        if depth > limit {
                            return true;
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                value_start = opened || c.is_whitespace() || c == ',';
            }
            State::Single => {
                if c == '\'' {
                    // '' is an escaped quote inside a single-quoted scalar.
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        state = State::Plain;
                        value_start = false;
                    }
                }
            }
            State::Double => match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    state = State::Plain;
                    value_start = false;
                }
                _ => {}
            },
            State::Comment => {
                if c == '\n' {
                    state = State::Plain;
                    value_start = true;
                }
            }
        }
    }
    false
}

/// How many more values the visit may see; each string also costs one unit
/// per 64 bytes, so replaying a long string through aliases counts too.
struct Budget {
    left: Cell<usize>,
    exhausted: Cell<bool>,
}

/// Visits any YAML value, spending from the budget.
#[derive(Clone, Copy)]
struct Count<'a>(&'a Budget);

impl Count<'_> {
    fn spend<E: de::Error>(self, units: usize) -> Result<(), E> {
        let left = self.0.left.get();
        if units > left {
            self.0.exhausted.set(true);
            return Err(E::custom("front matter expands past its budget"));
        }
        self.0.left.set(left - units);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.spend(1 + v.len() / 64)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.spend(1 + v.len() / 64)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    /// A tagged value (`!tag value`).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        self.spend(1)?;
        let ((), value) = data.variant_seed(self)?;
        value.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_nesting: 8,
            ..Limits::default()
        }
    }

    #[test]
    fn flow_depth() {
        // (front matter, deeper than 8?)
        let cases = [
            ("title: A\ntags: [a, [b, {c: [d]}]]\n", false),
            ("x: [[[[[[[[1]]]]]]]]\n", false),
            ("x: [[[[[[[[[1]]]]]]]]]\n", true),
            ("x: {a: {a: {a: {a: {a: {a: {a: {a: {a: 1}}}}}}}}}\n", true),
            ("x: [[[[[\n  [[[[1]]]]\n  ]]]]]\n", true),
            ("x: [[[[[\n  ]]]]]\nz: [[[[[\n", false),
            // Brackets that are text, not collections.
            ("title: \"[[[[[[[[[[\"\n", false),
            ("title: '[[[[[[[[[[ it''s'\n", false),
            ("title: Giá[[[[[[[[[[[USD\n", false),
            ("# [[[[[[[[[[\ntitle: a\n", false),
            (
                "title: it's [a] [b] [c] [d] [e] [f] [g] [h] [i] [j]\n",
                false,
            ),
        ];
        for (src, want) in cases {
            assert_eq!(flow_depth_exceeds(src, 8), want, "{src:?}");
        }
    }

    #[test]
    fn aliases_within_budget_pass_and_billion_laughs_fail() {
        check("title: A\nbase: &b [x, y]\ncopy: *b\n", &limits()).expect("a small alias");
        check(
            "title: A\ntags: [a, b, c]\nextra:\n  nested: true\n",
            &limits(),
        )
        .expect("no aliases");
        let mut laughs = String::from("title: A\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            laughs.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        assert!(matches!(
            check(&laughs, &limits()),
            Err(IngestError::FrontMatter(m)) if m.contains("aliases")
        ));
    }

    #[test]
    fn syntax_errors_are_left_to_the_parser() {
        check("title: A\ntags: [a, b\n", &limits()).expect("reported later, with its line");
    }
}
