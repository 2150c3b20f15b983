//! `RELEVO_WEBHOOK_ALLOW`: where webhooks may deliver. Host names (exact,
//! or `*.example.com` for its subdomains) and addresses or CIDR blocks,
//! separated by commas or spaces. Empty by default, and then no webhook
//! can be saved: an operator decides where Relevo may send data.
//!
//! This is only the list. The rule that uses it (checked when a webhook is
//! saved and again, after DNS resolution, on every delivery) is
//! `services::webhooks::guard`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::proxies::Net;

/// A listed host name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Exact(String),
    /// Any name ending in `.` + this one (`*.example.com`), not the name itself.
    Subdomains(String),
}

/// The destinations webhooks may deliver to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookAllow {
    hosts: Vec<HostPattern>,
    nets: Vec<Net>,
}

/// A host name as compared: lower case, without the root's trailing dot.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl WebhookAllow {
    /// Nothing listed: webhooks are off.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }

    /// Whether the host name `host` is listed (by name, not by address).
    pub fn lists_name(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.hosts.iter().any(|pattern| match pattern {
            HostPattern::Exact(name) => *name == host,
            HostPattern::Subdomains(parent) => host
                .strip_suffix(parent.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        })
    }

    /// Whether `ip` is inside a listed address or block.
    pub fn lists_addr(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }
}

impl FromStr for WebhookAllow {
    type Err = String;

    fn from_str(list: &str) -> Result<WebhookAllow, String> {
        let mut allow = WebhookAllow::default();
        for item in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
        {
            let looks_like_address =
                item.contains(':') || item.contains('/') || item.parse::<IpAddr>().is_ok();
            if looks_like_address {
                allow.nets.push(item.parse()?);
                continue;
            }
            let (pattern, name) = match item.strip_prefix("*.") {
                Some(parent) => (true, parent),
                None => (false, item),
            };
            let name = normalize_host(name);
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !valid {
                return Err(format!(
                    "{item:?} is not a host name (like hooks.example.com or *.example.com), an IP address or a CIDR block"
                ));
            }
            allow.hosts.push(if pattern {
                HostPattern::Subdomains(name)
            } else {
                HostPattern::Exact(name)
            });
        }
        Ok(allow)
    }
}

impl fmt::Display for WebhookAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = self
            .hosts
            .iter()
            .map(|h| match h {
                HostPattern::Exact(name) => name.clone(),
                HostPattern::Subdomains(parent) => format!("*.{parent}"),
            })
            .collect();
        items.extend(self.nets.iter().map(ToString::to_string));
        f.write_str(&items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_subdomains_addresses_and_blocks_are_listed_apart() {
        let allow: WebhookAllow = "Hooks.Example.com., *.partner.mx 127.0.0.1, 10.1.0.0/16 ::1"
            .parse()
            .unwrap();
        assert!(allow.lists_name("hooks.example.com"));
        assert!(allow.lists_name("HOOKS.example.com."));
        assert!(!allow.lists_name("evil-hooks.example.com"));
        assert!(!allow.lists_name("example.com"));
        assert!(allow.lists_name("a.partner.mx"));
        assert!(allow.lists_name("b.a.partner.mx"));
        assert!(!allow.lists_name("partner.mx"));
        assert!(!allow.lists_name("xpartner.mx"));
        assert!(allow.lists_addr("127.0.0.1".parse().unwrap()));
        assert!(!allow.lists_addr("127.0.0.2".parse().unwrap()));
        assert!(allow.lists_addr("10.1.255.3".parse().unwrap()));
        assert!(allow.lists_addr("::1".parse().unwrap()));
        assert!(allow.lists_addr("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!allow.lists_name("127.0.0.1"));
    }

    #[test]
    fn garbage_is_refused_and_empty_is_off() {
        assert!("".parse::<WebhookAllow>().unwrap().is_empty());
        for bad in ["http://x.com", "a..b", "10.0.0.0/33", "exa mple$.com", "*."] {
            assert!(bad.parse::<WebhookAllow>().is_err(), "{bad}");
        }
    }
}
