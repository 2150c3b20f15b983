//! `RELEVO_TRUSTED_PROXIES`: the addresses and networks whose
//! `X-Forwarded-For`/`Forwarded` headers are believed (see
//! `http::auth::client_addr`, which reads those headers). A setting, so it
//! lives with the configuration, below every layer that reads it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One address or CIDR block (also the networks of
/// `RELEVO_WEBHOOK_ALLOW`, see [`super::WebhookAllow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Net {
    /// Canonical (an IPv4-mapped IPv6 address is stored as IPv4).
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Net, String> {
        let bad = || format!("{text:?} is not an IP address or a CIDR block");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        // An IPv4-mapped block (::ffff:10.0.0.0/104) is the IPv4 block.
        let (addr, max, offset) = match (addr, addr.to_canonical()) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => (IpAddr::V4(v4), 32, 96),
            (IpAddr::V4(_), _) => (addr, 32, 0),
            (IpAddr::V6(_), _) => (addr, 128, 0),
        };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                let p: u8 = p.parse().map_err(|_| bad())?;
                p.checked_sub(offset)
                    .filter(|p| *p <= max)
                    .ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Net { addr, prefix })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The reverse proxies whose forwarding headers are believed
/// (`RELEVO_TRUSTED_PROXIES`). Empty by default: the TCP peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Addresses and CIDR blocks, IPv4 or IPv6, separated by commas or
    /// spaces: `10.0.0.0/8, 192.168.1.10, fd00::/8`.
    fn from_str(list: &str) -> Result<TrustedProxies, String> {
        let nets = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.nets.iter().map(ToString::to_string).collect();
        f.write_str(&nets.join(", "))
    }
}
