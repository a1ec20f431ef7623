//! The console's session cookie, and the one check of whether a request
//! comes from the relay's own pages.
//!
//! A browser attaches the `kefu_session` cookie to every request for the
//! relay, whichever page makes it, WebSocket upgrades included. So the
//! cookie counts only on a request whose `Origin` is the relay's own (or
//! that has none: no browser page made it); the HTTP API asks for a CSRF
//! token besides on requests that change something (see `http::extract`).

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};

use super::{SignedIn, signed_in};
use crate::config::PublicUrl;
use crate::store::{self, Store};

/// The cookie that carries a console's session token.
pub const SESSION_COOKIE: &str = "kefu_session";

/// The value of the `kefu_session` cookie.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The agent whose session cookie a request (a WebSocket upgrade) carries.
/// `None` without a cookie, for an unknown, expired or deactivated
/// session, and when the request comes from a page of another origin.
pub async fn agent_from_cookie(
    store: &Store,
    headers: &HeaderMap,
    public_url: Option<&PublicUrl>,
) -> Result<Option<SignedIn>, store::Error> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    if !same_origin(headers, public_url) {
        return Ok(None);
    }
    signed_in(store, token).await
}

/// Whether the request's `Origin`, if it has one, is the relay's own: the
/// origin it was sent to (its `Host`), or the configured public URL's
/// (a proxy may pass another `Host`). Ports are compared as written,
/// except that a scheme's default port may be left out on either side;
/// the scheme itself is not compared with `Host`, as TLS may end at a
/// proxy in front of the relay.
pub fn same_origin(headers: &HeaderMap, public_url: Option<&PublicUrl>) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if public_url.is_some_and(|public| origin.eq_ignore_ascii_case(&public.origin)) {
        return true;
    }
    let Some(host) = headers.get(HOST).and_then(|host| host.to_str().ok()) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let without_default = |value: &str| value.strip_suffix(default_port).map(str::to_owned).unwrap_or(value.to_owned());
    without_default(authority).eq_ignore_ascii_case(&without_default(host))
}

/// Whether the session cookie must be `Secure`: the relay serves TLS
/// itself (`tls`, from `--tls-cert`), its public URL is https, or a proxy
/// in front says this request came over https. (Otherwise the relay
/// speaks plain HTTP, and a `Secure` cookie would not come back over that,
/// so it is not.)
pub fn must_be_secure(headers: &HeaderMap, public_url: Option<&PublicUrl>, tls: bool) -> bool {
    tls || public_url.is_some_and(|public| public.https)
        || headers.get("x-forwarded-proto").is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A `Set-Cookie` value for the session cookie: HttpOnly, so no script
/// reads it, and SameSite=Strict, so no other site's page sends it.
pub fn set_session_cookie(token: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}");
    // Tokens are hex, so the value is always a valid header.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("kefu_session=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let found = headers(&[("cookie", "theme=dark; kefu_session=abc123 ; other=1")]);
        assert_eq!(session_token(&found), Some("abc123"));
        let split = headers(&[("cookie", "theme=dark"), ("cookie", "kefu_session=def")]);
        assert_eq!(session_token(&split), Some("def"));
        assert_eq!(session_token(&headers(&[("cookie", "xkefu_session=abc")])), None);
        assert_eq!(session_token(&headers(&[("cookie", "kefu_session=")])), None);
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn origins_must_match_the_host_or_the_public_url() {
        let check = |origin: &str, host: &str| same_origin(&headers(&[("origin", origin), ("host", host)]), None);
        assert!(check("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(check("https://Chat.Example", "chat.example"));
        assert!(check("https://chat.example", "chat.example:443"));
        assert!(check("http://chat.example:80", "chat.example"));
        assert!(!check("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!check("https://evil.example", "chat.example"));
        assert!(!check("https://chat.example.evil", "chat.example"));
        assert!(!check("null", "chat.example"));
        assert!(!check("https://chat.example:8443", "chat.example"));
        assert!(same_origin(&headers(&[("host", "chat.example")]), None), "no Origin: not a browser page's request");
        assert!(!same_origin(&headers(&[("origin", "https://chat.example")]), None), "an Origin but no Host");

        let public = PublicUrl::parse("https://chat.example").unwrap();
        let behind_proxy = headers(&[("origin", "https://chat.example"), ("host", "relay.internal:8080")]);
        assert!(same_origin(&behind_proxy, Some(&public)), "the proxy passed its upstream's Host");
        assert!(!same_origin(&behind_proxy, None));
        let evil = headers(&[("origin", "https://evil.example"), ("host", "relay.internal:8080")]);
        assert!(!same_origin(&evil, Some(&public)));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_when_https() {
        assert_eq!(
            set_session_cookie("abc", 60, false),
            "kefu_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
        );
        assert_eq!(
            set_session_cookie("abc", 60, true),
            "kefu_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
        );
        let https = PublicUrl::parse("https://chat.example").unwrap();
        let http = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
        assert!(must_be_secure(&HeaderMap::new(), Some(&https), false), "the public URL says https, no header needed");
        assert!(!must_be_secure(&HeaderMap::new(), Some(&http), false));
        assert!(!must_be_secure(&HeaderMap::new(), None, false));
        assert!(must_be_secure(&headers(&[("x-forwarded-proto", "https")]), None, false));
        assert!(must_be_secure(&HeaderMap::new(), Some(&http), true), "the relay serves TLS itself");
    }
}
