//! Rate limits, so one client cannot crowd out the others: how often one
//! address may open WebSockets or try to log in, and how many frames one
//! connection may send.
//!
//! Each limit is a token bucket (`governor`'s GCRA): a burst up front,
//! then a steady rate. A limit configured as 0 is off.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;

/// The address a request came from: the TCP peer, which the server puts
/// on every request. Forwarding headers (`X-Forwarded-For`) are not
/// trusted: any client can write them. `None` where no server put it
/// there (a router called directly, in unit tests); those are not limited.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddress, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientAddress(peer.map(|ConnectInfo(peer)| peer.ip())))
    }
}

/// The answer to a request over a limit: 429 with `Retry-After`, in the
/// API's `{"error": ...}` shape.
pub fn too_many(what: &str, wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let text = format!("too many {what} from this address; try again in {seconds} s");
    let mut response =
        (StatusCode::TOO_MANY_REQUESTS, axum::Json(serde_json::json!({ "error": text }))).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// A limit per client address. IPv6 addresses count per /64: one host
/// is usually handed a whole /64 and could otherwise pick a fresh address
/// for every request.
pub struct PerAddress {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl PerAddress {
    /// `per_minute` after a burst of `burst`; off when either is 0.
    pub fn per_minute(per_minute: u32, burst: u32) -> PerAddress {
        let quota = NonZeroU32::new(per_minute)
            .zip(NonZeroU32::new(burst))
            .map(|(rate, burst)| Quota::per_minute(rate).allow_burst(burst));
        PerAddress { limiter: quota.map(RateLimiter::keyed) }
    }

    /// Counts one attempt from `address`; `Err` says how long it should
    /// wait before the next one can pass.
    pub fn check(&self, address: ClientAddress) -> Result<(), Duration> {
        let (Some(limiter), ClientAddress(Some(address))) = (&self.limiter, address) else { return Ok(()) };
        limiter.check_key(&bucket(address)).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops the buckets of addresses that are full again, so the map does
    /// not grow with every address ever seen.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl fmt::Debug for PerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses = self.limiter.as_ref().map(DefaultKeyedRateLimiter::len);
        f.debug_struct("PerAddress").field("addresses", &addresses).finish()
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
    /// Login attempts.
    pub logins: PerAddress,
}

impl Limiters {
    /// The limits `config` asks for.
    pub fn new(config: &Config) -> Limiters {
        Limiters {
            connections: PerAddress::per_minute(config.connections_per_minute_per_ip, config.connection_burst),
            logins: PerAddress::per_minute(config.logins_per_minute_per_ip, config.logins_per_minute_per_ip),
        }
    }

    /// Forgets idle addresses of every limit.
    pub fn forget_idle(&self) {
        self.connections.forget_idle();
        self.logins.forget_idle();
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
}

impl FrameLimit {
    /// `per_second` after a burst of `burst`; off when either is 0.
    pub fn new(per_second: u32, burst: u32) -> FrameLimit {
        let quota = NonZeroU32::new(per_second)
            .zip(NonZeroU32::new(burst))
            .map(|(rate, burst)| Quota::per_second(rate).allow_burst(burst));
        FrameLimit { frames: quota.map(|quota| (RateLimiter::direct(quota), RateLimiter::direct(quota))) }
    }

    /// Counts one frame.
    pub fn check(&self) -> Verdict {
        let Some((frames, refusals)) = &self.frames else { return Verdict::Pass };
        match frames.check() {
            Ok(()) => Verdict::Pass,
            Err(_) if refusals.check().is_err() => Verdict::Close,
            Err(not_until) => Verdict::Refuse { retry_after: not_until.wait_time_from(DefaultClock::default().now()) },
        }
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
