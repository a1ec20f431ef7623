//! Appending and reading messages, and how a message maps to a row.

use kefu_protocol::frame::{Author, Body, Files, Message};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, MessageId, Seq, SiteId, Timestamp, VisitorId};

use super::{AppendTicket, Appended, Error, NewMessage, Store, Unsigned, int, undecodable};

/// A `messages` row as the writer and the readers select it.
#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    id: Unsigned,
    conversation_id: Unsigned,
    seq: Unsigned,
    author_kind: String,
    author_id: Unsigned,
    client_id: Option<Vec<u8>>,
    body_kind: String,
    body: String,
    /// For a message with files: them, as JSON.
    files: Option<String>,
    created_at: Unsigned,
}

/// The columns of a [`MessageRow`], as a literal so queries can `concat!`
/// it into a `&'static str`.
macro_rules! message_columns {
    () => {
        "id, conversation_id, seq, author_kind, author_id, client_id, body_kind, body, files, created_at"
    };
}
pub(super) use message_columns;

impl TryFrom<MessageRow> for Message {
    type Error = sqlx::Error;

    fn try_from(row: MessageRow) -> Result<Message, sqlx::Error> {
        let author = match (row.author_kind.as_str(), row.author_id.0) {
            ("visitor", id) => Author::Visitor(VisitorId(id)),
            ("agent", id) => Author::Agent(AgentId(id)),
            ("system", _) => Author::System,
            (other, _) => return Err(undecodable("author kind", other)),
        };
        let client_id = row
            .client_id
            .map(|bytes| {
                let bytes: [u8; 16] =
                    bytes.try_into().map_err(|bytes: Vec<u8>| undecodable("client id length", bytes.len()))?;
                Ok::<_, sqlx::Error>(ClientMessageId(u128::from_be_bytes(bytes)))
            })
            .transpose()?;
        let body = match (row.body_kind.as_str(), row.files) {
            ("text", Some(files)) => Body::Files(Files {
                caption: row.body,
                files: serde_json::from_str(&files).map_err(|e| undecodable("files", e))?,
            }),
            ("text", None) => Body::Text(row.body),
            ("note", _) => Body::Note(row.body),
            ("event", _) => Body::Event(serde_json::from_str(&row.body).map_err(|e| undecodable("system line", e))?),
            (other, _) => return Err(undecodable("body kind", other)),
        };
        Ok(Message {
            conversation: ConversationId(row.conversation_id.0),
            seq: Seq(row.seq.0),
            // Everything before it: a reader that hides some messages
            // (notes, from visitors) sets its own.
            prev: Seq(row.seq.0.saturating_sub(1)),
            id: MessageId(row.id.0),
            client_id,
            author,
            body,
            sent_at: Timestamp(row.created_at.0),
        })
    }
}

/// `(author_kind, author_id)` columns; the relay itself is author 0.
pub(super) fn author_columns(author: Author) -> (&'static str, i64) {
    match author {
        Author::Visitor(visitor) => ("visitor", int(visitor.0)),
        Author::Agent(agent) => ("agent", int(agent.0)),
        Author::System => ("system", 0),
    }
}

/// The `client_id` column: 16 big-endian bytes, so ids sort as numbers.
pub(super) fn client_id_column(client_id: Option<ClientMessageId>) -> Option<Vec<u8>> {
    client_id.map(|id| id.0.to_be_bytes().to_vec())
}

/// The `body_kind`, `body` and `files` columns: text as it is, a system
/// line as JSON, files as a text (the caption) with the files as JSON.
pub(super) fn body_columns(body: &Body) -> (&'static str, std::borrow::Cow<'_, str>, Option<String>) {
    match body {
        Body::Text(text) => ("text", text.into(), None),
        Body::Note(text) => ("note", text.into(), None),
        // Serializing plain structs of strings and numbers cannot fail.
        Body::Event(event) => ("event", serde_json::to_string(event).unwrap_or_default().into(), None),
        Body::Files(files) => {
            ("text", files.caption.as_str().into(), Some(serde_json::to_string(&files.files).unwrap_or_default()))
        }
    }
}

impl Store {
    /// Stores a message and gives it the next seq of its conversation;
    /// returns only once the message is durably committed.
    ///
    /// Idempotent per `(conversation, author, client_id)`: a resend is
    /// not stored again and gets the original back with `fresh: false`.
    /// [`Error::NotFound`] if the conversation is not one of the message's
    /// `site`, or not the author's (another visitor's, another site's for
    /// an agent).
    /// Appending to a closed conversation is allowed, so a send in flight
    /// when it closed is not lost.
    pub async fn append(&self, message: NewMessage) -> Result<Appended, Error> {
        self.submit(message).await?.await
    }

    /// Queues a message for [`Store::append`] and returns as soon as it is
    /// in the writer's queue (waiting only if the queue is full); the
    /// ticket resolves to the outcome after the commit.
    ///
    /// Messages are stored in the order they were queued, so a connection
    /// can pipeline: submit each send as it arrives and acknowledge the
    /// tickets in order (a `FuturesOrdered`), and its sends get seqs in
    /// the order the client made them.
    pub async fn submit(&self, message: NewMessage) -> Result<AppendTicket, Error> {
        self.inner.writer.submit(message).await
    }

    /// Up to `limit` messages of one of `site`'s conversations with a seq
    /// above `after`, lowest seq first: the replay after a reconnect, one
    /// page at a time. None for a conversation that is not `site`'s.
    pub async fn messages_after(
        &self,
        site: SiteId,
        conversation: ConversationId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, Error> {
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND seq > $2 \
             AND EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND site_id = $4) ORDER BY seq LIMIT $3"
        );
        let rows: Vec<MessageRow> = sqlx::query_as(sql)
            .bind(int(conversation.0))
            .bind(int(after.0))
            .bind(i64::from(limit))
            .bind(int(site.0))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Message::try_from).collect::<Result<_, _>>()?)
    }

    /// The newest message of `conversation`, whichever site's it is.
    ///
    /// The one read that takes no site: a node that lost its link to the
    /// other nodes catches up the conversations its own connections
    /// follow, and each of those passed its access check when it began to
    /// follow. Nothing a client sends reaches this.
    pub async fn newest_message_for_followers(&self, conversation: ConversationId) -> Result<Option<Message>, Error> {
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 1"
        );
        let row: Option<MessageRow> = sqlx::query_as(sql).bind(int(conversation.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Message::try_from).transpose()?)
    }
}
