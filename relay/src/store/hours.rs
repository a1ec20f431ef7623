//! A site's business hours as stored: whether they apply, the calendar
//! (as JSON; `crate::hours` reads it), and the offline-form-only choice.

use chrono::{DateTime, Utc};
use kefu_protocol::ids::SiteId;

use super::{Error, Flag, Store, Unsigned, int, now, undecodable};
use crate::hours::{Calendar, Schedule};

/// A site's hours setting. A site that never set any has the
/// [`Default`]: hours do not apply (always open), with a weekday calendar
/// to start editing from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteHours {
    /// Whether the calendar applies; off, the site is always open.
    pub enabled: bool,
    pub calendar: Calendar,
    /// Out of hours the widget offers only the offline form, no chat.
    pub offline_form_only: bool,
}

impl SiteHours {
    /// The calendar to follow, `None` when hours do not apply. A stored
    /// calendar was checked when saved; one that no longer checks (a zone
    /// a newer tz database dropped) counts as no hours, so a site is never
    /// closed by mistake.
    pub fn schedule(&self) -> Option<Schedule> {
        if !self.enabled {
            return None;
        }
        self.calendar.schedule().inspect_err(|error| tracing::warn!(%error, "stored business hours ignored")).ok()
    }

    /// Whether at `at` the site takes only the offline form: a chat opens
    /// only with an address to answer at.
    pub fn only_offline_form_at(&self, at: DateTime<Utc>) -> bool {
        self.offline_form_only && self.schedule().is_some_and(|schedule| !schedule.is_open(at))
    }
}

#[derive(sqlx::FromRow)]
struct HoursRow {
    #[sqlx(try_from = "Flag")]
    enabled: bool,
    calendar: String,
    #[sqlx(try_from = "Flag")]
    offline_form_only: bool,
}

impl Store {
    /// `site`'s hours, or the default if it never set them.
    pub async fn site_hours(&self, site: SiteId) -> Result<SiteHours, Error> {
        let row: Option<HoursRow> =
            sqlx::query_as("SELECT enabled, calendar, offline_form_only FROM site_hours WHERE site_id = $1")
                .bind(int(site.0))
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else { return Ok(SiteHours::default()) };
        let calendar =
            serde_json::from_str(&row.calendar).map_err(|_| undecodable("business hours calendar", &row.calendar))?;
        Ok(SiteHours { enabled: row.enabled, calendar, offline_form_only: row.offline_form_only })
    }

    /// The sites whose business hours apply, for the clock that follows
    /// their openings and closings (`team::keep_hours`).
    pub async fn sites_with_hours(&self) -> Result<Vec<SiteId>, Error> {
        let ids: Vec<Unsigned> = sqlx::query_scalar("SELECT site_id FROM site_hours WHERE enabled ORDER BY site_id")
            .fetch_all(self.pool())
            .await?;
        Ok(ids.into_iter().map(|id| SiteId(id.0)).collect())
    }

    /// Replaces `site`'s hours (checked by the caller).
    /// [`Error::NotFound`] if the site does not exist.
    pub async fn set_site_hours(&self, site: SiteId, hours: &SiteHours) -> Result<(), Error> {
        let calendar = serde_json::to_string(&hours.calendar).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
        let done = sqlx::query(
            "INSERT INTO site_hours (site_id, enabled, calendar, offline_form_only, updated_at) \
             SELECT id, $2, $3, $4, $5 FROM sites WHERE id = $1 \
             ON CONFLICT (site_id) DO UPDATE SET enabled = excluded.enabled, calendar = excluded.calendar, \
             offline_form_only = excluded.offline_form_only, updated_at = excluded.updated_at",
        )
        .bind(int(site.0))
        .bind(hours.enabled)
        .bind(calendar)
        .bind(hours.offline_form_only)
        .bind(int(now().0))
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::ids::SiteKey;

    use super::*;
    use crate::hours::{Exception, Week};
    use crate::store::tests::{TestDb, on_both_backends};

    async fn hours_are_per_site_and_start_always_open(db: TestDb) {
        let store = db.open().await;
        let a = store.create_site(&SiteKey::new("a").unwrap(), "A").await.unwrap().id;
        let b = store.create_site(&SiteKey::new("b").unwrap(), "B").await.unwrap().id;
        let never_set = store.site_hours(a).await.unwrap();
        assert!(!never_set.enabled, "a site that never set hours is always open");
        assert_eq!(never_set, SiteHours::default());

        let mut calendar: Calendar = serde_json::from_str(
            r#"{"zone":"Europe/Berlin","week":{"fri":[{"from":"22:00","to":"02:00"}]},
                "exceptions":[{"date":"2026-12-25"}]}"#,
        )
        .unwrap();
        let hours = SiteHours { enabled: true, calendar: calendar.clone(), offline_form_only: true };
        store.set_site_hours(a, &hours).await.unwrap();
        assert_eq!(store.site_hours(a).await.unwrap(), hours);
        assert_eq!(store.site_hours(b).await.unwrap(), SiteHours::default(), "another site's are untouched");

        calendar.week = Week::default();
        calendar.exceptions.push(Exception { date: "2026-12-26".parse().unwrap(), intervals: vec![] });
        let changed = SiteHours { enabled: false, calendar, offline_form_only: false };
        store.set_site_hours(a, &changed).await.unwrap();
        assert_eq!(store.site_hours(a).await.unwrap(), changed, "a second save replaces the first");
        assert!(matches!(store.set_site_hours(SiteId(999), &changed).await, Err(Error::NotFound)));
    }

    on_both_backends![hours_are_per_site_and_start_always_open];
}
