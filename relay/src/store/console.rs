//! What the agent console reads besides the live stream: pages of past
//! conversations and messages, and the visitor panel's browser details and
//! earlier conversations. Every read is scoped to one site.

use kefu_protocol::codec::clip_bytes;
use kefu_protocol::frame::{ConversationStatus, Message};
use kefu_protocol::ids::{AgentId, ConversationId, Seq, SiteId, Timestamp, VisitorId};

use std::collections::{BTreeSet, HashMap};

use super::messages::{MessageRow, message_columns};
use super::writer::id_list;
use super::{Error, Store, Unsigned, int, undecodable};

/// Longest user agent or language string kept: real ones are far shorter,
/// and the visitor controls what is sent.
const CLIENT_FIELD_MAX_BYTES: usize = 512;

/// How many earlier conversations the visitor panel lists.
const PAST_CONVERSATIONS: u32 = 50;

/// A conversation in the console's lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub visitor: VisitorId,
    pub status: ConversationStatus,
    pub last_seq: Seq,
    pub updated_at: Timestamp,
    /// `None` while it waits in the queue.
    pub assignee: Option<AgentId>,
    /// When the oldest unanswered visitor message was sent.
    pub waiting_since: Option<Timestamp>,
    /// The name the site gave the visitor, if any.
    pub visitor_name: Option<String>,
    /// The newest message or note, for the list's preview; system lines
    /// are skipped. `None` if nobody has written yet.
    pub last_message: Option<Message>,
}

/// Which conversations to list: newest activity first, optionally only
/// open or closed ones, strictly before `before` (a previous page's last
/// `updated_at`) or, given `before_id` too (that page's last id), last
/// active at `before` with a lower id: many conversations can share one
/// millisecond, and a page may end among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationPage {
    pub status: Option<ConversationStatus>,
    pub before: Option<Timestamp>,
    pub before_id: Option<ConversationId>,
    pub limit: u32,
}

/// One of a visitor's conversations, for the visitor panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastConversation {
    pub id: ConversationId,
    pub status: ConversationStatus,
    pub last_seq: Seq,
    pub updated_at: Timestamp,
}

/// What the visitor's browser said about itself on its last connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitorClient {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The first language of `Accept-Language`, or what the widget reported.
    pub language: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Unsigned,
    visitor_id: Unsigned,
    status: String,
    last_seq: Unsigned,
    updated_at: Unsigned,
    assignee_id: Option<Unsigned>,
    waiting_since: Option<Unsigned>,
    visitor_name: Option<String>,
    last_message_id: Option<Unsigned>,
}

impl TryFrom<SummaryRow> for ConversationSummary {
    type Error = sqlx::Error;

    fn try_from(row: SummaryRow) -> Result<ConversationSummary, sqlx::Error> {
        Ok(ConversationSummary {
            id: ConversationId(row.id.0),
            visitor: VisitorId(row.visitor_id.0),
            status: status(&row.status)?,
            last_seq: Seq(row.last_seq.0),
            updated_at: Timestamp(row.updated_at.0),
            assignee: row.assignee_id.map(|id| AgentId(id.0)),
            waiting_since: row.waiting_since.map(|at| Timestamp(at.0)),
            visitor_name: row.visitor_name,
            last_message: None,
        })
    }
}

fn status(value: &str) -> Result<ConversationStatus, sqlx::Error> {
    match value {
        "open" => Ok(ConversationStatus::Open),
        "closed" => Ok(ConversationStatus::Closed),
        other => Err(undecodable("conversation status", other)),
    }
}

fn status_column(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "open",
        ConversationStatus::Closed => "closed",
    }
}

impl Store {
    /// A page of `site`'s conversations, most recently active first, each
    /// with its newest message for the preview: two queries whatever the
    /// page's size.
    pub async fn conversation_page(
        &self,
        site: SiteId,
        page: &ConversationPage,
    ) -> Result<Vec<ConversationSummary>, Error> {
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "SELECT c.id, c.visitor_id, c.status, c.last_seq, c.updated_at, c.assignee_id, c.waiting_since, \
                 p.name AS visitor_name, \
                 (SELECT m.id FROM messages m WHERE m.conversation_id = c.id AND m.body_kind <> 'event' \
                  ORDER BY m.seq DESC LIMIT 1) AS last_message_id \
             FROM conversations c LEFT JOIN visitor_profiles p ON p.visitor_id = c.visitor_id \
             WHERE c.site_id = $1 AND ($2 IS NULL OR c.status = $2) \
                 AND ($3 IS NULL OR c.updated_at < $3 OR (c.updated_at = $3 AND c.id < $5)) \
             ORDER BY c.updated_at DESC, c.id DESC LIMIT $4",
        )
        .bind(int(site.0))
        .bind(page.status.map(status_column))
        .bind(page.before.map(|before| int(before.0)))
        .bind(i64::from(page.limit))
        .bind(page.before_id.map(|id| int(id.0)))
        .fetch_all(self.pool())
        .await?;
        let last_ids: BTreeSet<u64> = rows.iter().filter_map(|row| row.last_message_id).map(|id| id.0).collect();
        let mut last_messages = self.messages_by_id(site, &last_ids).await?;
        let mut page = rows.into_iter().map(ConversationSummary::try_from).collect::<Result<Vec<_>, _>>()?;
        for summary in &mut page {
            summary.last_message = last_messages.remove(&summary.id);
        }
        Ok(page)
    }

    /// The messages with these ids that belong to `site`'s conversations,
    /// by conversation (one each, as the page asks for).
    async fn messages_by_id(
        &self,
        site: SiteId,
        ids: &BTreeSet<u64>,
    ) -> Result<HashMap<ConversationId, Message>, Error> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages WHERE id IN ({}) \
                 AND conversation_id IN (SELECT id FROM conversations WHERE site_id = $1)"
            ),
            id_list(ids)
        );
        let rows: Vec<MessageRow> =
            sqlx::query_as(&sql).persistent(false).bind(int(site.0)).fetch_all(self.pool()).await?;
        let messages = rows.into_iter().map(Message::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok(messages.into_iter().map(|message| (message.conversation, message)).collect())
    }

    /// Up to `limit` messages of one of `site`'s conversations with a seq
    /// below `before` (all when `None`), the newest of them, oldest first:
    /// paging back through history. Private notes and system lines are
    /// included: this is for agents. [`Error::NotFound`] if the
    /// conversation is not one of `site`'s.
    pub async fn messages_before(
        &self,
        site: SiteId,
        conversation: ConversationId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<Vec<Message>, Error> {
        let owned: Option<i64> = sqlx::query_scalar("SELECT 1 FROM conversations WHERE id = $1 AND site_id = $2")
            .bind(int(conversation.0))
            .bind(int(site.0))
            .fetch_optional(self.pool())
            .await?;
        if owned.is_none() {
            return Err(Error::NotFound);
        }
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        let rows: Vec<MessageRow> = sqlx::query_as(sql)
            .bind(int(conversation.0))
            .bind(before.map_or(i64::MAX, |before| int(before.0)))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        let mut messages = rows.into_iter().map(Message::try_from).collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Records what the browser of one of `site`'s visitors says about
    /// itself, each clipped to 512 bytes. `None` keeps what was
    /// recorded before. [`Error::NotFound`] if the visitor is not `site`'s.
    pub async fn record_visitor_client(
        &self,
        site: SiteId,
        visitor: VisitorId,
        user_agent: Option<&str>,
        language: Option<&str>,
    ) -> Result<(), Error> {
        let done = sqlx::query(
            "UPDATE visitors SET user_agent = coalesce($1, user_agent), language = coalesce($2, language) \
             WHERE id = $3 AND site_id = $4",
        )
        .bind(user_agent.map(|value| clip_bytes(value.to_owned(), CLIENT_FIELD_MAX_BYTES)))
        .bind(language.map(|value| clip_bytes(value.to_owned(), CLIENT_FIELD_MAX_BYTES)))
        .bind(int(visitor.0))
        .bind(int(site.0))
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// What the browser of one of `site`'s visitors said about itself;
    /// `None` if the visitor is not one of `site`'s.
    pub async fn visitor_client(&self, site: SiteId, visitor: VisitorId) -> Result<Option<VisitorClient>, Error> {
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT user_agent, language FROM visitors WHERE id = $1 AND site_id = $2")
                .bind(int(visitor.0))
                .bind(int(site.0))
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(user_agent, language)| VisitorClient { user_agent, language }))
    }

    /// The conversations of one of `site`'s visitors, newest first, and,
    /// given the verified `user_id` of that visitor, those of the site's
    /// other visitors verified as the same user (the same person on
    /// another device or after clearing storage).
    pub async fn visitor_conversations(
        &self,
        site: SiteId,
        visitor: VisitorId,
        verified_user_id: Option<&str>,
    ) -> Result<Vec<PastConversation>, Error> {
        let rows: Vec<(Unsigned, String, Unsigned, Unsigned)> = sqlx::query_as(
            "SELECT id, status, last_seq, updated_at FROM conversations \
             WHERE site_id = $1 AND (visitor_id = $2 OR visitor_id IN ( \
                 SELECT p.visitor_id FROM visitor_profiles p JOIN visitors v ON v.id = p.visitor_id \
                 WHERE v.site_id = $1 AND p.verified AND p.user_id = $3)) \
             ORDER BY updated_at DESC, id DESC LIMIT $4",
        )
        .bind(int(site.0))
        .bind(int(visitor.0))
        .bind(verified_user_id)
        .bind(i64::from(PAST_CONVERSATIONS))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, status_text, last_seq, updated_at)| {
                Ok(PastConversation {
                    id: ConversationId(id.0),
                    status: status(&status_text)?,
                    last_seq: Seq(last_seq.0),
                    updated_at: Timestamp(updated_at.0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::frame::{Author, Body, ConversationEvent};
    use kefu_protocol::ids::SiteKey;

    use super::*;
    use crate::store::tests::{TestDb, on_both_backends};
    use crate::store::{Identity, NewMessage};

    async fn store(db: TestDb) -> (TestDb, Store, SiteId, SiteId) {
        let store = db.open().await;
        let a = store.create_site(&SiteKey::new("a").unwrap(), "A").await.unwrap().id;
        let b = store.create_site(&SiteKey::new("b").unwrap(), "B").await.unwrap().id;
        (db, store, a, b)
    }

    async fn say(store: &Store, site: SiteId, conversation: ConversationId, author: Author, text: &str) {
        let message =
            NewMessage { site, conversation, client_id: None, author, body: Body::Text(text.into()), with: None };
        store.append(message).await.unwrap();
    }

    async fn conversation_pages_are_per_site_newest_first_and_filtered(db: TestDb) {
        let (_dir, store, a, b) = store(db).await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let visitor = store.create_visitor(a, "h").await.unwrap();
            let conversation = store.open_conversation(a, visitor).await.unwrap();
            say(&store, a, conversation.id, Author::Visitor(visitor), &format!("hi {n}")).await;
            ids.push(conversation.id);
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let stranger = store.create_visitor(b, "h").await.unwrap();
        store.open_conversation(b, stranger).await.unwrap();
        store.close_conversation(a, ids[0]).await.unwrap();
        let closed_line = Body::Event(ConversationEvent::Reopened { by: None });
        let line = NewMessage {
            site: a,
            conversation: ids[0],
            client_id: None,
            author: Author::System,
            body: closed_line,
            with: None,
        };
        store.append(line).await.unwrap();
        let named = store.conversation(a, ids[2]).await.unwrap().unwrap().visitor;
        let identity =
            Identity { user_id: "u", name: Some("Ada"), email: None, verified: false, profile_signed: false };
        store.identify_visitor(a, named, &identity).await.unwrap();

        let all = ConversationPage { status: None, before: None, before_id: None, limit: 10 };
        let page = store.conversation_page(a, &all).await.unwrap();
        assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[0], ids[2], ids[1]], "closing is activity");
        assert_eq!(page[1].visitor_name.as_deref(), Some("Ada"));
        assert!(page[1].waiting_since.is_some() && page[1].assignee.is_none());
        let previews: Vec<_> = page.iter().map(|c| c.last_message.as_ref().map(|m| m.body.clone())).collect();
        let text = |n: usize| Some(Body::Text(format!("hi {n}")));
        assert_eq!(previews, [text(0), text(2), text(1)], "each previews its own newest message, past the system line");

        let open = ConversationPage { status: Some(ConversationStatus::Open), ..all };
        let page = store.conversation_page(a, &open).await.unwrap();
        assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[2], ids[1]]);
        let next = ConversationPage { before: Some(page[0].updated_at), limit: 1, ..open };
        let page = store.conversation_page(a, &next).await.unwrap();
        assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[1]]);
        let closed = ConversationPage { status: Some(ConversationStatus::Closed), ..all };
        assert_eq!(store.conversation_page(a, &closed).await.unwrap().len(), 1);
        let strangers = store.conversation_page(b, &all).await.unwrap();
        assert_eq!(strangers.len(), 1);
        assert_eq!(strangers[0].last_message, None, "nobody wrote there");
    }

    async fn message_pages_go_back_from_the_newest_and_stay_in_their_site(db: TestDb) {
        let (_dir, store, a, b) = store(db).await;
        let visitor = store.create_visitor(a, "h").await.unwrap();
        let conversation = store.open_conversation(a, visitor).await.unwrap().id;
        for n in 1..=7 {
            say(&store, a, conversation, Author::Visitor(visitor), &format!("m{n}")).await;
        }
        let seqs = |messages: Vec<Message>| messages.iter().map(|m| m.seq.0).collect::<Vec<_>>();
        assert_eq!(seqs(store.messages_before(a, conversation, None, 3).await.unwrap()), [5, 6, 7]);
        assert_eq!(seqs(store.messages_before(a, conversation, Some(Seq(5)), 3).await.unwrap()), [2, 3, 4]);
        assert_eq!(seqs(store.messages_before(a, conversation, Some(Seq(2)), 3).await.unwrap()), [1]);
        assert!(store.messages_before(a, conversation, Some(Seq(1)), 3).await.unwrap().is_empty());
        let elsewhere = store.messages_before(b, conversation, None, 3).await;
        assert!(matches!(elsewhere, Err(Error::NotFound)));
        let nowhere = store.messages_before(a, ConversationId(999), None, 3).await;
        assert!(matches!(nowhere, Err(Error::NotFound)));
    }

    async fn visitor_clients_are_clipped_and_kept_per_site(db: TestDb) {
        let (_dir, store, a, b) = store(db).await;
        let visitor = store.create_visitor(a, "h").await.unwrap();
        assert_eq!(store.visitor_client(a, visitor).await.unwrap(), Some(VisitorClient::default()));
        let long = "é".repeat(600);
        store.record_visitor_client(a, visitor, Some(&long), Some("de-CH")).await.unwrap();
        store.record_visitor_client(a, visitor, None, None).await.unwrap();
        let client = store.visitor_client(a, visitor).await.unwrap().unwrap();
        // 'é' is two bytes: 256 of them fill the limit exactly.
        assert_eq!(client.user_agent.unwrap(), "é".repeat(CLIENT_FIELD_MAX_BYTES / 2));
        assert_eq!(client.language.as_deref(), Some("de-CH"));
        assert_eq!(store.visitor_client(b, visitor).await.unwrap(), None);
    }

    async fn a_verified_user_brings_the_conversations_of_their_other_visitors(db: TestDb) {
        let (_dir, store, a, b) = store(db).await;
        let verified = |user_id| Identity { user_id, name: None, email: None, verified: true, profile_signed: false };
        let claimed = |user_id| Identity { user_id, name: None, email: None, verified: false, profile_signed: false };
        let mut visitors = Vec::new();
        for (site, identity) in [(a, verified("u1")), (a, verified("u1")), (a, claimed("u1")), (b, verified("u1"))] {
            let visitor = store.create_visitor(site, "h").await.unwrap();
            store.identify_visitor(site, visitor, &identity).await.unwrap();
            store.open_conversation(site, visitor).await.unwrap();
            visitors.push(visitor);
        }
        let own = store.visitor_conversations(a, visitors[0], None).await.unwrap();
        assert_eq!(own.len(), 1);
        let linked = store.visitor_conversations(a, visitors[0], Some("u1")).await.unwrap();
        assert_eq!(linked.len(), 2, "the other verified visitor of site a, not the unverified one nor site b's");
        assert!(store.visitor_conversations(b, visitors[0], Some("u1")).await.unwrap().len() == 1);
    }

    on_both_backends![
        conversation_pages_are_per_site_newest_first_and_filtered,
        message_pages_go_back_from_the_newest_and_stay_in_their_site,
        visitor_clients_are_clipped_and_kept_per_site,
        a_verified_user_brings_the_conversations_of_their_other_visitors
    ];
}
