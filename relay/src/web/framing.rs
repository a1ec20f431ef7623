//! Which pages may frame the widget. A site's allowed origins (set by an
//! admin) become the widget page's `frame-ancestors`, so browsers refuse to
//! show that site's chat inside anybody else's page; a site with none set
//! may be embedded anywhere.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use kefu_protocol::ids::SiteKey;

use super::WIDGET_CSP;
use crate::state::AppState;

/// Narrows the widget page's `frame-ancestors` to its site's allowed
/// origins. Other responses pass untouched.
pub async fn restrict_framing(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let site = (request.uri().path() == "/widget").then(|| site_key(request.uri().query())).flatten();
    let mut response = next.run(request).await;
    let Some(site) = site else { return response };
    let origins = match allowed_origins(&state, &site).await {
        Ok(origins) => origins,
        Err(error) => {
            tracing::warn!(%error, "could not read the site's allowed origins; framing left open");
            return response;
        }
    };
    if origins.is_empty() {
        return response;
    }
    if let Ok(policy) = HeaderValue::from_str(&policy_for(&origins)) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

fn site_key(query: Option<&str>) -> Option<SiteKey> {
    let value = query?.split('&').find_map(|pair| pair.strip_prefix("site="))?;
    SiteKey::new(value).ok()
}

async fn allowed_origins(state: &AppState, key: &SiteKey) -> Result<Vec<String>, crate::store::Error> {
    let Some(site) = state.store.site_by_key(key).await? else { return Ok(Vec::new()) };
    Ok(state.store.site_settings(site.id).await?.allowed_origins)
}

/// The widget policy with `frame-ancestors` listing `origins`. Origins are
/// checked when an admin saves them; anything that could break out of the
/// directive is dropped here all the same.
fn policy_for(origins: &[String]) -> String {
    let safe = |origin: &&String| origin.chars().all(|c| c.is_ascii_alphanumeric() || ":/.-[]".contains(c));
    let list: Vec<&str> = origins.iter().filter(safe).map(String::as_str).collect();
    WIDGET_CSP.replace("frame-ancestors *", &format!("frame-ancestors {}", list.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_lists_only_well_formed_origins() {
        let origins = ["https://shop.example".to_owned(), "https://x.example; script-src *".to_owned()];
        let policy = policy_for(&origins);
        assert!(policy.ends_with("frame-ancestors https://shop.example"), "{policy}");
        assert!(!policy.contains("script-src *"));
    }

    #[test]
    fn the_site_comes_from_the_query() {
        assert_eq!(site_key(Some("embed=1&site=demo&origin=x")).map(|k| k.as_str().to_owned()), Some("demo".into()));
        assert_eq!(site_key(Some("embed=1")), None);
        assert_eq!(site_key(None), None);
    }
}
