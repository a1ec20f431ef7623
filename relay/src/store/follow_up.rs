//! What email follow-up keeps (`crate::follow_up`): each site's batch
//! delay, the visitors who unsubscribed, how far each conversation has
//! been mailed, and where a visitor can be reached.

use std::collections::BTreeMap;
use std::time::Duration;

use kefu_protocol::frame::{Author, Body, Message};
use kefu_protocol::ids::{ConversationId, Seq, SiteId, VisitorId};

use super::messages::{MessageRow, message_columns};
use super::{Error, Store, Unsigned, int, now};

/// How long a site waits after an agent's reply before it mails the
/// visitor, unless it set its own: a burst of replies makes one mail.
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_secs(120);

/// The longest batch delay a site may set: a day, after which a follow-up
/// is no longer one.
pub const MAX_BATCH_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Store {
    /// How long `site` waits before mailing a visitor the replies it missed.
    pub async fn follow_up_delay(&self, site: SiteId) -> Result<Duration, Error> {
        let row: Option<(Unsigned,)> =
            sqlx::query_as("SELECT batch_delay_secs FROM follow_up_settings WHERE site_id = $1")
                .bind(int(site.0))
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map_or(DEFAULT_BATCH_DELAY, |(secs,)| Duration::from_secs(secs.0)))
    }

    /// Sets `site`'s batch delay, in whole seconds (callers check it is at
    /// most [`MAX_BATCH_DELAY`]).
    pub async fn set_follow_up_delay(&self, site: SiteId, delay: Duration) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO follow_up_settings (site_id, batch_delay_secs) VALUES ($1, $2) \
             ON CONFLICT (site_id) DO UPDATE SET batch_delay_secs = $2",
        )
        .bind(int(site.0))
        .bind(int(delay.as_secs()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records that one of `site`'s visitors wants no more follow-up mail.
    /// Doing it twice keeps the first time.
    pub async fn unsubscribe_visitor(&self, site: SiteId, visitor: VisitorId) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO follow_up_unsubscribed (site_id, visitor_id, unsubscribed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (site_id, visitor_id) DO NOTHING",
        )
        .bind(int(site.0))
        .bind(int(visitor.0))
        .bind(int(now().0))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether one of `site`'s visitors unsubscribed from follow-up mail.
    pub async fn visitor_unsubscribed(&self, site: SiteId, visitor: VisitorId) -> Result<bool, Error> {
        let row: Option<(Unsigned,)> =
            sqlx::query_as("SELECT visitor_id FROM follow_up_unsubscribed WHERE site_id = $1 AND visitor_id = $2")
                .bind(int(site.0))
                .bind(int(visitor.0))
                .fetch_optional(self.pool())
                .await?;
        Ok(row.is_some())
    }

    /// Where one of `site`'s visitors can be mailed: the email of its
    /// identity (`setUser`), else the `email` attribute it gave (a contact
    /// form). `None` when it gave neither.
    pub async fn visitor_email(&self, site: SiteId, visitor: VisitorId) -> Result<Option<String>, Error> {
        let row: Option<(Option<String>, String)> = sqlx::query_as(
            "SELECT p.email, p.attributes FROM visitor_profiles p JOIN visitors v ON v.id = p.visitor_id \
             WHERE p.visitor_id = $1 AND v.site_id = $2",
        )
        .bind(int(visitor.0))
        .bind(int(site.0))
        .fetch_optional(self.pool())
        .await?;
        let Some((email, attributes)) = row else { return Ok(None) };
        let attribute = || {
            let attributes: BTreeMap<String, String> = serde_json::from_str(&attributes).unwrap_or_default();
            attributes.get("email").cloned()
        };
        Ok(email.or_else(attribute).map(|email| email.trim().to_owned()).filter(|email| !email.is_empty()))
    }

    /// The agents' replies in one of `site`'s conversations that its
    /// visitor has neither read nor been mailed, lowest seq first. Empty
    /// for a conversation that is not `site`'s.
    pub async fn unmailed_replies(&self, site: SiteId, conversation: ConversationId) -> Result<Vec<Message>, Error> {
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND author_kind = 'agent' AND body_kind = 'text' \
             AND seq > (SELECT visitor_read FROM conversations WHERE id = $1 AND site_id = $2) \
             AND seq > coalesce((SELECT mailed_through FROM follow_up_mailed \
                                 WHERE site_id = $2 AND conversation_id = $1), 0) \
             ORDER BY seq"
        );
        let rows: Vec<MessageRow> =
            sqlx::query_as(sql).bind(int(conversation.0)).bind(int(site.0)).fetch_all(self.pool()).await?;
        let messages: Vec<Message> = rows.into_iter().map(Message::try_from).collect::<Result<_, _>>()?;
        Ok(messages
            .into_iter()
            .filter(|message| {
                matches!((&message.author, &message.body), (Author::Agent(_), Body::Text(_) | Body::Files(_)))
            })
            .collect())
    }

    /// Records that a follow-up mail carried one of `site`'s conversation
    /// up to `through`; never moves back.
    pub async fn mark_mailed(&self, site: SiteId, conversation: ConversationId, through: Seq) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO follow_up_mailed (site_id, conversation_id, mailed_through) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $2 AND site_id = $1) \
             ON CONFLICT (site_id, conversation_id) DO UPDATE SET mailed_through = $3 \
             WHERE follow_up_mailed.mailed_through < $3",
        )
        .bind(int(site.0))
        .bind(int(conversation.0))
        .bind(int(through.0))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::frame::{Attribute, ReceiptKind};
    use kefu_protocol::ids::{ClientMessageId, SiteKey};

    use super::*;
    use crate::store::tests::{TestDb, on_both_backends};
    use crate::store::{Identity, NewMessage, Role};

    async fn replies_are_mailed_once_and_only_when_unread(db: TestDb) {
        let store = db.open().await;
        let site = store.create_site(&SiteKey::new("a").unwrap(), "A").await.unwrap().id;
        let other = store.create_site(&SiteKey::new("b").unwrap(), "B").await.unwrap().id;
        let visitor = store.create_visitor(site, "hash").await.unwrap();
        let conversation = store.open_conversation(site, visitor).await.unwrap().id;
        let agent = store.create_agent(site, "ann@example.com", "Ann", "hash", Role::Agent).await.unwrap().id;
        let say = |client_id: u128, author: Author, body: Body| {
            store.append(NewMessage {
                site,
                conversation,
                client_id: Some(ClientMessageId(client_id)),
                author,
                body,
                with: None,
            })
        };
        say(1, Author::Visitor(visitor), Body::Text("hello?".into())).await.unwrap();
        say(2, Author::Agent(agent), Body::Text("one".into())).await.unwrap();
        say(3, Author::Agent(agent), Body::Note("private".into())).await.unwrap();
        say(4, Author::Agent(agent), Body::Text("two".into())).await.unwrap();
        let texts = |messages: Vec<Message>| {
            messages.into_iter().map(|m| format!("{}:{:?}", m.seq.0, m.body)).collect::<Vec<_>>()
        };
        let unmailed = || store.unmailed_replies(site, conversation);
        assert_eq!(
            texts(unmailed().await.unwrap()),
            ["2:Text(\"one\")", "4:Text(\"two\")"],
            "no notes, no visitor lines"
        );
        assert!(store.unmailed_replies(other, conversation).await.unwrap().is_empty(), "another site's");

        store.record_receipt(site, conversation, Author::Visitor(visitor), ReceiptKind::Read, Seq(2)).await.unwrap();
        assert_eq!(texts(unmailed().await.unwrap()), ["4:Text(\"two\")"], "read replies are not mailed");
        store.mark_mailed(other, conversation, Seq(9)).await.unwrap();
        assert_eq!(unmailed().await.unwrap().len(), 1, "another site marks nothing");
        store.mark_mailed(site, conversation, Seq(4)).await.unwrap();
        assert!(unmailed().await.unwrap().is_empty());
        store.mark_mailed(site, conversation, Seq(1)).await.unwrap();
        say(5, Author::Agent(agent), Body::Text("three".into())).await.unwrap();
        assert_eq!(texts(unmailed().await.unwrap()), ["5:Text(\"three\")"], "the mark never moves back");
    }

    async fn unsubscribing_delays_and_addresses_are_per_site(db: TestDb) {
        let store = db.open().await;
        let site = store.create_site(&SiteKey::new("a").unwrap(), "A").await.unwrap().id;
        let other = store.create_site(&SiteKey::new("b").unwrap(), "B").await.unwrap().id;
        let visitor = store.create_visitor(site, "hash").await.unwrap();

        assert!(!store.visitor_unsubscribed(site, visitor).await.unwrap());
        store.unsubscribe_visitor(site, visitor).await.unwrap();
        store.unsubscribe_visitor(site, visitor).await.unwrap();
        assert!(store.visitor_unsubscribed(site, visitor).await.unwrap());
        assert!(!store.visitor_unsubscribed(other, visitor).await.unwrap());

        assert_eq!(store.follow_up_delay(site).await.unwrap(), DEFAULT_BATCH_DELAY);
        store.set_follow_up_delay(site, Duration::from_secs(1)).await.unwrap();
        store.set_follow_up_delay(site, Duration::from_secs(2)).await.unwrap();
        assert_eq!(store.follow_up_delay(site).await.unwrap(), Duration::from_secs(2));
        assert_eq!(store.follow_up_delay(other).await.unwrap(), DEFAULT_BATCH_DELAY);

        assert_eq!(store.visitor_email(site, visitor).await.unwrap(), None);
        let typed = [Attribute { key: "email".into(), value: " typed@example.com ".into() }];
        store.set_visitor_attributes(site, visitor, &typed).await.unwrap();
        assert_eq!(store.visitor_email(site, visitor).await.unwrap().as_deref(), Some("typed@example.com"));
        assert_eq!(store.visitor_email(other, visitor).await.unwrap(), None, "another site's visitor");
        let identity = Identity {
            user_id: "u1",
            name: None,
            email: Some("known@example.com"),
            verified: true,
            profile_signed: true,
        };
        store.identify_visitor(site, visitor, &identity).await.unwrap();
        assert_eq!(store.visitor_email(site, visitor).await.unwrap().as_deref(), Some("known@example.com"));
    }

    on_both_backends![replies_are_mailed_once_and_only_when_unread, unsubscribing_delays_and_addresses_are_per_site];
}
