//! Visitors, conversations and receipt marks.

use kefu_protocol::frame::{Author, ConversationStatus, Receipt, ReceiptKind};
use kefu_protocol::ids::{AgentId, ConversationId, Seq, SiteId, Timestamp, VisitorId};

use super::mail::NewMail;
use super::{Conversation, Error, Store, Unsigned, constraint, int, now, undecodable};

#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: Unsigned,
    site_id: Unsigned,
    visitor_id: Unsigned,
    status: String,
    last_seq: Unsigned,
    updated_at: Unsigned,
    assignee_id: Option<Unsigned>,
    waiting_since: Option<Unsigned>,
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
            id: ConversationId(row.id.0),
            site: SiteId(row.site_id.0),
            visitor: VisitorId(row.visitor_id.0),
            status,
            last_seq: Seq(row.last_seq.0),
            updated_at: Timestamp(row.updated_at.0),
            assignee: row.assignee_id.map(|id| AgentId(id.0)),
            waiting_since: row.waiting_since.map(|at| Timestamp(at.0)),
        })
    }
}

/// Reads conversations on `connection`: the writer uses it inside its
/// transaction, to report the state its own inserts left. `ids` is the
/// list for `IN (...)`, numbers only (see the writer's `id_list`).
pub(super) async fn conversations_on(
    connection: &mut sqlx::AnyConnection,
    ids: &str,
) -> Result<Vec<Conversation>, sqlx::Error> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id IN ({ids})");
    let rows: Vec<ConversationRow> = sqlx::query_as(&sql).persistent(false).fetch_all(connection).await?;
    rows.into_iter().map(Conversation::try_from).collect()
}

/// A visitor that said hello but has not written yet: what its rows will
/// hold once it does (see [`Store::save_visitor`]).
#[derive(Debug, Clone, Copy)]
pub struct NewVisitor<'a> {
    pub id: VisitorId,
    pub conversation: ConversationId,
    pub token_hash: &'a str,
    pub user_agent: Option<&'a str>,
    pub language: Option<&'a str>,
    /// Mails to queue if this makes the visitor's conversation, in the
    /// same transaction: the agents' notifications of a new conversation.
    pub mail: &'a [NewMail<'a>],
}

/// Opening a conversation retries when it loses a race against a close;
/// two rounds always suffice unless someone closes in a tight loop.
const OPEN_ATTEMPTS: usize = 3;

impl Store {
    /// Creates a visitor of `site` whose token hashes to `token_hash`.
    /// [`Error::NotFound`] if the site does not exist.
    pub async fn create_visitor(&self, site: SiteId, token_hash: &str) -> Result<VisitorId, Error> {
        let id = self.new_visitor_id().await?;
        let now = now();
        sqlx::query(
            "INSERT INTO visitors (id, site_id, token_hash, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(int(id.0))
        .bind(int(site.0))
        .bind(token_hash)
        .bind(int(now.0))
        .execute(self.pool())
        .await
        .map_err(|error| constraint(error, "visitor"))?;
        Ok(id)
    }

    /// Makes the rows of a visitor that writes for the first time: the
    /// visitor, and its conversation with the id it was given at hello.
    /// Returns the visitor's conversation: `new.conversation`, unless the
    /// visitor had one already. [`Error::NotFound`] if the site does not
    /// exist, or the id is another site's visitor.
    ///
    /// Two connections of one visitor (two tabs, two nodes) may save it at
    /// once: both inserts do nothing when the rows are there, so both end
    /// with the same rows. The visitor's insert names no conflict target:
    /// on PostgreSQL a race on the other unique key, `(site_id, id)`, is
    /// an error unless every key's conflict is ignored.
    pub async fn save_visitor(&self, site: SiteId, new: &NewVisitor<'_>) -> Result<Conversation, Error> {
        let now = int(now().0);
        let mut transaction = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO visitors (id, site_id, token_hash, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(int(new.id.0))
        .bind(int(site.0))
        .bind(new.token_hash)
        .bind(now)
        .execute(&mut *transaction)
        .await
        .map_err(|error| constraint(error, "visitor"))?;
        // As in `open_conversation`: selected from visitors, so another
        // site's visitor inserts nothing.
        let created = sqlx::query(
            "INSERT INTO conversations (id, site_id, visitor_id, status, created_at, updated_at) \
             SELECT $1, site_id, id, 'open', $2, $2 FROM visitors WHERE id = $3 AND site_id = $4 \
             AND NOT EXISTS (SELECT 1 FROM conversations WHERE visitor_id = $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(int(new.conversation.0))
        .bind(now)
        .bind(int(new.id.0))
        .bind(int(site.0))
        .execute(&mut *transaction)
        .await?;
        // Only the save that made the conversation tells of it: a second
        // tab saving the same visitor queues nothing.
        if created.rows_affected() == 1 {
            for mail in new.mail {
                Store::enqueue_mail_on(&mut transaction, site, mail).await?;
            }
        }
        transaction.commit().await?;
        self.record_visitor_client(site, new.id, new.user_agent, new.language).await?;
        self.visitor_conversation(site, new.id).await?.ok_or(Error::NotFound)
    }

    /// The token hash of `visitor`, if it is a visitor of `site`: a token
    /// for one site must never open a conversation on another.
    pub async fn visitor_token_hash(&self, site: SiteId, visitor: VisitorId) -> Result<Option<String>, Error> {
        let hash = sqlx::query_scalar("SELECT token_hash FROM visitors WHERE id = $1 AND site_id = $2")
            .bind(int(visitor.0))
            .bind(int(site.0))
            .fetch_optional(self.pool())
            .await?;
        Ok(hash)
    }

    /// Notes that one of `site`'s visitors came back now.
    /// [`Error::NotFound`] if it is not one of `site`'s.
    pub async fn touch_visitor(&self, site: SiteId, visitor: VisitorId) -> Result<(), Error> {
        let done = sqlx::query("UPDATE visitors SET last_seen_at = $1 WHERE id = $2 AND site_id = $3")
            .bind(int(now().0))
            .bind(int(visitor.0))
            .bind(int(site.0))
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
        // INSERT ... SELECT from visitors so that a visitor of another site
        // inserts nothing. The WHERE before ON CONFLICT is what SQLite needs
        // to parse an upsert after a SELECT; the one after names the partial
        // index, as PostgreSQL needs to pick it.
        let create = format!(
            "INSERT INTO conversations (id, site_id, visitor_id, status, created_at, updated_at) \
             SELECT $4, site_id, id, 'open', $1, $1 FROM visitors WHERE id = $2 AND site_id = $3 \
             ON CONFLICT (visitor_id) WHERE status = 'open' DO NOTHING \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        for _ in 0..OPEN_ATTEMPTS {
            if let Some(existing) = self.visitor_conversation(site, visitor).await? {
                return Ok(existing);
            }
            let id = self.new_conversation_id().await?;
            let created: Option<ConversationRow> = sqlx::query_as(&create)
                .bind(int(now().0))
                .bind(int(visitor.0))
                .bind(int(site.0))
                .bind(int(id.0))
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

    /// The visitor's conversation if it has one: its open one, else its
    /// newest closed one. `None` too if the visitor is not one of `site`'s.
    pub async fn visitor_conversation(&self, site: SiteId, visitor: VisitorId) -> Result<Option<Conversation>, Error> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations \
             WHERE visitor_id = $1 AND site_id = $2 ORDER BY status = 'open' DESC, id DESC LIMIT 1"
        );
        let row: Option<ConversationRow> =
            sqlx::query_as(&sql).bind(int(visitor.0)).bind(int(site.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// Closes an open conversation of `site`; `None` if it is not open
    /// (or not `site`'s). Nobody waits on a closed conversation. Messages
    /// may still be appended to it, so a send that was in flight when it
    /// closed is not lost.
    pub async fn close_conversation(&self, site: SiteId, id: ConversationId) -> Result<Option<Conversation>, Error> {
        self.change_conversation(
            site,
            "status = 'closed', waiting_since = NULL, updated_at = $1",
            "status = 'open'",
            id,
            None,
        )
        .await
    }

    /// Opens a closed conversation of `site` again, assigned to `assignee`
    /// (an agent of `site`) or to the queue; `None` if it is not closed
    /// (or either is not `site`'s).
    pub async fn reopen_conversation(
        &self,
        site: SiteId,
        id: ConversationId,
        assignee: Option<AgentId>,
    ) -> Result<Option<Conversation>, Error> {
        self.change_conversation(
            site,
            "status = 'open', assignee_id = $3, updated_at = $1",
            "status = 'closed'",
            id,
            assignee,
        )
        .await
    }

    /// Assigns an open conversation to `to` if it is assigned to `from`
    /// now (`None`: waiting in the queue). Compare-and-set, so of two
    /// agents taking the same chat exactly one wins; `None` for the other.
    /// That holds across relay nodes too: PostgreSQL checks the condition
    /// again on the row once it has it locked, after a racing update.
    /// `None` too if the conversation or `to` is not `site`'s.
    pub async fn assign_conversation(
        &self,
        site: SiteId,
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
                site,
                "assignee_id = $3, updated_at = $1",
                &format!("status = 'open' AND {assigned}"),
                id,
                Some(to),
            )
            .await?;
        if assigned.is_some() {
            sqlx::query("UPDATE agents SET last_assigned_at = $1 WHERE id = $2 AND site_id = $3")
                .bind(int(now().0))
                .bind(int(to.0))
                .bind(int(site.0))
                .execute(self.pool())
                .await?;
        }
        Ok(assigned)
    }

    /// One conditional UPDATE of one of `site`'s conversations: `set` and
    /// `when` use $1 for now and $3 for `agent`. Callers pass literals.
    /// `agent`, if any, must be an agent of `site` too (the schema's keys
    /// say so as well; checked here so that a stranger is "not changed",
    /// not a database error).
    async fn change_conversation(
        &self,
        site: SiteId,
        set: &str,
        when: &str,
        id: ConversationId,
        agent: Option<AgentId>,
    ) -> Result<Option<Conversation>, Error> {
        let sql = format!(
            "UPDATE conversations SET {set} \
             WHERE id = $2 AND site_id = $4 AND {when} \
             AND ($3 IS NULL OR EXISTS (SELECT 1 FROM agents WHERE agents.id = $3 AND agents.site_id = $4)) \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        let row: Option<ConversationRow> = sqlx::query_as(&sql)
            .bind(int(now().0))
            .bind(int(id.0))
            .bind(agent.map(|a| int(a.0)))
            .bind(int(site.0))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// Deletes, on every site, the open conversations without a message
    /// created before `cutoff` whose visitor was last seen before it too;
    /// returns how many. The relay's own upkeep, hence no site: no client
    /// request reaches it. A visitor that comes back later gets a fresh
    /// conversation, as a new one would.
    pub async fn expire_empty_conversations(&self, cutoff: Timestamp) -> Result<u64, Error> {
        let done = sqlx::query(
            "DELETE FROM conversations WHERE status = 'open' AND last_seq = 0 AND created_at < $1 \
             AND visitor_id IN (SELECT id FROM visitors WHERE last_seen_at < $1)",
        )
        .bind(int(cutoff.0))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The oldest conversation of `site` whose visitor waits for an answer
    /// with no agent assigned: the head of the queue.
    pub async fn next_in_queue(&self, site: SiteId) -> Result<Option<Conversation>, Error> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations \
             WHERE site_id = $1 AND status = 'open' AND assignee_id IS NULL AND waiting_since IS NOT NULL \
             ORDER BY waiting_since, id LIMIT 1"
        );
        let row: Option<ConversationRow> = sqlx::query_as(&sql).bind(int(site.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// The conversation with that id, if it is one of `site`'s.
    pub async fn conversation(&self, site: SiteId, id: ConversationId) -> Result<Option<Conversation>, Error> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND site_id = $2");
        let row: Option<ConversationRow> =
            sqlx::query_as(&sql).bind(int(id.0)).bind(int(site.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// The site's open conversations, oldest first.
    pub async fn open_conversations(&self, site: SiteId) -> Result<Vec<Conversation>, Error> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations \
             WHERE site_id = $1 AND status = 'open' ORDER BY id"
        );
        let rows: Vec<ConversationRow> = sqlx::query_as(&sql).bind(int(site.0)).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Conversation::try_from).collect::<Result<_, _>>()?)
    }

    /// The current receipt marks of one of `site`'s conversations, as the
    /// receipts that set them: sent after a replay so a reconnecting
    /// client sees delivered and read marks again. Marks at 0 are left
    /// out; none for a conversation that is not `site`'s.
    pub async fn receipts(&self, site: SiteId, conversation: ConversationId) -> Result<Vec<Receipt>, Error> {
        type MarksRow = (Unsigned, Unsigned, Unsigned, Unsigned, Unsigned, Option<Unsigned>);
        let row: Option<MarksRow> = sqlx::query_as(
            "SELECT visitor_id, visitor_delivered, visitor_read, agent_delivered, agent_read, agent_marks_by \
             FROM conversations WHERE id = $1 AND site_id = $2",
        )
        .bind(int(conversation.0))
        .bind(int(site.0))
        .fetch_optional(self.pool())
        .await?;
        let Some((visitor, visitor_delivered, visitor_read, agent_delivered, agent_read, agent)) = row else {
            return Ok(Vec::new());
        };
        let visitor = Author::Visitor(VisitorId(visitor.0));
        let mut marks =
            vec![(visitor, ReceiptKind::Delivered, visitor_delivered.0), (visitor, ReceiptKind::Read, visitor_read.0)];
        if let Some(agent) = agent {
            let agent = Author::Agent(kefu_protocol::ids::AgentId(agent.0));
            marks.push((agent, ReceiptKind::Delivered, agent_delivered.0));
            marks.push((agent, ReceiptKind::Read, agent_read.0));
        }
        Ok(marks
            .into_iter()
            .filter(|&(_, _, up_to)| up_to > 0)
            .map(|(by, kind, up_to)| Receipt { conversation, by, kind, up_to: Seq(up_to) })
            .collect())
    }

    /// Moves `by`'s side's `kind` mark up to `up_to`, clamped to the last
    /// message. `Some(new mark)` if it grew, `None` if it was already there
    /// (or `by` is the relay itself, which keeps no marks).
    ///
    /// The visitor has its own marks; the site's agents share one pair, as
    /// the visitor sees them as one team. [`Error::NotFound`] if the
    /// conversation is not one of `site`'s or not `by`'s (another
    /// visitor's, or an agent of another site).
    pub async fn record_receipt(
        &self,
        site: SiteId,
        conversation: ConversationId,
        by: Author,
        kind: ReceiptKind,
        up_to: Seq,
    ) -> Result<Option<Seq>, Error> {
        // Column names come from these closed matches, never from input.
        // In `scope`, $1 is the conversation, $2 the participant, $3 the site.
        let (side, scope, participant) = match by {
            Author::Visitor(visitor) => ("visitor", "site_id = $3 AND visitor_id = $2", visitor.0),
            Author::Agent(agent) => {
                ("agent", "site_id = $3 AND EXISTS (SELECT 1 FROM agents WHERE id = $2 AND site_id = $3)", agent.0)
            }
            Author::System => return Ok(None),
        };
        let mark = match kind {
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
        };
        let column = format!("{side}_{mark}");
        let by_agent = if side == "agent" { ", agent_marks_by = $2" } else { "" };
        // The smaller of the two, spelled so both dialects read it (SQLite
        // has no LEAST, PostgreSQL no two-argument MIN).
        let clamped = "CASE WHEN $4 < last_seq THEN $4 ELSE last_seq END";
        let grow = format!(
            "UPDATE conversations SET {column} = {clamped}{by_agent} \
             WHERE id = $1 AND {scope} AND {column} < {clamped} \
             RETURNING {column}"
        );
        let grown: Option<Unsigned> = sqlx::query_scalar(&grow)
            .bind(int(conversation.0))
            .bind(int(participant))
            .bind(int(site.0))
            .bind(int(up_to.0))
            .fetch_optional(self.pool())
            .await?;
        if let Some(mark) = grown {
            return Ok(Some(Seq(mark.0)));
        }
        // Not grown: tell "already there" from "not yours".
        let exists = format!("SELECT 1 FROM conversations WHERE id = $1 AND {scope}");
        let found: Option<i64> = sqlx::query_scalar(&exists)
            .bind(int(conversation.0))
            .bind(int(participant))
            .bind(int(site.0))
            .fetch_optional(self.pool())
            .await?;
        match found {
            Some(_) => Ok(None),
            None => Err(Error::NotFound),
        }
    }
}
