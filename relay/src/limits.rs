//! Rate limits, so one client cannot crowd out the others: how often one
//! address may open WebSockets or try to log in, how often one account may
//! be tried, and how many frames one connection may send.
//!
//! Each limit is a token bucket (`governor`'s GCRA): a burst up front,
//! then a steady rate. A limit configured as 0 is off. Each counts what it
//! refuses in the relay's metrics (`kefu_rate_limited_total`).
//!
//! An address is the TCP peer's, unless the peer is a proxy the relay was
//! told to trust (`--trusted-proxy`): then it is the client that proxy
//! names in `X-Forwarded-For` (see [`TrustedProxies`]).

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;

use crate::config::Config;
use crate::metrics::{Limit, Metrics};

/// The address a request came from: what the server found for it (see
/// [`TrustedProxies::client`]) or else the TCP peer. `None` where no
/// server put either there (a router called directly, in unit tests);
/// those are not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

/// For logs: the address, or `unknown`.
impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => address.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddress, Self::Rejection> {
        if let Some(found) = parts.extensions.get::<ClientAddress>() {
            return Ok(*found);
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientAddress(peer.map(|ConnectInfo(peer)| peer.ip())))
    }
}

/// The proxies in front of the relay whose `X-Forwarded-For` it believes.
/// Cloning is shallow: every connection holds one.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(std::sync::Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(blocks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(blocks.into())
    }

    /// The client of a request from `peer`: `peer` itself unless it is a
    /// trusted proxy; then, walking `X-Forwarded-For` from the right (each
    /// proxy appends the address it was reached from), the first address
    /// that is not a trusted proxy. Entries left of it were written by
    /// whoever sent them, anyone, and are never read. An entry that is
    /// not an address stops the walk at the last one that was.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |address: IpAddr| self.0.iter().any(|block| block.contains(&unmapped(address)));
        if !trusted(peer) {
            return peer;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        let mut client = peer;
        for entry in forwarded.into_iter().rev() {
            let Some(address) = forwarded_address(entry) else { break };
            client = address;
            if !trusted(address) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`[::1]:80`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) as the IPv4 one.
fn unmapped(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The answer to a request over a limit: 429 with `Retry-After`, in the
/// API's `{"error": ...}` shape. `what` says what there was too much of,
/// e.g. "connections from this address".
pub fn too_many(what: &str, wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let text = format!("too many {what}; try again in {seconds} s");
    let mut response =
        (StatusCode::TOO_MANY_REQUESTS, axum::Json(serde_json::json!({ "error": text }))).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// A limit per key: a bucket each.
struct PerKey<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    refused: Counter,
}

impl<K: Hash + Eq + Clone> PerKey<K> {
    /// Off when the rate or the burst is 0.
    fn new(rate: Option<Quota>) -> PerKey<K> {
        PerKey { limiter: rate.map(RateLimiter::keyed), refused: Counter::default() }
    }

    fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| {
            self.refused.inc();
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    /// Drops the buckets that are full again, so the map does not grow
    /// with every key ever seen.
    fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn keys(&self) -> Option<usize> {
        self.limiter.as_ref().map(DefaultKeyedRateLimiter::len)
    }
}

fn quota(rate: u32, burst: u32, per: fn(NonZeroU32) -> Quota) -> Option<Quota> {
    NonZeroU32::new(rate).zip(NonZeroU32::new(burst)).map(|(rate, burst)| per(rate).allow_burst(burst))
}

/// A limit per client address. IPv6 addresses count per /64: one host
/// is usually handed a whole /64 and could otherwise pick a fresh address
/// for every request.
pub struct PerAddress(PerKey<IpAddr>);

impl PerAddress {
    /// `per_minute` after a burst of `burst`; off when either is 0.
    pub fn per_minute(per_minute: u32, burst: u32) -> PerAddress {
        PerAddress(PerKey::new(quota(per_minute, burst, Quota::per_minute)))
    }

    /// Counts its refusals in `refused`.
    pub fn counted_in(mut self, refused: Counter) -> PerAddress {
        self.0.refused = refused;
        self
    }

    /// Counts one attempt from `address`; `Err` says how long it should
    /// wait before the next one can pass.
    pub fn check(&self, address: ClientAddress) -> Result<(), Duration> {
        let ClientAddress(Some(address)) = address else { return Ok(()) };
        self.0.check(&bucket(address))
    }

    /// Drops the buckets of addresses that are full again.
    pub fn forget_idle(&self) {
        self.0.forget_idle();
    }
}

impl fmt::Debug for PerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerAddress").field("addresses", &self.0.keys()).finish()
    }
}

/// A limit per login name, whichever address tries it: guessing one
/// agent's password from many addresses is held back as well. Emails
/// count case-insensitively, as logins compare them. Unknown emails have
/// buckets too, so a refusal tells nothing of which accounts exist.
pub struct PerAccount(PerKey<String>);

impl PerAccount {
    /// `per_hour` after a burst of as many; off when 0.
    pub fn per_hour(per_hour: u32) -> PerAccount {
        PerAccount(PerKey::new(quota(per_hour, per_hour, Quota::per_hour)))
    }

    /// Counts its refusals in `refused`.
    pub fn counted_in(mut self, refused: Counter) -> PerAccount {
        self.0.refused = refused;
        self
    }

    /// Counts one attempt on `email`; `Err` says how long the account's
    /// next attempt must wait.
    pub fn check(&self, email: &str) -> Result<(), Duration> {
        self.0.check(&email.trim().to_lowercase())
    }

    /// Drops the buckets of accounts that are full again.
    pub fn forget_idle(&self) {
        self.0.forget_idle();
    }
}

impl fmt::Debug for PerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerAccount").field("accounts", &self.0.keys()).finish()
    }
}

/// The key an address is counted under.
fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// The per-address limits every request handler shares.
#[derive(Debug)]
pub struct Limiters {
    /// WebSocket upgrades.
    pub connections: PerAddress,
    /// Login attempts per address.
    pub logins: PerAddress,
    /// Login attempts per account.
    pub accounts: PerAccount,
}

impl Limiters {
    /// The limits `config` asks for, counting their refusals in `metrics`.
    pub fn new(config: &Config, metrics: &Metrics) -> Limiters {
        Limiters {
            connections: PerAddress::per_minute(config.connections_per_minute_per_ip, config.connection_burst)
                .counted_in(metrics.refusals(Limit::Connections)),
            logins: PerAddress::per_minute(config.logins_per_minute_per_ip, config.logins_per_minute_per_ip)
                .counted_in(metrics.refusals(Limit::Logins)),
            accounts: PerAccount::per_hour(config.logins_per_hour_per_account)
                .counted_in(metrics.refusals(Limit::Accounts)),
        }
    }

    /// Forgets idle addresses of every limit.
    pub fn forget_idle(&self) {
        self.connections.forget_idle();
        self.logins.forget_idle();
        self.accounts.forget_idle();
    }
}

/// What the frame limit says about the next frame of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Act on it.
    Pass,
    /// Refuse it with `RateLimited` and carry on; the budget has room for
    /// another frame after `retry_after`.
    Refuse { retry_after: Duration },
    /// The client keeps flooding long after being told: close.
    Close,
}

/// The frame limit of one connection. Refusals are themselves limited by
/// a second bucket of the same size: a client that goes on sending at
/// twice the rate or more, refusals notwithstanding, is closed rather than
/// answered forever.
pub struct FrameLimit {
    frames: Option<(DefaultDirectRateLimiter, DefaultDirectRateLimiter)>,
    refused: Counter,
}

impl FrameLimit {
    /// `per_second` after a burst of `burst`; off when either is 0.
    pub fn new(per_second: u32, burst: u32) -> FrameLimit {
        let quota = NonZeroU32::new(per_second)
            .zip(NonZeroU32::new(burst))
            .map(|(rate, burst)| Quota::per_second(rate).allow_burst(burst));
        let frames = quota.map(|quota| (RateLimiter::direct(quota), RateLimiter::direct(quota)));
        FrameLimit { frames, refused: Counter::default() }
    }

    /// Counts its refusals (and the closes) in `refused`.
    pub fn counted_in(mut self, refused: Counter) -> FrameLimit {
        self.refused = refused;
        self
    }

    /// Counts one frame.
    pub fn check(&self) -> Verdict {
        let Some((frames, refusals)) = &self.frames else { return Verdict::Pass };
        let Err(not_until) = frames.check() else { return Verdict::Pass };
        self.refused.inc();
        if refusals.check().is_err() {
            return Verdict::Close;
        }
        Verdict::Refuse { retry_after: not_until.wait_time_from(DefaultClock::default().now()) }
    }
}

impl fmt::Debug for FrameLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameLimit").field("on", &self.frames.is_some()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: IpAddr) -> ClientAddress {
        ClientAddress(Some(address))
    }

    #[test]
    fn an_address_gets_its_burst_then_waits() {
        let limit = PerAddress::per_minute(1, 3);
        let here: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(limit.check(at(here)).is_ok());
        }
        let wait = limit.check(at(here)).err();
        assert!(wait.is_some_and(|w| w > Duration::from_secs(50)), "{wait:?}");
        assert!(limit.check(at([10, 0, 0, 2].into())).is_ok(), "another address has its own bucket");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let limit = PerAddress::per_minute(1, 1);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(limit.check(at(one)).is_ok());
        assert!(limit.check(at(same_64)).is_err());
        let v4: IpAddr = [192, 0, 2, 1].into();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(limit.check(at(v4)).is_ok());
        assert!(limit.check(at(mapped)).is_err());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limit = PerAddress::per_minute(0, 10);
        assert!((0..1000).all(|_| limit.check(at([10, 0, 0, 1].into())).is_ok()));
        let frames = FrameLimit::new(0, 0);
        assert!((0..1000).all(|_| frames.check() == Verdict::Pass));
    }

    #[test]
    fn an_account_is_counted_whatever_the_address_and_the_case() {
        let limit = PerAccount::per_hour(2);
        assert!(limit.check("ann@example.com").is_ok());
        assert!(limit.check(" ANN@example.com").is_ok());
        let wait = limit.check("Ann@Example.com").err();
        assert!(wait.is_some_and(|w| w > Duration::from_secs(60)), "{wait:?}");
        assert!(limit.check("bob@example.com").is_ok(), "another account has its own bucket");
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_only_from_the_right() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let balancer = ip("10.0.0.2");
        assert_eq!(proxies.client(balancer, &forwarded("203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(
            proxies.client(balancer, &forwarded("198.51.100.1, 203.0.113.7, 10.0.0.9")),
            ip("203.0.113.7"),
            "the right-most address that is not a proxy; what the client wrote left of it is not read"
        );
        assert_eq!(proxies.client(ip("192.0.2.1"), &forwarded("203.0.113.7")), ip("192.0.2.1"), "not a proxy");
        assert_eq!(proxies.client(balancer, &HeaderMap::new()), balancer, "a proxy that names nobody");
        assert_eq!(proxies.client(balancer, &forwarded("203.0.113.7, junk")), balancer);
        assert_eq!(proxies.client(balancer, &forwarded("[2001:db8::1]:4711")), ip("2001:db8::1"));
        assert_eq!(proxies.client(ip("::ffff:127.0.0.1"), &forwarded("203.0.113.7")), ip("203.0.113.7"));
        let mut two = forwarded("198.51.100.1");
        two.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        assert_eq!(proxies.client(balancer, &two), ip("203.0.113.7"), "several headers read as one list");
        assert_eq!(TrustedProxies::default().client(balancer, &forwarded("203.0.113.7")), balancer);
    }

    #[test]
    fn refusals_are_counted_and_passes_are_not() {
        let refused = Counter::default();
        let limit = PerAddress::per_minute(1, 2).counted_in(refused.clone());
        let here = at([10, 0, 0, 1].into());
        let passed = (0..5).filter(|_| limit.check(here).is_ok()).count();
        assert_eq!((passed, refused.get()), (2, 3));
        let refused = Counter::default();
        let frames = FrameLimit::new(1, 2).counted_in(refused.clone());
        let verdicts: Vec<_> = (0..6).map(|_| frames.check()).collect();
        assert_eq!(verdicts.last(), Some(&Verdict::Close));
        assert_eq!(refused.get(), 4, "refusals and the close: {verdicts:?}");
    }

    #[test]
    fn a_flood_is_refused_then_closed() {
        let frames = FrameLimit::new(1, 5);
        let verdicts: Vec<_> = (0..11).map(|_| frames.check()).collect();
        assert_eq!(&verdicts[..5], [Verdict::Pass; 5]);
        for verdict in &verdicts[5..10] {
            // One frame a second: the next one fits within a second.
            let Verdict::Refuse { retry_after } = verdict else { panic!("{verdicts:?}") };
            assert!(*retry_after > Duration::ZERO && *retry_after <= Duration::from_secs(1), "{retry_after:?}");
        }
        assert_eq!(verdicts[10], Verdict::Close);
    }
}
