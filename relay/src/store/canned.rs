//! Canned replies: `/shortcut` in the console's composer expands to a
//! site's stored text.

use kefu_protocol::ids::SiteId;
use serde::{Deserialize, Serialize};

use super::{Error, Store, Unsigned, constraint, int, now};

/// A canned reply's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CannedReplyId(pub u64);

/// A stored reply an agent can insert by its shortcut.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CannedReply {
    #[sqlx(try_from = "Unsigned")]
    pub id: CannedReplyId,
    /// What follows the `/`: lowercase letters, digits, `_` and `-`.
    pub shortcut: String,
    pub text: String,
}

impl From<Unsigned> for CannedReplyId {
    fn from(id: Unsigned) -> CannedReplyId {
        CannedReplyId(id.0)
    }
}

impl Store {
    /// The site's canned replies, by shortcut.
    pub async fn canned_replies(&self, site: SiteId) -> Result<Vec<CannedReply>, Error> {
        let replies =
            sqlx::query_as("SELECT id, shortcut, text FROM canned_replies WHERE site_id = $1 ORDER BY shortcut")
                .bind(int(site.0))
                .fetch_all(self.pool())
                .await?;
        Ok(replies)
    }

    /// Adds a canned reply to `site`. [`Error::Conflict`] if the site has
    /// one with that shortcut.
    pub async fn create_canned_reply(&self, site: SiteId, shortcut: &str, text: &str) -> Result<CannedReply, Error> {
        let reply = sqlx::query_as(
            "INSERT INTO canned_replies (site_id, shortcut, text, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, shortcut, text",
        )
        .bind(int(site.0))
        .bind(shortcut)
        .bind(text)
        .bind(int(now().0))
        .fetch_one(self.pool())
        .await
        .map_err(|error| constraint(error, "a canned reply with that shortcut"))?;
        Ok(reply)
    }

    /// Changes one of `site`'s canned replies. [`Error::NotFound`] if it is
    /// not one of `site`'s, [`Error::Conflict`] if the new shortcut is
    /// taken.
    pub async fn update_canned_reply(
        &self,
        site: SiteId,
        id: CannedReplyId,
        shortcut: &str,
        text: &str,
    ) -> Result<CannedReply, Error> {
        let reply: Option<CannedReply> = sqlx::query_as(
            "UPDATE canned_replies SET shortcut = $1, text = $2 WHERE id = $3 AND site_id = $4 \
             RETURNING id, shortcut, text",
        )
        .bind(shortcut)
        .bind(text)
        .bind(int(id.0))
        .bind(int(site.0))
        .fetch_optional(self.pool())
        .await
        .map_err(|error| constraint(error, "a canned reply with that shortcut"))?;
        reply.ok_or(Error::NotFound)
    }

    /// Deletes one of `site`'s canned replies. [`Error::NotFound`] if it is
    /// not one of `site`'s.
    pub async fn delete_canned_reply(&self, site: SiteId, id: CannedReplyId) -> Result<(), Error> {
        let done = sqlx::query("DELETE FROM canned_replies WHERE id = $1 AND site_id = $2")
            .bind(int(id.0))
            .bind(int(site.0))
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
    use crate::store::tests::{TestDb, on_both_backends};

    async fn canned_replies_are_per_site_sorted_and_unique(db: TestDb) {
        let store = db.open().await;
        let a = store.create_site(&SiteKey::new("a").unwrap(), "A").await.unwrap().id;
        let b = store.create_site(&SiteKey::new("b").unwrap(), "B").await.unwrap().id;

        let thanks = store.create_canned_reply(a, "thanks", "Thank you!").await.unwrap();
        store.create_canned_reply(a, "hello", "Hello!").await.unwrap();
        store.create_canned_reply(b, "thanks", "Danke!").await.unwrap();
        assert!(matches!(store.create_canned_reply(a, "thanks", "Again").await, Err(Error::Conflict(_))));
        let shortcuts = |replies: Vec<CannedReply>| replies.into_iter().map(|r| r.shortcut).collect::<Vec<_>>();
        assert_eq!(shortcuts(store.canned_replies(a).await.unwrap()), ["hello", "thanks"]);

        let changed = store.update_canned_reply(a, thanks.id, "ty", "Thanks a lot!").await.unwrap();
        assert_eq!((changed.id, changed.shortcut.as_str(), changed.text.as_str()), (thanks.id, "ty", "Thanks a lot!"));
        assert!(matches!(store.update_canned_reply(a, thanks.id, "hello", "x").await, Err(Error::Conflict(_))));
        assert!(matches!(store.update_canned_reply(b, thanks.id, "x", "x").await, Err(Error::NotFound)));
        assert!(matches!(store.delete_canned_reply(b, thanks.id).await, Err(Error::NotFound)));
        store.delete_canned_reply(a, thanks.id).await.unwrap();
        assert!(matches!(store.delete_canned_reply(a, thanks.id).await, Err(Error::NotFound)));
        assert_eq!(shortcuts(store.canned_replies(a).await.unwrap()), ["hello"]);
        assert_eq!(shortcuts(store.canned_replies(b).await.unwrap()), ["thanks"]);
    }

    on_both_backends![canned_replies_are_per_site_sorted_and_unique];
}
