//! The caller's site and its widget settings, and the widget's public look.

use axum::extract::State;
use kefu_protocol::ids::{SiteId, SiteKey};
use serde::{Deserialize, Serialize};

use super::extract::{Admin, CurrentAgent, Json, Path};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{PrechatForm, Role, Site, SiteSettings, SiteUpdate, Survey, WidgetPosition};

/// Longest site name.
const MAX_NAME_CHARS: usize = 100;
/// Longest greeting: a line or two in the chat, not a page.
const MAX_GREETING_CHARS: usize = 500;
/// Most allowed origins per site.
const MAX_ORIGINS: usize = 50;

/// `GET /api/site` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct SiteView {
    pub id: SiteId,
    pub key: String,
    pub name: String,
    /// For signing visitor identities (tokens, or the plain HMAC-SHA256 of
    /// the user id; see `crate::identity`); admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_secret: Option<String>,
    pub draft_preview: bool,
    pub color: String,
    pub greeting: String,
    /// `"right"` or `"left"`.
    pub position: String,
    pub allowed_origins: Vec<String>,
    /// The largest file the site takes, in bytes, and the operator's
    /// ceiling over it.
    pub max_file_bytes: u64,
    pub max_file_bytes_ceiling: u64,
}

/// `PUT /api/site` body: what to change; other fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct SiteChange {
    pub name: Option<String>,
    pub draft_preview: Option<bool>,
    pub color: Option<String>,
    pub greeting: Option<String>,
    pub position: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub max_file_bytes: Option<u64>,
}

/// `GET /api/widget/{site_key}` answer: what the widget needs before it
/// connects.
#[derive(Debug, Serialize, Deserialize)]
pub struct WidgetLook {
    pub color: String,
    pub greeting: String,
    pub position: String,
    /// Whether the site keeps business hours; without, it is always open.
    pub hours: bool,
    pub open_now: bool,
    /// When the site opens or closes next, milliseconds since 1970 (UTC),
    /// for the widget to show in the visitor's zone and to look again
    /// then; null when that never happens.
    pub next_opening: Option<u64>,
    pub next_closing: Option<u64>,
    /// Out of hours the site takes no chats, only the offline form.
    pub offline_form_only: bool,
    /// The pre-chat form (`when: "never"` for none).
    pub prechat: PrechatForm,
    /// The satisfaction survey after an agent closes the chat.
    pub survey: Survey,
    /// This relay can send email: the offline ask promises the answer by
    /// email, not only in the chat.
    pub email_follow_up: bool,
}

/// `GET /api/site`: the caller's site, with its identity secret for admins.
pub async fn show(State(state): State<AppState>, current: CurrentAgent) -> Result<axum::Json<SiteView>, Error> {
    let agent = current.agent;
    let site = state.store.site(agent.site).await?.ok_or(Error::NotFound)?;
    let settings = state.store.site_settings(site.id).await?;
    let identity_secret = match agent.role {
        Role::Admin => Some(state.store.identity_secret(site.id).await?),
        Role::Agent => None,
    };
    Ok(axum::Json(view(site, settings, identity_secret, ceiling(&state))))
}

/// `PUT /api/site`: an admin changes their site.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(change): Json<SiteChange>,
) -> Result<axum::Json<SiteView>, Error> {
    let update = validate(change, ceiling(&state))?;
    let (site, settings) = state.store.update_site(admin.site, &update).await?;
    let identity_secret = state.store.identity_secret(site.id).await?;
    Ok(axum::Json(view(site, settings, Some(identity_secret), ceiling(&state))))
}

/// `POST /api/site/identity-secret`: an admin replaces the site's identity
/// secret (it leaked, or staff left). The previous one still verifies for
/// a grace period (`identity::ROTATION_GRACE_SECS`) while the site's
/// backend switches over; the answer carries the new one.
pub async fn rotate_identity_secret(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<axum::Json<SiteView>, Error> {
    let site = state.store.site(admin.site).await?.ok_or(Error::NotFound)?;
    let settings = state.store.site_settings(site.id).await?;
    let identity_secret = state.store.rotate_identity_secret(site.id).await?;
    tracing::info!(site = ?site.id, admin = ?admin.id, "identity secret rotated");
    Ok(axum::Json(view(site, settings, Some(identity_secret), ceiling(&state))))
}

/// `GET /api/widget/{site_key}`: a site's widget colour, greeting and
/// position, and whether it is open now, for anyone (the widget asks
/// before any visitor exists).
pub async fn widget(State(state): State<AppState>, Path(key): Path<String>) -> Result<axum::Json<WidgetLook>, Error> {
    let key = SiteKey::new(key).map_err(|_| Error::NotFound)?;
    let site = state.store.site_by_key(&key).await?.ok_or(Error::NotFound)?;
    Ok(axum::Json(look(&state, site.id).await?))
}

/// What the widget of `site` needs before it connects; also written into
/// the widget's page (`web::framing`), so the widget does not wait for it.
pub async fn look(state: &AppState, site: SiteId) -> Result<WidgetLook, crate::store::Error> {
    let settings = state.store.site_settings(site).await?;
    let hours = state.store.site_hours(site).await?;
    let openings = super::hours::openings(&hours);
    let forms = state.store.site_forms(site).await?;
    Ok(WidgetLook {
        color: settings.color,
        greeting: settings.greeting,
        position: settings.position.as_str().to_owned(),
        hours: hours.enabled,
        open_now: openings.open_now,
        next_opening: openings.next_opening.map(crate::hours::millis),
        next_closing: openings.next_closing.map(crate::hours::millis),
        offline_form_only: hours.enabled && hours.offline_form_only,
        prechat: forms.prechat,
        survey: forms.survey,
        email_follow_up: state.mail_enabled(),
    })
}

/// The operator's ceiling over every site's file limit, in bytes.
fn ceiling(state: &AppState) -> u64 {
    state.config.attachment_limit_mb.saturating_mul(1_000_000)
}

fn view(site: Site, settings: SiteSettings, identity_secret: Option<String>, ceiling: u64) -> SiteView {
    SiteView {
        id: site.id,
        key: site.key.as_str().to_owned(),
        name: site.name,
        identity_secret,
        draft_preview: settings.draft_preview,
        color: settings.color,
        greeting: settings.greeting,
        position: settings.position.as_str().to_owned(),
        allowed_origins: settings.allowed_origins,
        max_file_bytes: settings.max_file_bytes,
        max_file_bytes_ceiling: ceiling,
    }
}

/// Checks every given field and normalises it: trimmed name, lowercase
/// colour, origins lowercased without duplicates.
fn validate(change: SiteChange, ceiling: u64) -> Result<SiteUpdate, Error> {
    if let Some(bytes) = change.max_file_bytes
        && !(1..=ceiling).contains(&bytes)
    {
        return Err(Error::BadRequest(format!("max_file_bytes must be 1 to {ceiling} (this relay's ceiling)")));
    }
    let name = change.name.map(|name| name.trim().to_owned());
    if let Some(name) = &name
        && (name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control))
    {
        return Err(Error::BadRequest(format!("a site name needs 1 to {MAX_NAME_CHARS} characters")));
    }
    let color = change.color.map(|color| color.to_ascii_lowercase());
    if let Some(color) = &color
        && !is_hex_color(color)
    {
        return Err(Error::BadRequest("color must be #rrggbb, e.g. #2563eb".into()));
    }
    if let Some(greeting) = &change.greeting
        && greeting.chars().count() > MAX_GREETING_CHARS
    {
        return Err(Error::BadRequest(format!("a greeting may have at most {MAX_GREETING_CHARS} characters")));
    }
    let position = change
        .position
        .map(|position| {
            WidgetPosition::parse(&position)
                .ok_or_else(|| Error::BadRequest("position must be \"right\" or \"left\"".into()))
        })
        .transpose()?;
    let allowed_origins = change.allowed_origins.map(origins).transpose()?;
    Ok(SiteUpdate {
        name,
        draft_preview: change.draft_preview,
        color,
        greeting: change.greeting,
        position,
        allowed_origins,
        max_file_bytes: change.max_file_bytes,
    })
}

fn is_hex_color(value: &str) -> bool {
    value.len() == 7 && value.starts_with('#') && value[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn origins(list: Vec<String>) -> Result<Vec<String>, Error> {
    if list.len() > MAX_ORIGINS {
        return Err(Error::BadRequest(format!("at most {MAX_ORIGINS} allowed origins")));
    }
    let mut clean: Vec<String> = Vec::with_capacity(list.len());
    for origin in list {
        let origin = normalize_origin(&origin).ok_or_else(|| {
            Error::BadRequest(format!("{origin:?} is not an origin like https://shop.example or http://127.0.0.1:8080"))
        })?;
        if !clean.contains(&origin) {
            clean.push(origin);
        }
    }
    Ok(clean)
}

/// `origin` lowercased if it is a web origin as browsers send it in
/// `Origin`: `http` or `https`, `://`, a host name, IPv4 or bracketed IPv6
/// address, an optional port, and nothing after (no path, not even `/`).
fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        // A colon inside brackets belongs to an IPv6 address.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().map_or(true, |p| p == 0))
    {
        return None;
    }
    let valid_host = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    valid_host.then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in ["https://a.example", "http://127.0.0.1:8080", "http://localhost:3000", "https://[::1]:8443"] {
            assert_eq!(normalize_origin(good).as_deref(), Some(good), "{good}");
        }
        assert_eq!(normalize_origin(" HTTPS://Shop.Example ").as_deref(), Some("https://shop.example"));
        for bad in [
            "",
            "a.example",
            "ftp://a.example",
            "https://",
            "https://a.example/",
            "https://a.example/path",
            "https://a.example:",
            "https://a.example:0",
            "https://a.example:99999",
            "https://user@a.example",
            "https://a..example",
            "https://-a.example",
            "https://a.example?x",
            "*",
            "null",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn site_changes_are_validated_and_normalised() {
        let change = SiteChange {
            name: Some("  Shop ".into()),
            color: Some("#AABBCC".into()),
            position: Some("left".into()),
            allowed_origins: Some(vec!["https://A.example".into(), "https://a.example".into()]),
            ..SiteChange::default()
        };
        let update = validate(change, 100_000_000).unwrap();
        assert_eq!(update.name.as_deref(), Some("Shop"));
        assert_eq!(update.color.as_deref(), Some("#aabbcc"));
        assert_eq!(update.position, Some(WidgetPosition::Left));
        assert_eq!(update.allowed_origins, Some(vec!["https://a.example".to_owned()]));
        assert_eq!(update.greeting, None);

        let bad = |change: SiteChange| matches!(validate(change, 100_000_000), Err(Error::BadRequest(_)));
        assert!(bad(SiteChange { color: Some("red".into()), ..SiteChange::default() }));
        assert!(bad(SiteChange { color: Some("#abcdeg".into()), ..SiteChange::default() }));
        assert!(bad(SiteChange { color: Some("#abc".into()), ..SiteChange::default() }));
        assert!(bad(SiteChange { position: Some("top".into()), ..SiteChange::default() }));
        assert!(bad(SiteChange { greeting: Some("x".repeat(501)), ..SiteChange::default() }));
        assert!(bad(SiteChange { name: Some(" ".into()), ..SiteChange::default() }));
        assert!(!bad(SiteChange { greeting: Some("é".repeat(500)), ..SiteChange::default() }));
        assert!(bad(SiteChange { max_file_bytes: Some(0), ..SiteChange::default() }));
        assert!(bad(SiteChange { max_file_bytes: Some(100_000_001), ..SiteChange::default() }), "over the ceiling");
        assert!(!bad(SiteChange { max_file_bytes: Some(100_000_000), ..SiteChange::default() }));
    }
}
