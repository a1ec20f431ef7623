//! What is known of a visitor beyond its id: pages, identity, attributes;
//! and each site's identity secret, with the previous one during the grace
//! period after a rotation (see `crate::identity`).

use std::collections::BTreeMap;

use kefu_protocol::frame::{Attribute, Visit, VisitorProfile};
use kefu_protocol::ids::{SiteId, Timestamp, VisitorId};

use super::{Error, Flag, Store, Unsigned, int, now};
use crate::identity::{ROTATION_GRACE_SECS, Secrets};

/// A claimed identity, checked by the caller against the site's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    pub user_id: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    /// The user id is vouched for (a signed token or the plain hash).
    pub verified: bool,
    /// Name and email are vouched for too (a signed token).
    pub profile_signed: bool,
}

impl Identity<'_> {
    /// How much of it the site vouched for: a claim, the user id, all.
    fn strength(&self) -> u8 {
        u8::from(self.verified) + u8::from(self.verified && self.profile_signed)
    }
}

/// The identity a visitor has now, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredIdentity {
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub verified: bool,
    #[sqlx(try_from = "Flag")]
    pub profile_signed: bool,
}

impl StoredIdentity {
    /// Whether recording `identity` would change nothing: it is the same,
    /// or weaker and so not recorded (see `Store::identify_visitor`).
    pub fn unchanged_by(&self, identity: &Identity<'_>) -> bool {
        let stored_strength = u8::from(self.verified) + u8::from(self.verified && self.profile_signed);
        let same = self.user_id.as_deref() == Some(identity.user_id)
            && self.name.as_deref() == identity.name
            && self.email.as_deref() == identity.email
            && self.verified == identity.verified
            && self.profile_signed == identity.profile_signed;
        same || identity.strength() < stored_strength
    }
}

#[derive(sqlx::FromRow)]
struct SecretsRow {
    identity_secret: String,
    previous_secret: Option<String>,
    previous_until: Option<Unsigned>,
}

#[derive(sqlx::FromRow)]
struct ProfileRow {
    user_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    #[sqlx(try_from = "Flag")]
    verified: bool,
    attributes: String,
    page_url: Option<String>,
    page_title: Option<String>,
    page_referrer: Option<String>,
    page_since: Option<Unsigned>,
}

impl Store {
    /// The site's identity secret, created on first use. Of two relays
    /// creating it at once, the first insert wins and both read it.
    pub async fn identity_secret(&self, site: SiteId) -> Result<String, Error> {
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        sqlx::query(
            "INSERT INTO site_secrets (site_id, identity_secret) VALUES ($1, $2) \
             ON CONFLICT (site_id) DO NOTHING",
        )
        .bind(int(site.0))
        .bind(candidate)
        .execute(self.pool())
        .await?;
        let secret = sqlx::query_scalar("SELECT identity_secret FROM site_secrets WHERE site_id = $1")
            .bind(int(site.0))
            .fetch_one(self.pool())
            .await?;
        Ok(secret)
    }

    /// The key `site`'s visitor tokens are signed with, made on first use
    /// (see `crate::auth::visitor_token`). Of two relays making it at once,
    /// the first insert wins and both read it.
    pub async fn visitor_token_key(&self, site: SiteId) -> Result<String, Error> {
        let read = "SELECT key FROM visitor_token_keys WHERE site_id = $1";
        if let Some(key) = sqlx::query_scalar(read).bind(int(site.0)).fetch_optional(self.pool()).await? {
            return Ok(key);
        }
        sqlx::query("INSERT INTO visitor_token_keys (site_id, key) VALUES ($1, $2) ON CONFLICT (site_id) DO NOTHING")
            .bind(int(site.0))
            .bind(hex::encode(rand::random::<[u8; 32]>()))
            .execute(self.pool())
            .await?;
        Ok(sqlx::query_scalar(read).bind(int(site.0)).fetch_one(self.pool()).await?)
    }

    /// The secrets that verify the site's identities now: the current one
    /// (created on first use) and the previous one until its grace ends.
    pub async fn identity_secrets(&self, site: SiteId) -> Result<Secrets, Error> {
        self.identity_secret(site).await?;
        let row: SecretsRow = sqlx::query_as(
            "SELECT identity_secret, previous_secret, previous_until FROM site_secrets WHERE site_id = $1",
        )
        .bind(int(site.0))
        .fetch_one(self.pool())
        .await?;
        let now_secs = now().0 / 1000;
        let previous = row.previous_secret.filter(|_| row.previous_until.is_some_and(|until| until.0 > now_secs));
        Ok(Secrets { current: row.identity_secret, previous })
    }

    /// Replaces the site's identity secret with a new one and returns it;
    /// the one it replaces still verifies for `ROTATION_GRACE_SECS`.
    pub async fn rotate_identity_secret(&self, site: SiteId) -> Result<String, Error> {
        self.identity_secret(site).await?;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let until = now().0 / 1000 + ROTATION_GRACE_SECS;
        sqlx::query(
            "UPDATE site_secrets SET previous_secret = identity_secret, previous_until = $2, identity_secret = $3 \
             WHERE site_id = $1",
        )
        .bind(int(site.0))
        .bind(int(until))
        .bind(&secret)
        .execute(self.pool())
        .await?;
        Ok(secret)
    }

    /// The identity of one of `site`'s visitors as stored; the default for
    /// one that has none (or is not `site`'s).
    pub async fn visitor_identity(&self, site: SiteId, visitor: VisitorId) -> Result<StoredIdentity, Error> {
        let row = sqlx::query_as(
            "SELECT p.user_id, p.name, p.email, p.verified, p.profile_signed FROM visitor_profiles p \
             JOIN visitors v ON v.id = p.visitor_id WHERE p.visitor_id = $1 AND v.site_id = $2",
        )
        .bind(int(visitor.0))
        .bind(int(site.0))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.unwrap_or_default())
    }

    /// One of `site`'s visitors is on `visit.url` now: the current page,
    /// and one more entry in its history. [`Error::NotFound`] (and nothing
    /// written) if the visitor is not `site`'s.
    pub async fn record_visit(&self, site: SiteId, visitor: VisitorId, visit: &Visit) -> Result<(), Error> {
        let now = int(now().0);
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "INSERT INTO visits (visitor_id, url, title, referrer, at) \
             SELECT id, $2, $3, $4, $5 FROM visitors WHERE id = $1 AND site_id = $6",
        )
        .bind(int(visitor.0))
        .bind(&visit.url)
        .bind(&visit.title)
        .bind(&visit.referrer)
        .bind(now)
        .bind(int(site.0))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        sqlx::query(
            "INSERT INTO visitor_profiles (visitor_id, page_url, page_title, page_referrer, page_since) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (visitor_id) DO UPDATE SET \
             page_url = $2, page_title = $3, page_referrer = $4, page_since = $5",
        )
        .bind(int(visitor.0))
        .bind(&visit.url)
        .bind(&visit.title)
        .bind(&visit.referrer)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records who the site says one of its visitors is. A weaker identity
    /// never replaces a stronger one: an unverified claim no verified
    /// identity, a plain hash (user id only) no signed token's name and
    /// email. [`Error::NotFound`] (and nothing written) if the visitor is
    /// not `site`'s.
    pub async fn identify_visitor(
        &self,
        site: SiteId,
        visitor: VisitorId,
        identity: &Identity<'_>,
    ) -> Result<(), Error> {
        let stored_strength = "(CASE WHEN NOT visitor_profiles.verified THEN 0 \
                               WHEN visitor_profiles.profile_signed THEN 2 ELSE 1 END)";
        let upsert = format!(
            "INSERT INTO visitor_profiles (visitor_id, user_id, name, email, verified, profile_signed) \
             SELECT id, $2, $3, $4, $5, $6 FROM visitors WHERE id = $1 AND site_id = $8 \
             ON CONFLICT (visitor_id) DO UPDATE SET user_id = $2, name = $3, email = $4, verified = $5, \
             profile_signed = $6 WHERE $7 >= {stored_strength}"
        );
        let done = sqlx::query(&upsert)
            .bind(int(visitor.0))
            .bind(identity.user_id)
            .bind(identity.name)
            .bind(identity.email)
            .bind(identity.verified)
            .bind(identity.profile_signed)
            .bind(i64::from(identity.strength()))
            .bind(int(site.0))
            .execute(self.pool())
            .await?;
        // Nothing written: a verified identity kept, or a stranger.
        if done.rows_affected() == 0 && !self.has_visitor(site, visitor).await? {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Sets custom attributes of one of `site`'s visitors; other keys are
    /// kept, also those another relay node sets at the same time.
    /// [`Error::NotFound`] (and nothing written) if the visitor is not
    /// `site`'s.
    pub async fn set_visitor_attributes(
        &self,
        site: SiteId,
        visitor: VisitorId,
        set: &[Attribute],
    ) -> Result<(), Error> {
        let mut tx = self.backend().begin_write(self.pool()).await?;
        // The row exists before it is read, so that on PostgreSQL the read
        // can lock it until this transaction has written.
        sqlx::query(
            "INSERT INTO visitor_profiles (visitor_id) SELECT id FROM visitors WHERE id = $1 AND site_id = $2 \
             ON CONFLICT (visitor_id) DO NOTHING",
        )
        .bind(int(visitor.0))
        .bind(int(site.0))
        .execute(&mut *tx)
        .await?;
        let read = format!(
            "SELECT attributes FROM visitor_profiles \
             WHERE visitor_id = (SELECT id FROM visitors WHERE id = $1 AND site_id = $2){}",
            self.backend().for_update()
        );
        let stored: Option<String> =
            sqlx::query_scalar(&read).bind(int(visitor.0)).bind(int(site.0)).fetch_optional(&mut *tx).await?;
        let Some(stored) = stored else { return Err(Error::NotFound) };
        let mut attributes: BTreeMap<String, String> = serde_json::from_str(&stored).unwrap_or_default();
        for attribute in set {
            attributes.insert(attribute.key.clone(), attribute.value.clone());
        }
        let json = serde_json::to_string(&attributes).unwrap_or_else(|_| "{}".into());
        sqlx::query("UPDATE visitor_profiles SET attributes = $2 WHERE visitor_id = $1")
            .bind(int(visitor.0))
            .bind(json)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Everything known of one of `site`'s visitors (empty for one that
    /// reported nothing). [`Error::NotFound`] if it is not `site`'s.
    pub async fn visitor_profile(&self, site: SiteId, visitor: VisitorId) -> Result<VisitorProfile, Error> {
        let row: Option<ProfileRow> = sqlx::query_as(
            "SELECT p.user_id, p.name, p.email, p.verified, p.attributes, \
                 p.page_url, p.page_title, p.page_referrer, p.page_since \
             FROM visitor_profiles p JOIN visitors v ON v.id = p.visitor_id \
             WHERE p.visitor_id = $1 AND v.site_id = $2",
        )
        .bind(int(visitor.0))
        .bind(int(site.0))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            if !self.has_visitor(site, visitor).await? {
                return Err(Error::NotFound);
            }
            return Ok(VisitorProfile {
                visitor,
                verified: false,
                user_id: None,
                name: None,
                email: None,
                attributes: Vec::new(),
                page: None,
                page_since: None,
            });
        };
        let attributes: BTreeMap<String, String> = serde_json::from_str(&row.attributes).unwrap_or_default();
        let page = row.page_url.map(|url| Visit {
            url,
            title: row.page_title.unwrap_or_default(),
            referrer: row.page_referrer,
        });
        Ok(VisitorProfile {
            visitor,
            verified: row.verified,
            user_id: row.user_id,
            name: row.name,
            email: row.email,
            attributes: attributes.into_iter().map(|(key, value)| Attribute { key, value }).collect(),
            page,
            page_since: row.page_since.map(|at| Timestamp(at.0)),
        })
    }

    /// The pages one of `site`'s visitors was seen on, newest first; none
    /// for a visitor that is not `site`'s.
    pub async fn visits(&self, site: SiteId, visitor: VisitorId, limit: u32) -> Result<Vec<(Visit, Timestamp)>, Error> {
        let rows: Vec<(String, String, Option<String>, Unsigned)> = sqlx::query_as(
            "SELECT s.url, s.title, s.referrer, s.at FROM visits s JOIN visitors v ON v.id = s.visitor_id \
             WHERE s.visitor_id = $1 AND v.site_id = $3 ORDER BY s.at DESC, s.id DESC LIMIT $2",
        )
        .bind(int(visitor.0))
        .bind(i64::from(limit))
        .bind(int(site.0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(url, title, referrer, at)| (Visit { url, title, referrer }, Timestamp(at.0)))
            .collect())
    }

    /// Whether `visitor` is one of `site`'s.
    async fn has_visitor(&self, site: SiteId, visitor: VisitorId) -> Result<bool, Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM visitors WHERE id = $1 AND site_id = $2")
            .bind(int(visitor.0))
            .bind(int(site.0))
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }
}
