//! Visitors, conversations and receipt marks.

use kefu_protocol::frame::{Author, ConversationStatus, Receipt, ReceiptKind};
use kefu_protocol::ids::{AgentId, ConversationId, Seq, SiteId, Timestamp, VisitorId};

use super::{Conversation, Error, Store, constraint, int, now, undecodable};

#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: u64,
    site_id: u64,
    visitor_id: u64,
    status: String,
    last_seq: u64,
    updated_at: u64,
    assignee_id: Option<u64>,
    waiting_since: Option<u64>,
}

const CONVERSATION_COLUMNS: &str = "id, site_id, visitor_id, status, last_seq, updated_at, assignee_id, waiting_since";

impl TryFrom<ConversationRow> for Conversation {
    type Error = sqlx::Error;

    fn try_from(row: ConversationRow) -> Result<Conversation, sqlx::Error> {
        let status = match row.status.as_str() {
            "open" => ConversationStatus::Open,
            "closed" => ConversationStatus::Closed,
            other => return Err(undecodable("conversation status", other)),
        };
        Ok(Conversation {
            id: ConversationId(row.id),
            site: SiteId(row.site_id),
            visitor: VisitorId(row.visitor_id),
            status,
            last_seq: Seq(row.last_seq),
            updated_at: Timestamp(row.updated_at),
            assignee: row.assignee_id.map(AgentId),
            waiting_since: row.waiting_since.map(Timestamp),
        })
    }
}

/// Reads a conversation on `connection`: the writer uses it inside its
/// transaction, to report the state its own insert left.
pub(super) async fn conversation_on(
    connection: &mut sqlx::SqliteConnection,
    id: ConversationId,
) -> Result<Option<Conversation>, sqlx::Error> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?");
    let row: Option<ConversationRow> = sqlx::query_as(&sql).bind(int(id.0)).fetch_optional(connection).await?;
    row.map(Conversation::try_from).transpose()
}

/// Opening a conversation retries when it loses a race against a close;
/// two rounds always suffice unless someone closes in a tight loop.
const OPEN_ATTEMPTS: usize = 3;

impl Store {
    /// Creates a visitor of `site` whose token hashes to `token_hash`.
    /// [`Error::NotFound`] if the site does not exist.
    pub async fn create_visitor(&self, site: SiteId, token_hash: &str) -> Result<VisitorId, Error> {
        let now = now();
        let id: u64 = sqlx::query_scalar(
            "INSERT INTO visitors (site_id, token_hash, created_at, last_seen_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(int(site.0))
        .bind(token_hash)
        .bind(int(now.0))
        .bind(int(now.0))
        .fetch_one(self.pool())
        .await
        .map_err(|error| constraint(error, "visitor"))?;
        Ok(VisitorId(id))
    }

    /// The token hash of `visitor`, if it is a visitor of `site`: a token
    /// for one site must never open a conversation on another.
    pub async fn visitor_token_hash(&self, site: SiteId, visitor: VisitorId) -> Result<Option<String>, Error> {
        let hash = sqlx::query_scalar("SELECT token_hash FROM visitors WHERE id = ? AND site_id = ?")
            .bind(int(visitor.0))
            .bind(int(site.0))
            .fetch_optional(self.pool())
            .await?;
        Ok(hash)
    }

    /// Notes that the visitor came back now.
    pub async fn touch_visitor(&self, visitor: VisitorId) -> Result<(), Error> {
        let done = sqlx::query("UPDATE visitors SET last_seen_at = ? WHERE id = ?")
            .bind(int(now().0))
            .bind(int(visitor.0))
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// The visitor's conversation: its open one, else its newest closed one
    /// (the visitor writing there reopens it, so a returning visitor keeps
    /// its history), created if it has none.
    /// [`Error::NotFound`] if the visitor is not one of `site`'s.
    ///
    /// Two connections of one visitor may call this at once; the unique
    /// index on open conversations lets exactly one insert win, and the
    /// other then finds the winner's.
    pub async fn open_conversation(&self, site: SiteId, visitor: VisitorId) -> Result<Conversation, Error> {
        let find = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations \
             WHERE visitor_id = ? AND site_id = ? ORDER BY status = 'open' DESC, id DESC LIMIT 1"
        );
        // INSERT ... SELECT from visitors so that a visitor of another site
        // inserts nothing. The WHERE before ON CONFLICT is what SQLite needs
        // to parse an upsert after a SELECT.
        let create = format!(
            "INSERT INTO conversations (site_id, visitor_id, status, created_at, updated_at) \
             SELECT site_id, id, 'open', ?1, ?1 FROM visitors WHERE id = ?2 AND site_id = ?3 \
             ON CONFLICT (visitor_id) WHERE status = 'open' DO NOTHING \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        for _ in 0..OPEN_ATTEMPTS {
            let existing: Option<ConversationRow> =
                sqlx::query_as(&find).bind(int(visitor.0)).bind(int(site.0)).fetch_optional(self.pool()).await?;
            if let Some(row) = existing {
                return Ok(row.try_into()?);
            }
            let created: Option<ConversationRow> = sqlx::query_as(&create)
                .bind(int(now().0))
                .bind(int(visitor.0))
                .bind(int(site.0))
                .fetch_optional(self.pool())
                .await?;
            if let Some(row) = created {
                return Ok(row.try_into()?);
            }
            // Nothing inserted: another connection won the race (look
            // again), or the visitor is not one of this site's.
            if self.visitor_token_hash(site, visitor).await?.is_none() {
                return Err(Error::NotFound);
            }
        }
        Err(Error::Conflict("open conversation"))
    }

    /// Closes an open conversation; `None` if it is not open. Nobody
    /// waits on a closed conversation. Messages may still be appended to
    /// it, so a send that was in flight when it closed is not lost.
    pub async fn close_conversation(&self, id: ConversationId) -> Result<Option<Conversation>, Error> {
        self.change_conversation(
            "status = 'closed', waiting_since = NULL, updated_at = ?1",
            "id = ?2 AND status = 'open'",
            id,
            None,
        )
        .await
    }

    /// Opens a closed conversation again, assigned to `assignee` (or to
    /// the queue); `None` if it is not closed.
    pub async fn reopen_conversation(
        &self,
        id: ConversationId,
        assignee: Option<AgentId>,
    ) -> Result<Option<Conversation>, Error> {
        self.change_conversation(
            "status = 'open', assignee_id = ?3, updated_at = ?1",
            "id = ?2 AND status = 'closed'",
            id,
            assignee,
        )
        .await
    }

    /// Assigns an open conversation to `to` if it is assigned to `from`
    /// now (`None`: waiting in the queue). Compare-and-set, so of two
    /// agents taking the same chat exactly one wins; `None` for the other.
    pub async fn assign_conversation(
        &self,
        id: ConversationId,
        from: Option<AgentId>,
        to: AgentId,
    ) -> Result<Option<Conversation>, Error> {
        let assigned = match from {
            None => "assignee_id IS NULL".to_owned(),
            Some(from) => format!("assignee_id = {}", int(from.0)),
        };
        let assigned = self
            .change_conversation(
                "assignee_id = ?3, updated_at = ?1",
                &format!("id = ?2 AND status = 'open' AND {assigned}"),
                id,
                Some(to),
            )
            .await?;
        if assigned.is_some() {
            sqlx::query("UPDATE agents SET last_assigned_at = ? WHERE id = ?")
                .bind(int(now().0))
                .bind(int(to.0))
                .execute(self.pool())
                .await?;
        }
        Ok(assigned)
    }

    /// One conditional UPDATE of a conversation: `set` and `when` use ?1
    /// for now, ?2 for the id and ?3 for `agent`. Callers pass literals.
    async fn change_conversation(
        &self,
        set: &str,
        when: &str,
        id: ConversationId,
        agent: Option<AgentId>,
    ) -> Result<Option<Conversation>, Error> {
        let sql = format!("UPDATE conversations SET {set} WHERE {when} RETURNING {CONVERSATION_COLUMNS}");
        let row: Option<ConversationRow> = sqlx::query_as(&sql)
            .bind(int(now().0))
            .bind(int(id.0))
            .bind(agent.map(|a| int(a.0)))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// The oldest conversation of `site` whose visitor waits for an answer
    /// with no agent assigned: the head of the queue.
    pub async fn next_in_queue(&self, site: SiteId) -> Result<Option<Conversation>, Error> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations \
             WHERE site_id = ? AND status = 'open' AND assignee_id IS NULL AND waiting_since IS NOT NULL \
             ORDER BY waiting_since, id LIMIT 1"
        );
        let row: Option<ConversationRow> = sqlx::query_as(&sql).bind(int(site.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// The conversation with that id.
    pub async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, Error> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?");
        let row: Option<ConversationRow> = sqlx::query_as(&sql).bind(int(id.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// The site's open conversations, oldest first.
    pub async fn open_conversations(&self, site: SiteId) -> Result<Vec<Conversation>, Error> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations \
             WHERE site_id = ? AND status = 'open' ORDER BY id"
        );
        let rows: Vec<ConversationRow> = sqlx::query_as(&sql).bind(int(site.0)).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Conversation::try_from).collect::<Result<_, _>>()?)
    }

    /// Moves `by`'s side's `kind` mark up to `up_to`, clamped to the last
    /// message. `Some(new mark)` if it grew, `None` if it was already there
    /// (or `by` is the relay itself, which keeps no marks).
    ///
    /// The visitor has its own marks; the site's agents share one pair, as
    /// the visitor sees them as one team. [`Error::NotFound`] if the
    /// conversation does not exist or is not `by`'s (another visitor's, or
    /// another site's for an agent).
    /// The current receipt marks of a conversation, as the receipts that
    /// set them: sent after a replay so a reconnecting client sees
    /// delivered and read marks again. Marks at 0 are left out.
    pub async fn receipts(&self, conversation: ConversationId) -> Result<Vec<Receipt>, Error> {
        let row: Option<(u64, u64, u64, u64, u64, Option<u64>)> = sqlx::query_as(
            "SELECT visitor_id, visitor_delivered, visitor_read, agent_delivered, agent_read, agent_marks_by \
             FROM conversations WHERE id = ?",
        )
        .bind(int(conversation.0))
        .fetch_optional(self.pool())
        .await?;
        let Some((visitor, visitor_delivered, visitor_read, agent_delivered, agent_read, agent)) = row else {
            return Ok(Vec::new());
        };
        let visitor = Author::Visitor(VisitorId(visitor));
        let mut marks =
            vec![(visitor, ReceiptKind::Delivered, visitor_delivered), (visitor, ReceiptKind::Read, visitor_read)];
        if let Some(agent) = agent {
            let agent = Author::Agent(kefu_protocol::ids::AgentId(agent));
            marks.push((agent, ReceiptKind::Delivered, agent_delivered));
            marks.push((agent, ReceiptKind::Read, agent_read));
        }
        Ok(marks
            .into_iter()
            .filter(|&(_, _, up_to)| up_to > 0)
            .map(|(by, kind, up_to)| Receipt { conversation, by, kind, up_to: Seq(up_to) })
            .collect())
    }

    pub async fn record_receipt(
        &self,
        conversation: ConversationId,
        by: Author,
        kind: ReceiptKind,
        up_to: Seq,
    ) -> Result<Option<Seq>, Error> {
        // Column names come from these closed matches, never from input.
        let (side, scope, participant) = match by {
            Author::Visitor(visitor) => ("visitor", "visitor_id = ?3", visitor.0),
            Author::Agent(agent) => ("agent", "site_id = (SELECT site_id FROM agents WHERE id = ?3)", agent.0),
            Author::System => return Ok(None),
        };
        let mark = match kind {
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
        };
        let column = format!("{side}_{mark}");
        let by_agent = if side == "agent" { ", agent_marks_by = ?3" } else { "" };
        let grow = format!(
            "UPDATE conversations SET {column} = MIN(?1, last_seq){by_agent} \
             WHERE id = ?2 AND {scope} AND {column} < MIN(?1, last_seq) \
             RETURNING {column}"
        );
        let grown: Option<u64> = sqlx::query_scalar(&grow)
            .bind(int(up_to.0))
            .bind(int(conversation.0))
            .bind(int(participant))
            .fetch_optional(self.pool())
            .await?;
        if let Some(mark) = grown {
            return Ok(Some(Seq(mark)));
        }
        // Not grown: tell "already there" from "not yours".
        let exists = format!("SELECT 1 FROM conversations WHERE id = ?2 AND {scope}");
        let found: Option<i64> = sqlx::query_scalar(&exists)
            .bind(int(up_to.0))
            .bind(int(conversation.0))
            .bind(int(participant))
            .fetch_optional(self.pool())
            .await?;
        match found {
            Some(_) => Ok(None),
            None => Err(Error::NotFound),
        }
    }
}
