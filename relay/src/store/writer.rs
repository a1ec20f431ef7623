//! Group commit: one task stores every message, many per transaction.
//!
//! With `synchronous = FULL` (or PostgreSQL's `synchronous_commit`) each
//! commit costs an fsync, and a disk does only so many of those a second. So `append` queues its message and
//! waits; the writer takes the first request, drains whatever else is
//! already queued (up to [`MAX_BATCH`]), stores them all in one transaction
//! and answers each caller after the one `COMMIT`. Under light load a batch
//! is one message and costs what a direct write would; under heavy load
//! batches grow and the fsyncs are shared.
//!
//! On SQLite this task is the only writer of messages, and the file lock
//! keeps it alone: no two transactions ever race for the next seq of a
//! conversation. Relays sharing a PostgreSQL database each have a writer,
//! so there a batch first locks the rows of the conversations it appends
//! to (see `lock_conversations`) and reads their `last_seq` only then.
//!
//! Per message the writer runs one statement (see `store_one`); every
//! statement is a round trip (to sqlx's SQLite thread, or to the server),
//! and those round trips, not the fsync, bound a batch's cost once batches
//! are large.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use kefu_protocol::frame::Message;
use kefu_protocol::ids::{MessageId, Seq, Timestamp};
use sqlx::AnyConnection;
use sqlx::any::AnyConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::messages::{MessageRow, author_columns, body_columns, client_id_column, message_columns};
use super::{Appended, Backend, Error, NewMessage, Unsigned, conversations, int, now};

/// The most messages stored in one transaction. Large enough to share an
/// fsync among hundreds of senders, small enough that the first of them
/// does not wait long for the last.
const MAX_BATCH: usize = 256;

/// Requests waiting for the writer. Bounded so that a disk that cannot
/// keep up slows senders down instead of growing memory.
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// How much the writer has stored since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Committed transactions.
    pub batches: u64,
    /// Messages those transactions answered, resends included.
    pub messages: u64,
}

impl WriterStats {
    /// Messages per committed transaction; 0 before the first.
    pub fn average_batch(&self) -> f64 {
        if self.batches == 0 { 0.0 } else { self.messages as f64 / self.batches as f64 }
    }
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
}

enum Request {
    Append(Pending),
    Close,
}

struct Pending {
    message: NewMessage,
    reply: oneshot::Sender<Result<Appended, Error>>,
}

/// The store's end of the writer's queue.
pub(super) struct Handle {
    queue: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

/// Starts the writer on its own connection. `options` opens a fresh one
/// if a failed batch leaves the old one in doubt.
pub(super) fn start(
    backend: Backend,
    connection: AnyConnection,
    options: AnyConnectOptions,
) -> (Handle, JoinHandle<()>) {
    let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
    let counters = Arc::new(Counters::default());
    let writer = Writer {
        backend,
        connection: Some(connection),
        options,
        counters: Arc::clone(&counters),
        last_time: Timestamp(0),
    };
    let task = tokio::spawn(run(requests, writer));
    (Handle { queue, counters }, task)
}

/// A message in the writer's queue; resolves to its outcome once the
/// batch it went into has committed (or failed).
///
/// Dropping the ticket does not withdraw the message: it may still be
/// stored, and a resend with the same `client_id` will find it.
#[derive(Debug)]
#[must_use = "the message is only known to be stored once the ticket resolves"]
pub struct AppendTicket {
    answer: oneshot::Receiver<Result<Appended, Error>>,
}

impl Future for AppendTicket {
    type Output = Result<Appended, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The writer dropping the reply unanswered means it stopped.
        Pin::new(&mut self.answer).poll(cx).map(|answer| answer.unwrap_or(Err(Error::Closed)))
    }
}

impl Handle {
    /// Waits for room in the queue, then queues the message.
    pub(super) async fn submit(&self, message: NewMessage) -> Result<AppendTicket, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Request::Append(Pending { message, reply })).await.map_err(|_| Error::Closed)?;
        Ok(AppendTicket { answer })
    }

    /// Asks the writer to store what is queued and stop.
    pub(super) async fn close(&self) {
        // An error means the writer has already stopped: nothing to do.
        let _ = self.queue.send(Request::Close).await;
    }

    pub(super) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            messages: self.counters.messages.load(Ordering::Relaxed),
        }
    }
}

async fn run(mut requests: mpsc::Receiver<Request>, mut writer: Writer) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.recv().await {
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Append(pending) => batch.push(pending),
                // Closing refuses new requests but keeps the queued ones,
                // which this loop still stores before `recv` ends it.
                Request::Close => requests.close(),
            }
            if batch.len() < MAX_BATCH {
                next = requests.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            writer.store(&mut batch).await;
        }
    }
    if let Some(connection) = writer.connection.take()
        && let Err(error) = connection.close().await
    {
        tracing::warn!(%error, "closing the writer's connection failed");
    }
}

struct Writer {
    backend: Backend,
    /// `None` after a failed batch, until the next batch reconnects.
    connection: Option<AnyConnection>,
    options: AnyConnectOptions,
    counters: Arc<Counters>,
    /// The time given to the previous batch. Times never go backwards
    /// within a run, even if the system clock does, so a later seq never
    /// shows an earlier time.
    last_time: Timestamp,
}

impl Writer {
    /// Stores `batch` in one transaction and answers every request in it,
    /// in queue order. Leaves `batch` empty.
    async fn store(&mut self, batch: &mut Vec<Pending>) {
        let now = now().max(self.last_time);
        self.last_time = now;
        let backend = self.backend;
        let stored = match self.connect().await {
            Ok(connection) => store_batch(backend, connection, batch, now).await,
            Err(error) => Err(error),
        };
        match stored {
            Ok(outcomes) => {
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters.messages.fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    // A caller that stopped waiting still had its message
                    // stored; its resend will find it.
                    let _ = pending.reply.send(outcome.ok_or(Error::NotFound));
                }
            }
            Err(error) => {
                tracing::error!(%error, messages = batch.len(), "storing a batch of messages failed");
                // The transaction did not commit, so nothing of the batch
                // is stored and every sender must retry. The connection
                // may be stuck in that transaction: start afresh.
                self.connection = None;
                let error = Arc::new(error);
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(Error::Database(Arc::clone(&error))));
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let mut connection = self.options.connect().await?;
                self.backend.prepare(&mut connection).await?;
                connection
            }
        };
        Ok(self.connection.insert(connection))
    }
}

/// Stores each message of the batch in one transaction. `None` for a
/// message whose conversation is unknown (or not its author's): that
/// request alone fails, the rest go on.
async fn store_batch(
    backend: Backend,
    connection: &mut AnyConnection,
    batch: &[Pending],
    now: Timestamp,
) -> Result<Vec<Option<Appended>>, sqlx::Error> {
    let mut tx = match backend {
        // IMMEDIATE takes the write lock up front: a deferred transaction
        // would take it at the first UPDATE and could then fail with "busy"
        // without waiting if a pool write slipped in after its first read.
        Backend::Sqlite => connection.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => {
            let mut tx = connection.begin().await?;
            lock_conversations(&mut tx, batch).await?;
            tx
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for pending in batch {
        outcomes.push(store_one(&mut tx, &pending.message, now).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Locks, until the commit, the conversation rows the batch appends to, so
/// that no other relay node's writer takes a seq in them meanwhile. A
/// racing writer waits here; once it has the locks, each of its statements
/// sees the seqs (and idempotency keys) this one committed.
///
/// In id order, so two batches that share conversations lock them in the
/// same order and never deadlock. The ids are numbers, written into the
/// statement (`Any` binds no arrays).
async fn lock_conversations(tx: &mut AnyConnection, batch: &[Pending]) -> Result<(), sqlx::Error> {
    let ids: BTreeSet<i64> = batch.iter().map(|pending| int(pending.message.conversation.0)).collect();
    let mut sql = String::from("SELECT id FROM conversations WHERE id IN (");
    for (i, id) in ids.iter().enumerate() {
        let comma = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{comma}{id}");
    }
    sql.push_str(") ORDER BY id FOR UPDATE");
    // Not prepared: the text differs from batch to batch and would only
    // churn the connection's statement cache.
    sqlx::query(&sql).persistent(false).execute(tx).await?;
    Ok(())
}

async fn store_one(
    tx: &mut AnyConnection,
    message: &NewMessage,
    now: Timestamp,
) -> Result<Option<Appended>, sqlx::Error> {
    let (author_kind, author_id) = author_columns(message.author);
    let client_id = client_id_column(message.client_id);
    let (body_kind, body) = body_columns(&message.body);

    // One statement for the common case: the message takes the next seq
    // if the conversation exists and the author may write in it (a
    // visitor only in its own, an agent only in its site's), and the
    // schema's trigger advances the conversation's `last_seq`. A resend,
    // including one queued earlier in this same batch or stored by another
    // node (committed before this batch got its locks), conflicts on the
    // idempotency key and inserts nothing.
    let inserted: Option<(Unsigned, Unsigned)> = sqlx::query_as(
        "INSERT INTO messages \
         (conversation_id, seq, author_kind, author_id, client_id, body_kind, body, created_at) \
         SELECT id, last_seq + 1, $3, $4, $5, $7, $6, $1 FROM conversations \
         WHERE id = $2 AND CASE $3 \
             WHEN 'visitor' THEN visitor_id = $4 \
             WHEN 'agent' THEN site_id = (SELECT site_id FROM agents WHERE id = $4) \
             ELSE TRUE END \
         ON CONFLICT (conversation_id, author_kind, author_id, client_id) DO NOTHING \
         RETURNING id, seq",
    )
    .bind(int(now.0))
    .bind(int(message.conversation.0))
    .bind(author_kind)
    .bind(author_id)
    .bind(client_id.as_deref())
    .bind(&*body)
    .bind(body_kind)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((Unsigned(id), Unsigned(seq))) = inserted {
        let conversation = conversations::conversation_on(tx, message.conversation).await?;
        return Ok(Some(Appended {
            conversation,
            message: Message {
                conversation: message.conversation,
                seq: Seq(seq),
                prev: Seq(seq - 1),
                id: MessageId(id),
                client_id: message.client_id,
                author: message.author,
                body: message.body.clone(),
                sent_at: now,
            },
            fresh: true,
        }));
    }

    // Nothing inserted: a resend (answered with the stored original), or
    // a conversation that is unknown or not the author's.
    let Some(client_id) = client_id else { return Ok(None) };
    let original: Option<MessageRow> = sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages \
         WHERE conversation_id = $1 AND author_kind = $2 AND author_id = $3 AND client_id = $4"
    ))
    .bind(int(message.conversation.0))
    .bind(author_kind)
    .bind(author_id)
    .bind(client_id)
    .fetch_optional(&mut *tx)
    .await?;
    original.map(|row| Ok(Appended { message: Message::try_from(row)?, fresh: false, conversation: None })).transpose()
}
