//! `image_url`: a photo fetched by its job. Only from public addresses unless the pipeline's
//! `fetch.allow_private` says otherwise: every address a host resolves to is checked, and the
//! connection goes to the checked addresses themselves, so that a DNS answer cannot change
//! between the check and the connection. Redirects are resolved and checked the same way;
//! no proxy from the environment is used (it would resolve the host instead).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::queue::FetchConfig;

/// The longest `image_url` taken, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{0}` is not an http or https URL with a host")]
    NotHttp(String),
    #[error("the URL is longer than {MAX_URL_BYTES} bytes")]
    TooLong,
    #[error(
        "the photo's host is or resolves to {0}, which is not a public address; this pipeline \
         fetches from public addresses only"
    )]
    NotPublic(IpAddr),
    #[error("the photo's server answered {0}")]
    Refused(u16),
    #[error("the photo is larger than {0} bytes, the most this pipeline fetches")]
    TooLarge(u64),
    #[error("the photo's server sent `{0}`, not an image")]
    NotImage(String),
    /// Worth another try later: the server or the network failed, or answered too slowly.
    #[error("the photo could not be fetched: {0}")]
    Failed(#[source] ureq::Error),
}

impl FetchError {
    /// Whether the same fetch may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Failed(_) => true,
            Self::Refused(status) => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Whether an address is one anybody on the internet reaches: not loopback, private, link-local,
/// shared (carrier NAT), documentation, benchmarking, multicast or reserved. IPv6 forms that
/// carry an IPv4 address (mapped, NAT64, 6to4) are judged by it. (`IpAddr::is_global` is not
/// stable yet.)
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: usize| {
        let [x, y] = [segments[high], segments[high + 1]];
        Ipv4Addr::new((x >> 8) as u8, x as u8, (y >> 8) as u8, y as u8)
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    match segments {
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => is_public_v4(embedded_v4(6)),
        [0x2002, ..] => is_public_v4(embedded_v4(1)),
        // Teredo and documentation.
        [0x2001, 0, ..] | [0x2001, 0xdb8, ..] => false,
        [first, ..] => {
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local
                || segments[..6] == [0; 6]) // IPv4-compatible and other reserved
        }
    }
}

/// The URL of an `image_url`, checked as far as it can be without a lookup: http or https,
/// a host, and, when the host is an address, a permitted one.
pub fn check_url(text: &str, config: &FetchConfig) -> Result<Uri, FetchError> {
    if text.len() > MAX_URL_BYTES {
        return Err(FetchError::TooLong);
    }
    let not_http = || FetchError::NotHttp(text.chars().take(200).collect());
    let uri: Uri = text.parse().map_err(|_| not_http())?;
    let http = matches!(uri.scheme_str(), Some("http" | "https"));
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(not_http)?;
    if !http {
        return Err(not_http());
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>()
        && !config.allow_private
        && !is_public(ip)
    {
        return Err(FetchError::NotPublic(ip));
    }
    Ok(uri)
}

/// Resolves as ureq does, then refuses (and remembers) an address that is not public.
#[derive(Debug)]
struct PublicOnly {
    refused: Arc<Mutex<Option<IpAddr>>>,
}

impl Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addresses = DefaultResolver::default().resolve(uri, config, timeout)?;
        if let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
            *self.refused.lock().expect("not poisoned") = Some(bad.ip());
            return Err(ureq::Error::HostNotFound);
        }
        Ok(addresses)
    }
}

/// Fetches a photo, blocking (run it off the async runtime).
pub fn fetch(url: &str, config: &FetchConfig) -> Result<Bytes, FetchError> {
    let uri = check_url(url, config)?;
    let agent_config = ureq::Agent::config_builder()
        .proxy(None)
        .timeout_global(Some(config.timeout))
        .max_redirects(config.max_redirects)
        .max_redirects_will_error(true)
        .save_redirect_history(false)
        .http_status_as_error(false)
        .user_agent(concat!("librarian/", env!("CARGO_PKG_VERSION")))
        .build();
    let refused = Arc::new(Mutex::new(None));
    let agent = match config.allow_private {
        true => ureq::Agent::new_with_config(agent_config),
        false => ureq::Agent::with_parts(
            agent_config,
            DefaultConnector::default(),
            PublicOnly {
                refused: refused.clone(),
            },
        ),
    };
    let outcome = agent.get(uri).call();
    if let Some(ip) = *refused.lock().expect("not poisoned") {
        return Err(FetchError::NotPublic(ip));
    }
    let mut response = outcome.map_err(FetchError::Failed)?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(FetchError::Refused(status));
    }
    let content_type = response
        .headers()
        .get(ureq::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !(content_type.starts_with("image/") || content_type.starts_with("application/octet-stream"))
    {
        return Err(FetchError::NotImage(
            content_type.chars().take(100).collect(),
        ));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(config.max_bytes)
        .read_to_vec();
    match body {
        Ok(bytes) => Ok(Bytes::from(bytes)),
        Err(ureq::Error::BodyExceedsLimit(_)) => Err(FetchError::TooLarge(config.max_bytes)),
        Err(error) => Err(FetchError::Failed(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        let not_public = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
            "::127.0.0.1",
        ];
        for text in not_public {
            assert!(!is_public(text.parse().unwrap()), "{text} is not public");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ];
        for text in public {
            assert!(is_public(text.parse().unwrap()), "{text} is public");
        }
    }

    #[test]
    fn a_url_is_checked_before_any_lookup() {
        let strict = FetchConfig::default();
        for refused in [
            "ftp://example.com/a.png",
            "file:///etc/passwd",
            "example.com/a.png",
            "http://",
        ] {
            assert!(
                matches!(check_url(refused, &strict), Err(FetchError::NotHttp(_))),
                "{refused}"
            );
        }
        for private in [
            "http://127.0.0.1/a.png",
            "http://[::1]:8080/a",
            "https://169.254.169.254/latest",
        ] {
            assert!(
                matches!(check_url(private, &strict), Err(FetchError::NotPublic(_))),
                "{private}"
            );
        }
        assert!(check_url("https://example.com/a.png", &strict).is_ok());
        let open = FetchConfig {
            allow_private: true,
            ..FetchConfig::default()
        };
        assert!(check_url("http://127.0.0.1/a.png", &open).is_ok());
    }
}
