//! The IPTC ninjs 3.1 JSON Schema (tests/fixtures/ninjs/, with its
//! attribution) as a validator, format checks on: every ninjs document a
//! test sees is checked against the standard's own rules for each property
//! it holds, unknown properties included (the schema refuses them).
#![allow(dead_code)]

use std::sync::OnceLock;

/// The schema refers to one document outside itself, GeoJSON (for
/// `places[].geoJSON`, which feedwire never writes): answered with an empty
/// schema, so nothing is fetched and nothing else can be.
struct NoFetch;

impl jsonschema::Retrieve for NoFetch {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.as_str().starts_with("https://geojson.org/") {
            Ok(serde_json::json!({}))
        } else {
            Err(format!("the ninjs schema refers to {uri}, which this test does not fetch").into())
        }
    }
}

pub fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ninjs/ninjs-schema_3.1.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    })
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options()
            .should_validate_formats(true)
            .with_retriever(NoFetch)
            .build(schema())
            .unwrap()
    })
}

/// Panic, listing every violation, unless `item` is a valid ninjs 3.1
/// news item.
#[track_caller]
pub fn assert_valid(item: &serde_json::Value) {
    let errors: Vec<String> = validator()
        .iter_errors(item)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid ninjs 3.1:\n  {}\n{}",
        errors.join("\n  "),
        serde_json::to_string_pretty(item).unwrap()
    );
}

/// Parse bytes as one ninjs item, check it against the schema, return it.
#[track_caller]
pub fn parse_item(bytes: &[u8]) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )
    });
    assert!(v.is_object(), "a ninjs item is an object: {v}");
    assert_valid(&v);
    v
}

/// Parse a partner's ninjs pull feed (a JSON array of items), checking
/// each item against the schema.
#[track_caller]
pub fn parse_list(bytes: &[u8]) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let items = v
        .as_array()
        .expect("a ninjs pull feed is a JSON array")
        .clone();
    for item in &items {
        assert_valid(item);
    }
    items
}
