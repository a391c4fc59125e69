//! Which callback hosts the built-in hub will contact.
//!
//! With `websub.allowed_callback_hosts` empty, any host whose every resolved
//! address is public is allowed; every range of the IANA IPv4 and IPv6
//! special-purpose address registries (loopback, private, link-local, CGNAT,
//! documentation, benchmarking, 6to4, Teredo…), multicast, and IPv6 outside
//! global unicast `2000::/3` are refused (a subscriber must not turn the hub
//! into a probe of our own network). IPv6 forms that carry an IPv4 address
//! the connection really goes to (IPv4-mapped `::ffff:0:0/96`, NAT64
//! `64:ff9b::/96`) are judged by that IPv4 address. A non-empty list allows
//! exactly the hosts it names, by name or by address. The check runs against
//! the *resolved* addresses, at subscription time and again before every
//! delivery, and the HTTP client's resolver applies it once more at connect
//! time.

use crate::config::WebSub;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use url::{Host, Url};

/// `Ok` when the callback may be contacted, else the reason (safe to show).
/// Name resolution gives up after `timeout`.
pub(crate) async fn check(cfg: &WebSub, url: &Url, timeout: Duration) -> Result<(), String> {
    let listed = |s: &str| {
        cfg.allowed_callback_hosts
            .iter()
            .any(|h| h.trim_matches(['[', ']']).eq_ignore_ascii_case(s))
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let (name, addrs): (String, Vec<IpAddr>) = match url.host() {
        None => return Err("the callback has no host".into()),
        Some(Host::Ipv4(ip)) => (ip.to_string(), vec![IpAddr::V4(ip)]),
        Some(Host::Ipv6(ip)) => (ip.to_string(), vec![IpAddr::V6(ip)]),
        Some(Host::Domain(d)) => {
            if listed(d) {
                return Ok(());
            }
            let resolved = tokio::time::timeout(timeout, tokio::net::lookup_host((d, port)))
                .await
                .map_err(|_| format!("the callback host {d} did not resolve in time"))?
                .map_err(|_| format!("the callback host {d} does not resolve"))?;
            (d.to_string(), resolved.map(|a| a.ip()).collect())
        }
    };
    if addrs.is_empty() {
        return Err(format!("the callback host {name} does not resolve"));
    }
    for ip in addrs {
        if !ip_allowed(cfg, ip) {
            let why = match refusal(ip) {
                Some(range) => format!(" ({range})"),
                None => String::new(),
            };
            return Err(format!(
                "callback host {name} ({ip}) is not allowed by this hub{why}"
            ));
        }
    }
    Ok(())
}

/// Is this resolved address one the policy lets a callback use? Listed
/// addresses are compared as addresses, so `::ffff:10.0.0.5` matches a
/// listed `10.0.0.5`.
fn ip_allowed(cfg: &WebSub, ip: IpAddr) -> bool {
    if cfg.allowed_callback_hosts.is_empty() {
        is_public(ip)
    } else {
        let ip = ip.to_canonical();
        cfg.allowed_callback_hosts.iter().any(|h| {
            h.trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|listed| listed.to_canonical() == ip)
        })
    }
}

/// DNS resolution for requests to subscriber callbacks that keeps only the
/// addresses [`check`] would allow. `check` resolves the name before each
/// request, but the HTTP client resolves it again to connect; without this a
/// name that changes its answer in between (DNS rebinding) could still lead
/// the hub to a private address.
pub(crate) struct GuardedResolver {
    pub cfg: WebSub,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let listed = cfg
                .allowed_callback_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host));
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| listed || ip_allowed(&cfg, a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("callback host {host} has no allowed address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A globally routable unicast address: no range of [`refusal`] holds it.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    refusal(ip).is_none()
}

/// Ranges of the IANA IPv4 Special-Purpose Address Registry (RFC 6890 and
/// its updates), every one refused, even those the registry marks globally
/// reachable (AS112, AMT, anycast relays): no subscriber callback lives
/// there. Multicast and the reserved 240/4 (with the limited broadcast
/// address) are added from the IPv4 address space registry.
const V4_SPECIAL: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private-use"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (CGNAT)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private-use"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation (TEST-NET-1)",
    ),
    (Ipv4Addr::new(192, 31, 196, 0), 24, "AS112-v4"),
    (Ipv4Addr::new(192, 52, 193, 0), 24, "AMT"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private-use"),
    (
        Ipv4Addr::new(192, 175, 48, 0),
        24,
        "AS112 direct delegation",
    ),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation (TEST-NET-2)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation (TEST-NET-3)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved (and limited broadcast)",
    ),
];

/// Ranges of the IANA IPv6 Special-Purpose Address Registry that fall inside
/// global unicast `2000::/3` (everything outside it is refused anyway:
/// loopback, unspecified, IPv4-compatible, discard-only, unique-local,
/// link-local, multicast, SRv6 SIDs…). The Teredo, benchmarking, AMT, AS112
/// and ORCHID blocks are all inside `2001::/23`.
const V6_SPECIAL: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "6to4"),
    (
        Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0),
        48,
        "AS112 direct delegation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
];

/// NAT64's well-known prefix (RFC 6052): the last 32 bits are the IPv4
/// address the translator connects to.
const NAT64: (Ipv6Addr, u8) = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Why a callback may not use this address (the range it falls in, with
/// the IPv4 address an IPv6 form embeds), or `None` when it is public.
pub(crate) fn refusal(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4).map(str::to_string),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4_SPECIAL
        .iter()
        .find(|(net, len, _)| in_v4(ip, (*net, *len)))
        .map(|(_, _, name)| *name)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<String> {
    let low32 = Ipv4Addr::from(u128::from(ip) as u32);
    // Forms whose IPv4 address is where the packets really go: judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4).map(|r| format!("IPv4-mapped {v4}: {r}"));
    }
    if in_v6(ip, NAT64) {
        return refusal_v4(low32).map(|r| format!("NAT64 for {low32}: {r}"));
    }
    // Forms that embed an IPv4 address but are refused whatever it is; the
    // reason names it so a refused subscriber sees what was decoded.
    if ip.is_unspecified() {
        return Some("unspecified".into());
    }
    if ip.is_loopback() {
        return Some("loopback".into());
    }
    if in_v6(ip, (Ipv6Addr::UNSPECIFIED, 96)) {
        return Some(format!("IPv4-compatible (deprecated) for {low32}"));
    }
    let seg = ip.segments();
    if in_v6(ip, (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16)) {
        let v4 = Ipv4Addr::from((u32::from(seg[1]) << 16) | u32::from(seg[2]));
        return Some(format!("6to4 for {v4}"));
    }
    if in_v6(ip, (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32)) {
        // The client address is stored inverted (RFC 4380 §4).
        return Some(format!("Teredo for {}", Ipv4Addr::from(!u32::from(low32))));
    }
    if !in_v6(ip, (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)) {
        return Some("not global unicast (outside 2000::/3)".into());
    }
    V6_SPECIAL
        .iter()
        .find(|(net, len, _)| in_v6(ip, (*net, *len)))
        .map(|(_, _, name)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hosts: &[&str]) -> WebSub {
        WebSub {
            allowed_callback_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..WebSub::default()
        }
    }

    /// Every spelling of a special address is refused, each by the range it
    /// belongs to; IPv6 forms that embed a private IPv4 are decoded first.
    /// (Issue 9, point 8: `::127.0.0.1`, `64:ff9b::`, `2002::` and
    /// `::ffff:0:0:0/96` forms used to pass as public.)
    #[test]
    fn special_addresses_are_refused_in_every_spelling() {
        let refused: &[(&str, &str)] = &[
            // IPv4 special-purpose registry, one address per range.
            ("0.0.0.0", "this network"),
            ("0.1.2.3", "this network"),
            ("10.1.2.3", "private-use"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.254", "CGNAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private-use"),
            ("172.31.255.255", "private-use"),
            ("192.0.0.9", "IETF protocol"),
            ("192.0.0.170", "IETF protocol"),
            ("192.0.2.1", "TEST-NET-1"),
            ("192.31.196.1", "AS112"),
            ("192.52.193.1", "AMT"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.0.1", "private-use"),
            ("192.175.48.1", "AS112"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "TEST-NET-2"),
            ("203.0.113.9", "TEST-NET-3"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
            // IPv6 special-purpose registry and non-global-unicast space.
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("100::1", "outside 2000::/3"),
            ("64:ff9b:1::a00:1", "outside 2000::/3"),
            ("2001::1", "Teredo"),
            ("2001:1::1", "IETF protocol"),
            ("2001:2::1", "IETF protocol"),
            ("2001:3::1", "IETF protocol"),
            ("2001:4:112::1", "IETF protocol"),
            ("2001:20::1", "IETF protocol"),
            ("2001:db8::1", "documentation"),
            ("2620:4f:8000::1", "AS112"),
            ("3fff::1", "documentation"),
            ("5f00::1", "outside 2000::/3"),
            ("fc00::1", "outside 2000::/3"),
            ("fd12:3456::1", "outside 2000::/3"),
            ("fe80::1", "outside 2000::/3"),
            ("ff02::1", "outside 2000::/3"),
            // IPv4-mapped ::ffff:0:0/96: judged as the IPv4 address.
            ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"),
            ("::ffff:7f00:1", "IPv4-mapped 127.0.0.1: loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1: private-use"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:0.0.0.0", "this network"),
            // IPv4-compatible ::/96 (deprecated): refused, whatever it embeds.
            ("::127.0.0.1", "IPv4-compatible (deprecated) for 127.0.0.1"),
            ("::7f00:1", "IPv4-compatible (deprecated) for 127.0.0.1"),
            ("::10.0.0.1", "IPv4-compatible (deprecated) for 10.0.0.1"),
            ("::93.184.216.34", "IPv4-compatible"),
            // NAT64 64:ff9b::/96: judged as the IPv4 address it translates to.
            ("64:ff9b::127.0.0.1", "NAT64 for 127.0.0.1: loopback"),
            ("64:ff9b::7f00:1", "NAT64 for 127.0.0.1: loopback"),
            ("64:ff9b::192.168.1.1", "NAT64 for 192.168.1.1: private-use"),
            (
                "64:ff9b::a9fe:a9fe",
                "NAT64 for 169.254.169.254: link-local",
            ),
            // 6to4 2002::/16: refused; the reason decodes the IPv4 address.
            ("2002:7f00:1::1", "6to4 for 127.0.0.1"),
            ("2002:a00:1::", "6to4 for 10.0.0.1"),
            ("2002:5db8:d822::1", "6to4 for 93.184.216.34"),
            // Teredo 2001::/32: the client address is stored inverted.
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                "Teredo for 127.0.0.1",
            ),
            (
                "2001:0:4136:e378:8000:63bf:f5ff:fffe",
                "Teredo for 10.0.0.1",
            ),
        ];
        for (addr, why) in refused {
            let ip: IpAddr = addr.parse().unwrap_or_else(|_| panic!("{addr} parses"));
            let reason = refusal(ip).unwrap_or_else(|| panic!("{addr} must be refused ({why})"));
            assert!(
                reason.contains(why),
                "{addr}: reason `{reason}` should say `{why}`"
            );
            assert!(!is_public(ip), "{addr}");
            assert!(!ip_allowed(&cfg(&[]), ip), "{addr}");
        }
        for addr in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
            "2001:200::1",
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(refusal(ip), None, "{addr} is public");
        }
    }

    #[tokio::test]
    async fn embedded_loopback_in_a_callback_url_is_refused() {
        let t = Duration::from_secs(5);
        for url in [
            "http://[::127.0.0.1]:9/cb",
            "http://[::ffff:127.0.0.1]:9/cb",
            "http://[64:ff9b::7f00:1]:9/cb",
            "http://[2002:7f00:1::1]:9/cb",
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:9/cb",
            "http://2130706433:9/cb",
            "http://0x7f.1:9/cb",
        ] {
            let url = Url::parse(url).unwrap();
            let err = check(&cfg(&[]), &url, t).await.unwrap_err();
            assert!(err.contains("not allowed"), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn loopback_needs_listing() {
        let t = Duration::from_secs(5);
        let url = Url::parse("http://127.0.0.1:9/cb").unwrap();
        assert!(check(&cfg(&[]), &url, t).await.is_err());
        assert!(check(&cfg(&["127.0.0.1"]), &url, t).await.is_ok());
        assert!(check(&cfg(&["example.org"]), &url, t).await.is_err());
        let v6 = Url::parse("http://[::1]:9/cb").unwrap();
        assert!(check(&cfg(&["::1"]), &v6, t).await.is_ok());
        let mapped = Url::parse("http://[::ffff:127.0.0.1]:9/cb").unwrap();
        assert!(
            check(&cfg(&["127.0.0.1"]), &mapped, t).await.is_ok(),
            "a listed address matches in its mapped spelling too"
        );
    }

    /// The connection-time resolver applies the same policy (DNS rebinding).
    #[tokio::test]
    async fn the_connect_resolver_drops_disallowed_addresses() {
        use reqwest::dns::Resolve;
        let resolve = |hosts: &[&str]| {
            let r = GuardedResolver { cfg: cfg(hosts) };
            r.resolve("localhost".parse().unwrap())
        };
        assert!(
            resolve(&[]).await.is_err(),
            "loopback behind a name is refused by default"
        );
        let addrs: Vec<_> = resolve(&["127.0.0.1"]).await.unwrap().collect();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().to_string() == "127.0.0.1"),
            "{addrs:?}"
        );
        assert!(
            resolve(&["localhost"]).await.unwrap().next().is_some(),
            "a listed name is allowed"
        );
    }
}
