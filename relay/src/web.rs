//! The built web apps, served from `Config::web_dir`.
//!
//! `cargo xtask build-web` writes that folder: `kefu.js` (the loader site
//! owners embed), `widget.html` (the chat page, in an iframe or full page),
//! `demo.html`, and `assets/` with content-hashed file names. Every file
//! has `.br` and `.gz` siblings made at build time, so the relay only picks
//! one by the request's `Accept-Encoding` and never compresses on the fly.
//!
//! | path | file | cache |
//! | --- | --- | --- |
//! | `/kefu.js` | `kefu.js` | 5 minutes: the URL is fixed, so updates must reach pages soon |
//! | `/assets/*` | `assets/*` | a year, immutable: a new build makes new names |
//! | `/widget` | `widget.html`, filled in ([`framing`]) | revalidated each time: it names the current assets |
//! | `/c/{site}` | `widget.html`, filled in | the same page, full screen, for webviews |
//! | `/kefu-sw.js` | `kefu-sw.js` | revalidated: the widget's service worker, new with each build |
//! | `/demo` | `demo.html` | revalidated |
//! | `/console` | `console.html` | revalidated; the agent console, never framed |
//! | `/` | redirect to `/demo` | |
//!
//! The widget page is the one file not served as it lies: the relay writes
//! into it which site it is for and which page it may talk to, and sets its
//! `frame-ancestors` to match ([`framing`]). It is small enough to go
//! uncompressed.
//!
//! The files come from the copy embedded in the binary, or from
//! `--web-dir` when given ([`files`]); the routes are the same for both.
//! When there is no web build (a binary built before `build-web`, or a
//! folder without `kefu.js`) every one of these answers 503 with the
//! command that builds it, so a relay started before the build says so.

use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use axum::{Extension, Router};
use std::sync::Arc;

pub use self::files::{EmbeddedFile, EmbeddedWeb, WebFiles};
use crate::state::AppState;

/// What a request for a web app gets when `cargo xtask build-web` has not
/// run.
pub const NOT_BUILT: &str = "web apps not built: run cargo xtask build-web";

const LOADER_CACHE: &str = "public, max-age=300";
const HASHED_CACHE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The widget page's policy. Any site may frame it (`frame-ancestors *`,
/// and no `X-Frame-Options`) unless its admin listed allowed origins (see
/// [`framing`]); what runs inside is only our own module
/// script and wasm (the page has no inline script), talking only to this
/// relay. Inline styles stay allowed because the app sets `style`
/// attributes.
const WIDGET_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors *";

/// The agent console's policy: like the widget's, but no site may frame
/// it (clickjacking an agent's session), and it talks to this relay only.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Routes for kefu.js, the widget page, its assets, the demo page and the
/// agent console, all read from `files`.
///
/// The widget page reads the site's allowed origins from the state's
/// store; every other route needs no state.
pub fn routes(files: WebFiles) -> Router<AppState> {
    if files.is_built() {
        tracing::info!(web = %files.describe(), "serving the web apps");
    } else {
        tracing::warn!(web = %files.describe(), "{NOT_BUILT}");
    }
    let widget = |route: MethodRouter<AppState>| {
        route.layer(middleware::map_response(|mut response: Response| async move {
            let headers = response.headers_mut();
            for (name, value) in [
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()"),
            ] {
                headers.insert(name, HeaderValue::from_static(value));
            }
            response
        }))
    };
    let asset_files = files.clone();
    let assets = get(move |Path(path): Path<String>, headers: HeaderMap| {
        let files = asset_files.clone();
        async move { files.respond(&format!("assets/{path}"), &headers).await }
    });

    let built = files.clone();
    Router::new()
        .route(
            "/kefu.js",
            // A host page that isolates itself (COEP require-corp) may
            // still load the loader from our origin.
            file(
                &files,
                "kefu.js",
                &[
                    (header::CACHE_CONTROL, LOADER_CACHE),
                    (HeaderName::from_static("cross-origin-resource-policy"), "cross-origin"),
                ],
            ),
        )
        .route("/assets/{*path}", with_headers(assets, &[(header::CACHE_CONTROL, HASHED_CACHE)]))
        .route("/widget", widget(get(framing::widget)))
        .route("/c/{site}", widget(get(framing::full_page)))
        // The widget's service worker: a fixed URL whose content changes
        // with every build, so browsers must ask each time.
        .route("/kefu-sw.js", file(&files, "kefu-sw.js", &[(header::CACHE_CONTROL, REVALIDATE)]))
        .route("/demo", file(&files, "demo.html", &[(header::CACHE_CONTROL, REVALIDATE)]))
        .route("/console", console(&files))
        .route("/", get(|| async { Redirect::temporary("/demo") }))
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            let built = built.is_built();
            async move {
                if built {
                    next.run(request).await
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT).into_response()
                }
            }
        }))
        .layer(Extension(files))
}

/// The agent console's page: revalidated, never framed, no referrer.
fn console<S>(files: &WebFiles) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    file(files, "console.html", &[(header::CACHE_CONTROL, REVALIDATE)]).layer(middleware::map_response(
        |mut response: Response| async move {
            let headers = response.headers_mut();
            for (name, value) in [
                (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
            ] {
                headers.insert(name, HeaderValue::from_static(value));
            }
            response
        },
    ))
}

/// GET and HEAD for one file, with its precompressed siblings.
fn file<S>(files: &WebFiles, path: &'static str, headers: &[(HeaderName, &'static str)]) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let files = files.clone();
    let route = get(move |request: HeaderMap| {
        let files = files.clone();
        async move { files.respond(path, &request).await }
    });
    with_headers(route, headers)
}

/// Adds `headers` and `Vary: Accept-Encoding` to successful answers only:
/// a 404 must not be cached for a year.
fn with_headers<S>(route: MethodRouter<S>, headers: &[(HeaderName, &'static str)]) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let headers: Arc<[(HeaderName, HeaderValue)]> =
        headers.iter().map(|(name, value)| (name.clone(), HeaderValue::from_static(value))).collect();
    route.layer(middleware::map_response(move |mut response: Response| {
        let headers = Arc::clone(&headers);
        async move {
            let status = response.status();
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                let map = response.headers_mut();
                map.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                for (name, value) in headers.iter() {
                    map.insert(name.clone(), value.clone());
                }
            }
            response
        }
    }))
}

pub mod files;
pub mod framing;
#[cfg(test)]
mod tests;
