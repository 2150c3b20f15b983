//! The client's address, seen through trusted reverse proxies.
//!
//! Behind a load balancer every request comes from the balancer's address.
//! The balancer says who its client was in `X-Forwarded-For` (or RFC 7239
//! `Forwarded: for=`), but anyone can send those headers, so they are read
//! only when the TCP peer is one of `RELEVO_TRUSTED_PROXIES`, and then from
//! the right: each trusted proxy appends the address it received the request
//! from, so the right-most address that is *not* a trusted proxy is the
//! first one no trusted proxy vouches for beyond — the client. Whatever a
//! client writes into the header itself stays to the left of that and is
//! never used.
//!
//! Used by login throttling, the `/metrics` allow-list and the request log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;

pub use crate::config::TrustedProxies;
/// The client address of `req` (see the module documentation).
pub fn client_addr(req: &HttpRequest, trusted: &TrustedProxies) -> IpAddr {
    client_addr_of(req.peer_addr().map(|a| a.ip()), req.headers(), trusted)
}

/// The client address of a request from `peer` with `headers`: the peer
/// itself unless it is a trusted proxy; otherwise the right-most address of
/// the forwarding chain that is not a trusted proxy. A malformed or hidden
/// entry ends the walk at the nearest trusted hop before it (nothing to its
/// left can be vouched for); a chain of trusted proxies only gives its
/// left-most address.
pub fn client_addr_of(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> IpAddr {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        // Only a Unix socket or a test request has no peer.
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarding_chain(headers).iter().rev() {
        match hop.as_deref().and_then(parse_node) {
            Some(ip) => {
                client = ip.to_canonical();
                if !trusted.contains(client) {
                    return client;
                }
            }
            None => return client,
        }
    }
    client
}

/// The addresses the proxies recorded, left (farthest) to right (nearest);
/// `None` for an entry that is not readable text. `X-Forwarded-For` when
/// present (what nginx and most balancers append to), else `Forwarded`.
fn forwarding_chain(headers: &HeaderMap) -> Vec<Option<String>> {
    let xff: Vec<_> = headers.get_all("x-forwarded-for").collect();
    if !xff.is_empty() {
        return xff
            .into_iter()
            .flat_map(|value| match value.to_str() {
                Ok(text) => text
                    .split(',')
                    .map(|hop| Some(hop.trim().to_owned()))
                    .collect(),
                Err(_) => vec![None],
            })
            .collect();
    }
    headers
        .get_all("forwarded")
        .flat_map(|value| match value.to_str() {
            Ok(text) => split_unquoted(text, ',')
                .into_iter()
                .map(forwarded_for)
                .collect(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The `for=` value of one `Forwarded` element, unquoted.
fn forwarded_for(element: &str) -> Option<String> {
    split_unquoted(element, ';').into_iter().find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| unquote(value.trim()))
    })
}

/// `text` split at `separator`, except inside RFC 7230 quoted strings.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(value: &str) -> String {
    match value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if c == '\\' && !escaped {
                    escaped = true;
                } else {
                    out.push(c);
                    escaped = false;
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`. `unknown`,
/// obfuscated identifiers (`_hidden`) and anything else are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    let port_ok = |port: &str| port.is_empty() || port.parse::<u16>().is_ok();
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) if !port.is_empty() => port,
            Some(_) => return None,
            None if after.is_empty() => "",
            None => return None,
        };
        return port_ok(port)
            .then(|| ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    let (ip, port) = node.split_once(':')?;
    (!port.is_empty() && port_ok(port))
        .then(|| ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn client(peer: &str, list: &str, pairs: &[(&str, &str)]) -> IpAddr {
        client_addr_of(Some(ip(peer)), &headers(pairs), &trusted(list))
    }

    #[test]
    fn addresses_and_cidr_blocks_of_both_families_are_trusted() {
        let list = trusted("10.0.0.0/8, 192.168.1.10 fd00::/8,::1");
        assert!(list.contains(ip("10.200.3.4")));
        assert!(!list.contains(ip("11.0.0.1")));
        assert!(list.contains(ip("192.168.1.10")));
        assert!(!list.contains(ip("192.168.1.11")));
        assert!(list.contains(ip("fd12:3456::1")));
        assert!(!list.contains(ip("fe80::1")));
        assert!(list.contains(ip("::1")));
        // A socket may show an IPv4 client as IPv4-mapped IPv6.
        assert!(list.contains(ip("::ffff:10.1.1.1")));
        assert!(trusted("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
        assert!(trusted("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!trusted("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(trusted("::/0").contains(ip("2001:db8::1")));
        assert!(TrustedProxies::default().is_empty());
        assert!(trusted(" , ").is_empty());
    }

    #[test]
    fn malformed_trusted_lists_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0",
            "proxy.internal",
            "::ffff:10.0.0.0/95",
        ] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let spoofed = [
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=198.51.100.7"),
        ];
        assert_eq!(client("203.0.113.9", "", &spoofed), ip("203.0.113.9"));
        assert_eq!(
            client("203.0.113.9", "10.0.0.0/8", &spoofed),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_right_most_untrusted_address() {
        let list = "10.0.0.0/8";
        // What the client wrote itself stays on the left and is skipped.
        let xff = [("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2")];
        assert_eq!(client("10.0.0.1", list, &xff), ip("203.0.113.9"));
        // Several header lines are one list, in order.
        let lines = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9 ,10.0.0.2"),
        ];
        assert_eq!(client("10.0.0.1", list, &lines), ip("203.0.113.9"));
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.1", list, &[]), ip("10.0.0.1"));
        // Only trusted proxies: the farthest of them.
        let internal = [("x-forwarded-for", "10.0.0.3, 10.0.0.2")];
        assert_eq!(client("10.0.0.1", list, &internal), ip("10.0.0.3"));
        // IPv6 and IPv4-mapped peers.
        let v6 = [("x-forwarded-for", "2001:db8::7")];
        assert_eq!(client("fd00::1", "fd00::/8", &v6), ip("2001:db8::7"));
        let mapped = [("x-forwarded-for", "::ffff:203.0.113.9")];
        assert_eq!(client("::ffff:10.0.0.1", list, &mapped), ip("203.0.113.9"));
    }

    #[test]
    fn a_malformed_entry_ends_the_walk_at_the_nearest_trusted_hop() {
        let list = "10.0.0.0/8";
        for (value, expected) in [
            ("203.0.113.9, garbage, 10.0.0.2", "10.0.0.2"),
            ("203.0.113.9, , 10.0.0.2", "10.0.0.2"),
            ("203.0.113.9, unknown, 10.0.0.2", "10.0.0.2"),
            ("203.0.113.9, 10.0.0.2:notaport", "10.0.0.1"),
        ] {
            let pairs = [("x-forwarded-for", value)];
            assert_eq!(client("10.0.0.1", list, &pairs), ip(expected), "{value}");
        }
        // Garbage to the left of the client does not matter.
        let left = [("x-forwarded-for", "<script>, 203.0.113.9")];
        assert_eq!(client("10.0.0.1", list, &left), ip("203.0.113.9"));
        // A header value that is not text at all.
        let mut map = HeaderMap::new();
        map.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        assert_eq!(
            client_addr_of(Some(ip("10.0.0.1")), &map, &trusted(list)),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_is_read_with_its_quoting_and_ports() {
        let list = "10.0.0.0/8";
        let cases = [
            ("for=203.0.113.9", "203.0.113.9"),
            ("For=\"203.0.113.9:4711\"", "203.0.113.9"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            (
                "for=\"[2001:db8:cafe::17]\";proto=https",
                "2001:db8:cafe::17",
            ),
            (
                "for=198.51.100.1, for=203.0.113.9;by=10.0.0.1, for=10.0.0.2",
                "203.0.113.9",
            ),
            // A comma or semicolon inside quotes does not split.
            ("for=\"203.0.113.9\";host=\"a,b;c\"", "203.0.113.9"),
            // Hidden or unknown: nothing beyond the nearest trusted hop.
            ("for=198.51.100.1, for=_hidden, for=10.0.0.2", "10.0.0.2"),
            ("for=unknown", "10.0.0.1"),
            ("proto=https", "10.0.0.1"),
        ];
        for (value, expected) in cases {
            let pairs = [("forwarded", value)];
            assert_eq!(client("10.0.0.1", list, &pairs), ip(expected), "{value}");
        }
        // X-Forwarded-For, when present, is the one read.
        let both = [
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client("10.0.0.1", list, &both), ip("203.0.113.9"));
    }

    #[test]
    fn proxy_node_forms_parse() {
        assert_eq!(parse_node("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_node("[::1]"), Some(ip("::1")));
        assert_eq!(parse_node("::1"), Some(ip("::1")));
        for bad in [
            "",
            "[::1",
            "[::1]:",
            "[::1]x",
            "192.0.2.1:",
            "192.0.2.1:99999",
            "[192.0.2.1]",
        ] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
    }
}
