//! The widget page, and the one decision behind it: which site it is for,
//! which pages may frame it, and which page it may tell what the visitor
//! reads and writes.
//!
//! Every path that serves the widget page (`/widget?site=KEY`,
//! `/c/{KEY}`) comes through [`decide`], on the site key as the URL
//! decodes it, and the page is handed the outcome: the relay writes the
//! site key and the origin the widget may `postMessage` to into the page
//! (`<meta name="kefu-site">`, `<meta name="kefu-parent">`), so the widget
//! never reads either from its URL and cannot disagree with the check.
//!
//! - Framing: a site's allowed origins (set by an admin) become the page's
//!   `frame-ancestors`, so browsers refuse to show that site's chat inside
//!   anybody else's page; a site with none set may be embedded anywhere.
//!   When the store cannot say, nobody may frame it (`'none'`).
//! - Posting: the query's `origin` is only a claim. It is used when it is
//!   one of the site's allowed origins, or, when the site lists none, when
//!   it is the origin of the page that created the iframe, as the browser
//!   reports it in `Referer` (the loader asks for that with
//!   `referrerpolicy="origin"`). Otherwise the widget posts nothing.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use kefu_protocol::ids::SiteKey;

use super::{WIDGET_CSP, WebFiles};
use crate::state::AppState;

/// Where the relay writes its decision into `widget.html`; the build keeps
/// this comment from `widget/index.html`.
pub const PAGE_MARK: &str = "<!-- kefu:page -->";

/// Who may frame the widget page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// The site lists no origins: any page may embed its chat.
    Anyone,
    /// Only these origins (the site's allowed origins).
    Only(Vec<String>),
    /// Nobody: the store could not say which origins are allowed.
    Nobody,
}

/// What the widget page is for and who may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The site, from the decoded URL; `None` when it names no valid key.
    pub site: Option<SiteKey>,
    pub framing: Framing,
    /// The only origin the widget may `postMessage` to; `None`: none.
    pub post_to: Option<String>,
}

/// What a request for the widget page says, decoded.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// `site=` from the query, else the `/c/{site}` segment.
    pub site: Option<String>,
    /// `origin=` from the query: the parent page's claim.
    pub claimed_origin: Option<String>,
    /// The origin in `Referer`: the page that created the frame.
    pub referrer_origin: Option<String>,
}

impl PageRequest {
    /// Reads the request the way the browser's `URLSearchParams` would:
    /// percent-decoded, `+` as a space, the first of repeated names.
    fn read(path_site: Option<String>, query: &[(String, String)], headers: &HeaderMap) -> PageRequest {
        let param = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        PageRequest {
            site: param("site").or(path_site),
            claimed_origin: param("origin"),
            referrer_origin: headers
                .get(header::REFERER)
                .and_then(|value| value.to_str().ok())
                .and_then(origin_of)
                .map(str::to_owned),
        }
    }

    fn site_key(&self) -> Option<SiteKey> {
        self.site.clone().and_then(|key| SiteKey::new(key).ok())
    }
}

/// What the store says of the request's site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteOrigins {
    /// No site has this key (or the URL names no valid key).
    NoSuchSite,
    /// The site's allowed origins; empty when its admin set none.
    Listed(Vec<String>),
    /// The store failed: nothing is known.
    Unreadable,
}

impl SiteOrigins {
    async fn of(state: &AppState, key: Option<&SiteKey>) -> SiteOrigins {
        let Some(key) = key else { return SiteOrigins::NoSuchSite };
        let origins = async {
            let Some(site) = state.store.site_by_key(key).await? else { return Ok(SiteOrigins::NoSuchSite) };
            Ok::<_, crate::store::Error>(SiteOrigins::Listed(state.store.site_settings(site.id).await?.allowed_origins))
        };
        origins.await.unwrap_or_else(|error| {
            tracing::warn!(%error, "could not read the site's allowed origins; nobody may frame its widget");
            SiteOrigins::Unreadable
        })
    }
}

/// The decision for one request, given what the store says of its site.
pub fn decide(request: &PageRequest, origins: SiteOrigins) -> Decision {
    let site = request.site_key();
    let claimed = request.claimed_origin.clone().filter(|origin| is_origin(origin));
    let (framing, post_to) = match origins {
        SiteOrigins::Unreadable => (Framing::Nobody, None),
        SiteOrigins::Listed(origins) if !origins.is_empty() => {
            let post_to = claimed.filter(|origin| origins.contains(origin));
            (Framing::Only(origins), post_to)
        }
        SiteOrigins::Listed(_) | SiteOrigins::NoSuchSite => {
            (Framing::Anyone, claimed.filter(|origin| request.referrer_origin.as_ref() == Some(origin)))
        }
    };
    Decision { site, framing, post_to }
}

/// `GET /widget`.
pub async fn widget(
    State(state): State<AppState>,
    Extension(files): Extension<WebFiles>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&state, &files, None, &uri, &headers).await
}

/// `GET /c/{site}`: the same page, the site in the path.
pub async fn full_page(
    State(state): State<AppState>,
    Extension(files): Extension<WebFiles>,
    Path(site): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&state, &files, Some(site), &uri, &headers).await
}

async fn serve(
    state: &AppState,
    files: &WebFiles,
    path_site: Option<String>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let query = Query::<Vec<(String, String)>>::try_from_uri(uri).map(|q| q.0).unwrap_or_default();
    let request = PageRequest::read(path_site, &query, headers);
    let origins = SiteOrigins::of(state, request.site_key().as_ref()).await;
    let decision = decide(&request, origins);
    let Some(template) = files.read("widget.html").await.and_then(|file| String::from_utf8(file.bytes.into()).ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let look = widget_look(state, decision.site.as_ref()).await;
    let resume = match query.iter().find(|(name, _)| name == "resume") {
        Some((_, token)) => Some(resumed_visitor(state, decision.site.as_ref(), token).await),
        None => None,
    };
    let mut response = fill(&template, &decision, look.as_deref(), resume.as_deref()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // A resumed page carries the visitor's token: no cache may keep it.
    let cache = if resume.is_some() { "no-store" } else { super::REVALIDATE };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // The page says who may hear from it, and that follows the framer.
    headers.insert(header::VARY, HeaderValue::from_static("referer"));
    if let Ok(policy) = HeaderValue::from_str(&policy_for(&decision.framing)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// The site's widget look (`GET /api/widget/{key}`) as JSON, for the
/// page: the widget knows its forms without a second request. `None` for
/// no site, or when the store cannot say (the widget then shows none).
async fn widget_look(state: &AppState, key: Option<&SiteKey>) -> Option<String> {
    let site = state.store.site_by_key(key?).await.ok()??;
    let look = crate::http::site::look(state, site.id).await;
    look.inspect_err(|error| tracing::warn!(%error, "could not read the site's widget forms"))
        .ok()
        .and_then(|look| serde_json::to_string(&look).ok())
}

/// What a follow-up mail's resume link (`/c/KEY?resume=TOKEN`) gives
/// the widget: the visitor it resumes as the widget stores one (see
/// `crate::follow_up::Resumed::widget_line`), or why not (`expired`,
/// `invalid`), so the widget says so and starts a fresh chat.
async fn resumed_visitor(state: &AppState, site: Option<&SiteKey>, token: &str) -> String {
    let refused = crate::follow_up::ResumeRefused::Invalid.as_str().to_owned();
    let Some(site) = site else { return refused };
    let site = match state.store.site_by_key(site).await {
        Ok(Some(site)) => site,
        Ok(None) => return refused,
        Err(error) => {
            tracing::warn!(%error, "could not read the site of a resume link");
            return refused;
        }
    };
    match crate::follow_up::resume(state, site.id, token).await {
        Ok(resumed) => resumed.widget_line(),
        Err(why) => why.as_str().to_owned(),
    }
}

/// The page with the decision, the site's look (if known) and what a
/// resume link gave written where [`PAGE_MARK`] is.
fn fill(template: &str, decision: &Decision, look: Option<&str>, resume: Option<&str>) -> String {
    let site = decision.site.as_ref().map_or("", SiteKey::as_str);
    let parent = decision.post_to.as_deref().unwrap_or("");
    let mut meta = format!(
        "<meta name=\"kefu-site\" content=\"{}\"><meta name=\"kefu-parent\" content=\"{}\">",
        attribute(site),
        attribute(parent)
    );
    if let Some(look) = look {
        meta.push_str(&format!("<meta name=\"kefu-look\" content=\"{}\">", attribute(look)));
    }
    if let Some(resume) = resume {
        meta.push_str(&format!("<meta name=\"kefu-resume\" content=\"{}\">", attribute(resume)));
    }
    template.replacen(PAGE_MARK, &meta, 1)
}

/// Escapes text for a double-quoted attribute. Keys and origins are
/// checked before they get here; this holds all the same.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The widget policy with `frame-ancestors` for `framing`. Origins are
/// checked when an admin saves them; anything that could break out of the
/// directive is dropped here all the same.
fn policy_for(framing: &Framing) -> String {
    let ancestors = match framing {
        Framing::Anyone => return WIDGET_CSP.to_owned(),
        Framing::Nobody => "'none'".to_owned(),
        Framing::Only(origins) => {
            let safe = |origin: &&String| origin.chars().all(|c| c.is_ascii_alphanumeric() || ":/.-[]".contains(c));
            let list: Vec<&str> = origins.iter().filter(safe).map(String::as_str).collect();
            if list.is_empty() { "'none'".to_owned() } else { list.join(" ") }
        }
    };
    WIDGET_CSP.replace("frame-ancestors *", &format!("frame-ancestors {ancestors}"))
}

/// `scheme://host[:port]` of an absolute http(s) URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = &url[..url.len() - rest.len() + end];
    is_origin(origin).then_some(origin)
}

/// `http(s)://host[:port]` and nothing more, as `postMessage` wants it.
fn is_origin(value: &str) -> bool {
    let Some(host) = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://")) else {
        return false;
    };
    !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = "https://shop.example";
    const EVIL: &str = "https://evil.example";

    fn request(site: &str, claimed: Option<&str>, referrer: Option<&str>) -> PageRequest {
        PageRequest {
            site: Some(site.to_owned()),
            claimed_origin: claimed.map(str::to_owned),
            referrer_origin: referrer.map(str::to_owned),
        }
    }

    #[test]
    fn the_policy_lists_only_well_formed_origins() {
        let origins = vec![SHOP.to_owned(), "https://x.example; script-src *".to_owned()];
        let policy = policy_for(&Framing::Only(origins));
        assert!(policy.ends_with("frame-ancestors https://shop.example"), "{policy}");
        assert!(!policy.contains("script-src *"));
        assert!(policy_for(&Framing::Nobody).ends_with("frame-ancestors 'none'"));
        assert!(policy_for(&Framing::Only(vec!["x y".into()])).ends_with("frame-ancestors 'none'"));
        assert!(policy_for(&Framing::Anyone).ends_with("frame-ancestors *"));
    }

    #[test]
    fn the_site_comes_decoded_from_the_query_before_the_path() {
        let read = |path: Option<&str>, query: &[(&str, &str)]| {
            let query: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            PageRequest::read(path.map(str::to_owned), &query, &HeaderMap::new()).site
        };
        assert_eq!(read(None, &[("embed", "1"), ("site", "demo"), ("site", "other")]).as_deref(), Some("demo"));
        assert_eq!(read(Some("shop"), &[("site", "demo")]).as_deref(), Some("demo"));
        assert_eq!(read(Some("shop"), &[]).as_deref(), Some("shop"));
        assert_eq!(read(None, &[]), None);
        let uri: Uri = "/widget?site=d%65mo&embed=1".parse().unwrap();
        let query = Query::<Vec<(String, String)>>::try_from_uri(&uri).unwrap().0;
        assert_eq!(PageRequest::read(None, &query, &HeaderMap::new()).site.as_deref(), Some("demo"));
    }

    #[test]
    fn allowed_origins_frame_and_hear_the_widget() {
        let only = || SiteOrigins::Listed(vec![SHOP.to_owned()]);
        let allowed = decide(&request("demo", Some(SHOP), None), only());
        assert_eq!(allowed.framing, Framing::Only(vec![SHOP.to_owned()]));
        assert_eq!(allowed.post_to.as_deref(), Some(SHOP));
        assert_eq!(decide(&request("demo", Some(EVIL), Some(EVIL)), only()).post_to, None);
    }

    #[test]
    fn an_open_site_posts_only_to_the_page_that_framed_it() {
        let open = || SiteOrigins::Listed(Vec::new());
        assert_eq!(decide(&request("demo", Some(SHOP), Some(SHOP)), open()).post_to.as_deref(), Some(SHOP));
        assert_eq!(decide(&request("demo", Some(SHOP), Some(EVIL)), open()).post_to, None, "a claim the framer denies");
        assert_eq!(decide(&request("demo", Some(SHOP), None), open()).post_to, None, "a claim nobody confirms");
        assert_eq!(decide(&request("demo", Some("*"), Some("*")), open()).post_to, None);
        assert_eq!(decide(&request("demo", Some(SHOP), Some(SHOP)), open()).framing, Framing::Anyone);
    }

    #[test]
    fn a_store_error_fails_closed() {
        let decision = decide(&request("demo", Some(SHOP), Some(SHOP)), SiteOrigins::Unreadable);
        assert_eq!(decision.framing, Framing::Nobody);
        assert_eq!(decision.post_to, None);
    }

    #[test]
    fn referrers_give_their_origin() {
        assert_eq!(origin_of("https://shop.example/cart?x=1"), Some(SHOP));
        assert_eq!(origin_of("http://127.0.0.1:8080/"), Some("http://127.0.0.1:8080"));
        assert_eq!(origin_of("https://shop.example"), Some(SHOP));
        assert_eq!(origin_of("https://shop.example?q"), Some(SHOP));
        for bad in ["javascript:alert(1)", "https://", "ftp://a.example/", "https://a b/"] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_decision_is_written_into_the_page_escaped() {
        let decision = Decision {
            site: SiteKey::new("demo").ok(),
            framing: Framing::Anyone,
            post_to: Some("https://a\"<b>".into()),
        };
        let page = fill("<head><!-- kefu:page --></head>", &decision, None, None);
        assert_eq!(
            page,
            "<head><meta name=\"kefu-site\" content=\"demo\"><meta name=\"kefu-parent\" content=\"https://a&quot;&lt;b&gt;\"></head>"
        );
    }
}
