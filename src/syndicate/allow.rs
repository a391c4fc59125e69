//! Which callback hosts the built-in hub will contact.
//!
//! With `websub.allowed_callback_hosts` empty, any host whose every resolved
//! address is public is allowed; loopback, private, link-local and other
//! special addresses are refused (a subscriber must not turn the hub into a
//! probe of our own network). A non-empty list allows exactly the hosts it
//! names, by name or by address. The check runs against the *resolved*
//! addresses, at subscription time and again before every delivery.

use crate::config::WebSub;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// `Ok` when the callback may be contacted, else the reason (safe to show).
pub(crate) async fn check(cfg: &WebSub, url: &Url) -> Result<(), String> {
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
            let resolved = tokio::net::lookup_host((d, port))
                .await
                .map_err(|_| format!("the callback host {d} does not resolve"))?;
            (d.to_string(), resolved.map(|a| a.ip()).collect())
        }
    };
    if addrs.is_empty() {
        return Err(format!("the callback host {name} does not resolve"));
    }
    for ip in addrs {
        if !ip_allowed(cfg, ip) {
            return Err(format!(
                "callback host {name} ({ip}) is not allowed by this hub"
            ));
        }
    }
    Ok(())
}

/// Is this resolved address one the policy lets a callback use?
fn ip_allowed(cfg: &WebSub, ip: IpAddr) -> bool {
    if cfg.allowed_callback_hosts.is_empty() {
        is_public(ip)
    } else {
        cfg.allowed_callback_hosts.iter().any(|h| {
            h.trim_matches(['[', ']'])
                .eq_ignore_ascii_case(&ip.to_string())
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

/// A globally routable unicast address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link-local
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)) // documentation
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

    #[test]
    fn special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(s.parse().unwrap()), "{s}");
        }
        for s in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(s.parse().unwrap()), "{s}");
        }
    }

    #[tokio::test]
    async fn loopback_needs_listing() {
        let url = Url::parse("http://127.0.0.1:9/cb").unwrap();
        assert!(check(&cfg(&[]), &url).await.is_err());
        assert!(check(&cfg(&["127.0.0.1"]), &url).await.is_ok());
        assert!(check(&cfg(&["example.org"]), &url).await.is_err());
        let v6 = Url::parse("http://[::1]:9/cb").unwrap();
        assert!(check(&cfg(&["::1"]), &v6).await.is_ok());
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
