//! `GET` and `PUT /api/site/hours`: the caller's site's business hours
//! (see `crate::hours` for what a calendar means).

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{Admin, CurrentAgent, Json};
use crate::error::Error;
use crate::hours::{self, Calendar, Openings};
use crate::state::AppState;
use crate::store::{SiteHours, now};

/// The site's hours, and where the site stands now under them.
#[derive(Debug, Serialize, Deserialize)]
pub struct HoursView {
    /// Whether the calendar applies; off, the site is always open.
    pub enabled: bool,
    pub calendar: Calendar,
    /// Out of hours the widget offers only the offline form, no chat.
    pub offline_form_only: bool,
    pub open_now: bool,
    /// Milliseconds since 1970 (UTC); null when it never changes.
    pub next_opening: Option<u64>,
    pub next_closing: Option<u64>,
}

/// `PUT /api/site/hours` body: the whole setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursChange {
    pub enabled: bool,
    pub calendar: Calendar,
    #[serde(default)]
    pub offline_form_only: bool,
}

/// `GET /api/site/hours`: any agent of the site may see them.
pub async fn show(State(state): State<AppState>, current: CurrentAgent) -> Result<axum::Json<HoursView>, Error> {
    let hours = state.store.site_hours(current.agent.site).await?;
    Ok(axum::Json(view(hours)))
}

/// `PUT /api/site/hours`: an admin replaces them; a calendar that does not
/// check is refused with the reason, and nothing changes.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(change): Json<HoursChange>,
) -> Result<axum::Json<HoursView>, Error> {
    let mut calendar = change.calendar;
    calendar.zone = calendar.zone.trim().to_owned();
    calendar.schedule().map_err(|error| Error::BadRequest(error.to_string()))?;
    let hours = SiteHours { enabled: change.enabled, calendar, offline_form_only: change.offline_form_only };
    state.store.set_site_hours(admin.site, &hours).await?;
    tracing::info!(site = ?admin.site, admin = ?admin.id, enabled = hours.enabled, "business hours changed");
    // Whether anyone counts as available may have changed with them.
    crate::team::hours_saved(&state, admin.site).await?;
    Ok(axum::Json(view(hours)))
}

/// Where a site with `hours` stands now.
pub fn openings(hours: &SiteHours) -> Openings {
    hours.schedule().map_or(Openings::ALWAYS_OPEN, |schedule| schedule.openings(hours::from_millis(now().0)))
}

fn view(hours: SiteHours) -> HoursView {
    let openings = openings(&hours);
    HoursView {
        enabled: hours.enabled,
        calendar: hours.calendar,
        offline_form_only: hours.offline_form_only,
        open_now: openings.open_now,
        next_opening: openings.next_opening.map(hours::millis),
        next_closing: openings.next_closing.map(hours::millis),
    }
}
