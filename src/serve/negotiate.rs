//! Content-coding negotiation: which of the precomputed bodies (identity,
//! gzip, brotli) a request's `Accept-Encoding` allows, per RFC 9110 §12.5.3.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;

/// A body variant the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Coding {
    /// The `Content-Encoding` value, none for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Brotli => Some("br"),
        }
    }

    /// Suffix that keeps each variant's strong ETag distinct (HTTP-02).
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Gzip => "-gzip",
            Coding::Brotli => "-br",
        }
    }
}

/// Pick the coding: the highest q-value among br, gzip and identity, ties
/// going to br, then gzip, then identity. `q=0` forbids a coding; `*` covers
/// codings not named. No header, or nothing acceptable, means identity
/// (a server may always fall back to it rather than answer 406).
pub fn choose(headers: &HeaderMap) -> Coding {
    let mut br: Option<f32> = None;
    let mut gzip: Option<f32> = None;
    let mut identity: Option<f32> = None;
    let mut star: Option<f32> = None;
    let mut any_header = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        any_header = true;
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            // Compared case-insensitively in place: this runs on every poll.
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let mut q = 1.0f32;
            for param in parts {
                let param = param.trim();
                if let Some(v) = param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                {
                    q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
            let is = |name: &str| coding.eq_ignore_ascii_case(name);
            let slot = if is("br") {
                &mut br
            } else if is("gzip") || is("x-gzip") {
                &mut gzip
            } else if is("identity") {
                &mut identity
            } else if coding == "*" {
                &mut star
            } else {
                continue;
            };
            // The most specific statement wins; repeated ones keep the highest.
            *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
        }
    }
    if !any_header {
        return Coding::Identity;
    }
    let br = br.or(star).unwrap_or(0.0);
    let gzip = gzip.or(star).unwrap_or(0.0);
    // Identity is acceptable unless excluded explicitly or by `*;q=0`.
    let identity = identity.or(star.filter(|q| *q == 0.0)).unwrap_or(0.001);
    let mut best = (Coding::Identity, 0.0f32);
    for (coding, q) in [
        (Coding::Brotli, br),
        (Coding::Gzip, gzip),
        (Coding::Identity, identity),
    ] {
        if q > best.1 {
            best = (coding, q);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn pick(values: &[&str]) -> Coding {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        choose(&h)
    }

    #[test]
    fn serve_negotiation_prefers_br_then_gzip_and_respects_q_zero() {
        assert_eq!(pick(&[]), Coding::Identity);
        assert_eq!(pick(&["br,gzip"]), Coding::Brotli); // Miniflux (HTTP-07)
        assert_eq!(pick(&["gzip, deflate, br, zstd"]), Coding::Brotli);
        assert_eq!(pick(&["gzip"]), Coding::Gzip);
        assert_eq!(pick(&["x-gzip"]), Coding::Gzip);
        assert_eq!(pick(&["identity"]), Coding::Identity);
        assert_eq!(pick(&["br;q=0, gzip"]), Coding::Gzip);
        assert_eq!(pick(&["br;q=0,gzip;q=0"]), Coding::Identity);
        assert_eq!(pick(&["*"]), Coding::Brotli);
        assert_eq!(pick(&["*;q=0, gzip"]), Coding::Gzip);
        assert_eq!(pick(&["gzip;q=1.0, br;q=0.5"]), Coding::Gzip);
        assert_eq!(pick(&["deflate"]), Coding::Identity);
        assert_eq!(pick(&["gzip", "br"]), Coding::Brotli);
        assert_eq!(pick(&["BR;Q=0.9"]), Coding::Brotli);
    }
}
