//! The client's address behind reverse proxies. Every limit keyed on an address (the write
//! rate, held requests, unpaid checkouts) must key on the client, not on the proxy all clients
//! share; yet a header naming the client can be written by anyone. So the header is read only
//! on a connection from a proxy the operator trusts (`--trusted-proxy`), and from it only the
//! right-most hop no trusted proxy vouches for: hops further left were written by that client
//! itself, so they may be forged.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::config::{ForwardedHeader, TrustedProxies};

/// The address of the client a request came from, once proxies are seen through: set on every
/// request's extensions by [`find_client_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.ranges.iter().any(|range| range.contains(&address))
    }

    /// The client of a request that arrived from `peer` with `headers`: the peer itself unless
    /// it is trusted; else, walking the named hops from the right, the first one not trusted.
    /// A hop that is not an address (`unknown`, an obfuscated name) ends the walk at the
    /// trusted proxy that reported it, since nothing to its left can be believed.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for hop in self.hops(headers).into_iter().rev() {
            match hop {
                Some(address) if self.trusts(address) => client = address,
                Some(address) => return address,
                None => return client,
            }
        }
        client
    }

    /// The hops the header names, left (farthest) to right (nearest); `None` for one that is
    /// not an address.
    fn hops(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let (name, hop): (&str, fn(&str) -> Option<&str>) = match self.header {
            ForwardedHeader::XForwardedFor => ("x-forwarded-for", |element| Some(element)),
            ForwardedHeader::Forwarded => ("forwarded", forwarded_for),
        };
        headers
            .get_all(name)
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("unknown").split(','))
            .map(|element| hop(element).and_then(parse_node).map(|a| a.to_canonical()))
            .collect()
    }
}

/// The `for=` of one RFC 7239 element (`for=192.0.2.1;proto=https`), quotes removed.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write one: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    IpAddr::from_str(node)
        .ok()
        .or_else(|| SocketAddr::from_str(node).ok().map(|socket| socket.ip()))
        .or_else(|| {
            let inner = node.strip_prefix('[')?.strip_suffix(']')?;
            IpAddr::from_str(inner).ok()
        })
}

/// One address or range of `--trusted-proxy`: `10.0.0.0/8`, `192.0.2.7` or `::1`.
pub fn parse_trusted(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    IpNet::from_str(text)
        .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
        .map_err(|_| format!("`{text}` is neither an address nor a range like 10.0.0.0/8"))
}

/// The middleware: finds the client's address once, for every layer and handler after it.
pub async fn find_client_address(
    State(proxies): State<std::sync::Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = client_address_of(&proxies, &request);
    request.extensions_mut().insert(ClientAddress(client));
    next.run(request).await
}

fn client_address_of(proxies: &TrustedProxies, request: &Request) -> IpAddr {
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => proxies.client_of(peer.ip(), request.headers()),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// The client's address from a request's extensions; a router served without connection info
/// (in-process tests) counts as one client.
pub(crate) fn client_address(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ClientAddress>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |found| found.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(ranges: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies {
            ranges: ranges.iter().map(|r| parse_trusted(r).unwrap()).collect(),
            header,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_str(name).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let forged = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(trusted.client_of(ip("192.0.2.9"), &forged), ip("192.0.2.9"));
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_of(ip("10.0.0.1"), &forged), ip("10.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "192.0.2.7"], ForwardedHeader::XForwardedFor);
        // The client forged the left-most hop; the proxies appended the client and themselves.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.1.1.1")]);
        assert_eq!(
            trusted.client_of(ip("192.0.2.7"), &chain),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn repeated_headers_read_as_one_list_and_ports_are_dropped() {
        let trusted = proxies(&["127.0.0.1"], ForwardedHeader::XForwardedFor);
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.4:5123"),
        ]);
        assert_eq!(
            trusted.client_of(ip("127.0.0.1"), &split),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let trusted = proxies(&["127.0.0.1"], ForwardedHeader::XForwardedFor);
        assert_eq!(
            trusted.client_of(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn only_trusted_hops_leave_the_left_most_as_the_client() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let inside = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(trusted.client_of(ip("10.0.0.1"), &inside), ip("10.9.9.9"));
    }

    #[test]
    fn a_hop_that_is_no_address_stops_at_the_proxy_that_wrote_it() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let hidden = headers(&[("x-forwarded-for", "6.6.6.6, unknown, 10.1.1.1")]);
        assert_eq!(trusted.client_of(ip("10.0.0.1"), &hidden), ip("10.1.1.1"));
    }

    #[test]
    fn rfc_7239_forwarded_is_read_only_when_chosen() {
        let trusted = proxies(&["127.0.0.1"], ForwardedHeader::Forwarded);
        let both = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https;by=127.0.0.1",
            ),
        ]);
        assert_eq!(trusted.client_of(ip("127.0.0.1"), &both), ip("2001:db8::1"));
        let by_x = proxies(&["127.0.0.1"], ForwardedHeader::XForwardedFor);
        let only_forwarded = headers(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(
            by_x.client_of(ip("127.0.0.1"), &only_forwarded),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let trusted = proxies(&["127.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let chain = headers(&[("x-forwarded-for", "::ffff:198.51.100.4")]);
        assert_eq!(
            trusted.client_of(ip("::ffff:127.0.0.1"), &chain),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        assert_eq!(
            parse_trusted("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_trusted("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(parse_trusted("::1").unwrap().to_string(), "::1/128");
        assert!(parse_trusted("proxy.local").is_err());
        assert!(parse_trusted("10.0.0.0/33").is_err());
    }
}
