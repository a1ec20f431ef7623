//! The deployment's owners: people, by login email, above every site's
//! admins (see `http::owner`). The reads here cross sites on purpose: an
//! owner's view is the whole deployment, never one site's data.

use kefu_protocol::ids::Timestamp;

use super::sites::SiteRow;
use super::{Error, Site, Store, Unsigned};

/// A site as the owner's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteOverview {
    pub site: Site,
    /// Active agents, admins included.
    pub agents: u64,
    pub open_conversations: u64,
    pub created_at: Timestamp,
}

impl Store {
    /// Whether the person logging in with `email` is an owner.
    pub async fn is_owner(&self, email: &str) -> Result<bool, Error> {
        let found: Option<String> = sqlx::query_scalar("SELECT email FROM owners WHERE email = lower($1)")
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// Makes the person with `email` an owner; nothing changes if they
    /// are one already.
    pub async fn add_owner(&self, email: &str) -> Result<(), Error> {
        let mut connection = self.pool().acquire().await?;
        Ok(insert_owner(&mut connection, email).await?)
    }

    /// Every site with its head counts, oldest first.
    pub async fn site_overviews(&self) -> Result<Vec<SiteOverview>, Error> {
        #[derive(sqlx::FromRow)]
        struct OverviewRow {
            #[sqlx(flatten)]
            site: SiteRow,
            created_at: Unsigned,
            agents: Unsigned,
            open_conversations: Unsigned,
        }
        let rows: Vec<OverviewRow> = sqlx::query_as(
            "SELECT s.id, s.key, s.name, s.created_at, \
                 (SELECT COUNT(*) FROM agents a WHERE a.site_id = s.id AND a.active) AS agents, \
                 (SELECT COUNT(*) FROM conversations c WHERE c.site_id = s.id AND c.status = 'open') \
                     AS open_conversations \
             FROM sites s ORDER BY s.id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(SiteOverview {
                    site: Site::try_from(row.site)?,
                    agents: row.agents.0,
                    open_conversations: row.open_conversations.0,
                    created_at: Timestamp(row.created_at.0),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Error::from)
    }
}

/// Used where the first site is made: its admin becomes the owner in the
/// same transaction.
pub(super) async fn insert_owner(connection: &mut sqlx::AnyConnection, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO owners (email) VALUES (lower($1)) ON CONFLICT (email) DO NOTHING")
        .bind(email)
        .execute(connection)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use kefu_protocol::ids::SiteKey;

    use crate::store::Role;
    use crate::store::tests::{TestDb, on_both_backends};

    async fn the_first_admin_owns_the_deployment_and_owners_see_every_site(db: TestDb) {
        let store = db.open().await;
        let key = SiteKey::new("demo").unwrap();
        let (demo, admin) =
            store.create_first_site(&key, "Demo", "Boss@Example.com", "Boss", "h").await.unwrap().unwrap();
        assert!(store.is_owner("boss@example.com").await.unwrap(), "emails compare as logins do");
        assert!(store.is_owner(&admin.email).await.unwrap());

        let (acme, _) = store
            .create_site_with_admin(&SiteKey::new("acme").unwrap(), "Acme", "ann@acme.test", "Ann", "h")
            .await
            .unwrap();
        assert!(!store.is_owner("ann@acme.test").await.unwrap(), "a later site's admin is not an owner");
        store.add_owner("Ann@acme.test").await.unwrap();
        store.add_owner("ann@acme.test").await.unwrap();
        assert!(store.is_owner("ann@acme.test").await.unwrap());

        store.create_agent(acme.id, "bob@acme.test", "Bob", "h", Role::Agent).await.unwrap();
        let sites = store.site_overviews().await.unwrap();
        let counts: Vec<_> = sites.iter().map(|s| (s.site.key.as_str().to_owned(), s.agents)).collect();
        assert_eq!(counts, [("demo".to_owned(), 1), ("acme".to_owned(), 2)]);
        assert_eq!(sites[0].site.id, demo.id);
    }

    on_both_backends!(the_first_admin_owns_the_deployment_and_owners_see_every_site);
}
