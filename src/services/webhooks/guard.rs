//! The webhook guard against server-side request forgery: a webhook may
//! only reach what `RELEVO_WEBHOOK_ALLOW` lists.
//!
//! The rule, checked when a webhook is saved and again on every delivery:
//! - the URL is `http` or `https`, without user or password;
//! - its host is a listed name, or an address inside a listed block;
//! - every address it is reached at is inside a listed block, or is a
//!   public address of a listed name. So loopback, private, link-local,
//!   shared (CGNAT), multicast and reserved ranges are reached only when a
//!   block lists them, and a listed name that a DNS change points at
//!   127.0.0.1 or 169.254.169.254 is refused.
//!
//! Deliveries resolve names through [`GuardedResolver`], so the addresses
//! checked are the ones connected to (no second lookup for a rebinding DNS
//! server to answer differently), and redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::config::{WebhookAllow, normalize_host};
use crate::domain::webhook::URL_MAX_BYTES;

/// How long a lookup may take when a webhook is saved.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a destination is refused; [`Refused::message`] says it in Spanish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `RELEVO_WEBHOOK_ALLOW` is empty.
    NothingAllowed,
    Malformed,
    TooLong,
    Scheme(String),
    Credentials,
    /// Neither the name nor the address is listed.
    HostNotAllowed(String),
    /// The name did not resolve.
    Unresolved(String),
    /// It resolved only to addresses the list does not open.
    AddressNotAllowed {
        host: String,
        addr: IpAddr,
    },
}

impl Refused {
    pub fn message(&self) -> String {
        match self {
            Refused::NothingAllowed => "Los webhooks están desactivados en este servidor: quien \
                lo administra debe indicar en RELEVO_WEBHOOK_ALLOW los destinos permitidos \
                (nombres de host o rangos de direcciones)."
                .to_owned(),
            Refused::Malformed => {
                "Escribe una URL completa, por ejemplo https://hooks.ejemplo.com/relevo.".to_owned()
            }
            Refused::TooLong => format!("La URL admite hasta {URL_MAX_BYTES} caracteres."),
            Refused::Scheme(scheme) => {
                format!("Solo se admiten URL http o https (esta empieza con «{scheme}:»).")
            }
            Refused::Credentials => "La URL no debe incluir usuario ni contraseña: verifica las \
                entregas con la firma X-Relevo-Signature."
                .to_owned(),
            Refused::HostNotAllowed(host) => format!(
                "«{host}» no está entre los destinos permitidos de este servidor \
                 (RELEVO_WEBHOOK_ALLOW)."
            ),
            Refused::Unresolved(host) => {
                format!("No se encontró la dirección de «{host}» (DNS).")
            }
            Refused::AddressNotAllowed { host, addr } => format!(
                "«{host}» apunta a {addr}, una dirección interna o reservada que los destinos \
                 permitidos de este servidor no incluyen (RELEVO_WEBHOOK_ALLOW)."
            ),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Refused {}

/// Whether `ip` is an ordinary public address: not loopback, private,
/// link-local, shared, multicast, documentation, benchmarking or reserved
/// (an IPv4 address inside IPv6, mapped, NAT64 or 6to4, is judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let [o0, o1, o2, _] = a.octets();
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || o0 == 0
                || (o0 == 100 && (o1 & 0xc0) == 64)
                || (o0 == 192 && o1 == 0 && o2 == 0)
                || (o0 == 198 && (o1 & 0xfe) == 18)
                || o0 >= 240)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let embedded_v4 = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(hi) << 16) | u32::from(lo),
                ))
            };
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_public(embedded_v4(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public(embedded_v4(s[1], s[2]));
            }
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x2001 && s[1] < 0x0200)
                || s[0] == 0x0100 && s[1..4] == [0, 0, 0])
        }
    }
}

/// Whether a delivery may connect to `ip`, reached through `host` (listed
/// by name or not).
fn address_allowed(allow: &WebhookAllow, name_listed: bool, ip: IpAddr) -> bool {
    allow.lists_addr(ip) || (name_listed && is_public(ip))
}

/// The URL's form and host, before any lookup: refuses what no address
/// could make acceptable.
pub fn check_url(allow: &WebhookAllow, raw: &str) -> Result<Url, Refused> {
    if allow.is_empty() {
        return Err(Refused::NothingAllowed);
    }
    let raw = raw.trim();
    if raw.len() > URL_MAX_BYTES {
        return Err(Refused::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| Refused::Malformed)?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(Refused::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    match url.host() {
        None => Err(Refused::Malformed),
        Some(url::Host::Ipv4(ip)) if allow.lists_addr(ip.into()) => Ok(url),
        Some(url::Host::Ipv6(ip)) if allow.lists_addr(ip.into()) => Ok(url),
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Err(Refused::HostNotAllowed(
            url.host_str().unwrap_or_default().to_owned(),
        )),
        // A name: listed, or possibly resolving into a listed block.
        Some(url::Host::Domain(_)) => Ok(url),
    }
}

/// The addresses of `host` a delivery may connect to (port 0: the URL's
/// port replaces it), refused when there are none.
async fn allowed_addresses(allow: &WebhookAllow, host: &str) -> Result<Vec<SocketAddr>, Refused> {
    let name_listed = allow.lists_name(host);
    let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await;
    let resolved: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return Err(Refused::Unresolved(host.to_owned())),
    };
    let Some(first) = resolved.first() else {
        return Err(Refused::Unresolved(host.to_owned()));
    };
    let first = first.ip();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| address_allowed(allow, name_listed, a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(if name_listed || allow.lists_addr(first) {
            Refused::AddressNotAllowed {
                host: normalize_host(host),
                addr: first,
            }
        } else {
            Refused::HostNotAllowed(normalize_host(host))
        });
    }
    Ok(allowed)
}

/// Everything a save checks: the URL, and that its name resolves to an
/// address the list opens. Returns the URL as it will be stored.
pub async fn check_destination(allow: &WebhookAllow, raw: &str) -> Result<Url, Refused> {
    let url = check_url(allow, raw)?;
    if let Some(url::Host::Domain(host)) = url.host() {
        allowed_addresses(allow, host).await?;
    }
    Ok(url)
}

/// The deliveries' resolver: only the addresses the list opens, so the
/// connection goes to an address that was checked.
pub struct GuardedResolver {
    allow: Arc<WebhookAllow>,
}

impl GuardedResolver {
    pub fn new(allow: Arc<WebhookAllow>) -> GuardedResolver {
        GuardedResolver { allow }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = allowed_addresses(&allow, &host).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(list: &str) -> WebhookAllow {
        list.parse().unwrap()
    }

    #[test]
    fn internal_and_reserved_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.8",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.2.7",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "151.101.1.69",
            "2606:4700::1111",
            "::ffff:8.8.4.4",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_listed_hosts() {
        let list = allow("hooks.example.com, 127.0.0.1");
        assert_eq!(
            check_url(&WebhookAllow::default(), "https://hooks.example.com/x"),
            Err(Refused::NothingAllowed)
        );
        assert!(check_url(&list, "https://hooks.example.com/x").is_ok());
        assert!(check_url(&list, "http://127.0.0.1:9000/hook").is_ok());
        assert_eq!(check_url(&list, "not a url"), Err(Refused::Malformed));
        assert_eq!(
            check_url(&list, "ftp://hooks.example.com/x"),
            Err(Refused::Scheme("ftp".into()))
        );
        assert_eq!(
            check_url(&list, "file:///etc/passwd"),
            Err(Refused::Scheme("file".into()))
        );
        assert_eq!(
            check_url(&list, "https://u:p@hooks.example.com/"),
            Err(Refused::Credentials)
        );
        assert_eq!(
            check_url(&list, "http://127.0.0.2/"),
            Err(Refused::HostNotAllowed("127.0.0.2".into()))
        );
        assert_eq!(
            check_url(&list, "http://[::1]/"),
            Err(Refused::HostNotAllowed("[::1]".into()))
        );
        // Another spelling of 127.0.0.1 is the same address.
        assert!(check_url(&list, "http://2130706433/").is_ok());
        assert_eq!(
            check_url(
                &list,
                &format!("https://hooks.example.com/{}", "a".repeat(2_000))
            ),
            Err(Refused::TooLong)
        );
    }

    #[tokio::test]
    async fn a_listed_name_pointing_inside_is_refused_unless_its_block_is_listed() {
        // `localhost` resolves to loopback without a DNS server.
        let by_name = allow("localhost");
        match check_destination(&by_name, "http://localhost:9/hook").await {
            Err(Refused::AddressNotAllowed { host, addr }) => {
                assert_eq!(host, "localhost");
                assert!(addr.is_loopback());
            }
            other => panic!("{other:?}"),
        }
        let with_block = allow("localhost 127.0.0.0/8 ::1");
        assert!(
            check_destination(&with_block, "http://localhost:9/hook")
                .await
                .is_ok()
        );
        let by_block_only = allow("127.0.0.0/8, ::1");
        assert!(
            check_destination(&by_block_only, "http://localhost:9/hook")
                .await
                .is_ok()
        );
        let other = allow("hooks.example.com");
        assert_eq!(
            check_destination(&other, "http://localhost:9/hook").await,
            Err(Refused::HostNotAllowed("localhost".into()))
        );
    }
}
