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
//! to (see `read_targets`) and reads their `last_seq` only then.
//!
//! A batch costs the same few statements whatever its size (see
//! `store_batch`): every statement is a round trip (to sqlx's SQLite
//! thread, or to the server), and with one statement per message those
//! round trips, not the fsync, bounded how many messages a node could
//! store a second.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kefu_protocol::frame::{Author, Body, Message};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, MessageId, Seq, SiteId, Timestamp, VisitorId};
use sqlx::AnyConnection;
use sqlx::any::AnyConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::messages::{MessageRow, author_columns, body_columns, client_id_column, message_columns};
use super::{Appended, Backend, Error, NewMessage, Unsigned, WrittenWith, conversations, int, now};

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

/// One committed batch, as the writer reports it to a [`CommitObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Requests the transaction answered, resends and refusals included.
    pub requests: usize,
    /// Messages it stored for the first time.
    pub stored: usize,
    /// From `BEGIN` until `COMMIT` returned.
    pub took: Duration,
}

/// Hears of every batch the writer commits, on the writer's task, so it
/// must not wait. This is how metrics learn of the store without the store
/// knowing them.
pub trait CommitObserver: Send + Sync + fmt::Debug {
    fn committed(&self, commit: Commit);
}

/// Where the writer reports its commits; set once, after the store opens.
type Observer = Arc<OnceLock<Arc<dyn CommitObserver>>>;

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
    observer: Observer,
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
    let observer = Observer::default();
    let writer = Writer {
        backend,
        connection: Some(connection),
        options,
        counters: Arc::clone(&counters),
        observer: Arc::clone(&observer),
        last_time: Timestamp(0),
    };
    let task = tokio::spawn(run(requests, writer));
    (Handle { queue, counters, observer }, task)
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

    /// From now on `observer` hears of every commit. Only the first call
    /// counts.
    pub(super) fn observe(&self, observer: Arc<dyn CommitObserver>) {
        let _ = self.observer.set(observer);
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
    observer: Observer,
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
            Ok(connection) => {
                let started = Instant::now();
                store_batch(backend, connection, batch, now).await.map(|outcomes| (outcomes, started.elapsed()))
            }
            Err(error) => Err(error),
        };
        match stored {
            Ok((outcomes, took)) => {
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters.messages.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if let Some(observer) = self.observer.get() {
                    let stored = outcomes.iter().flatten().filter(|appended| appended.fresh).count();
                    observer.committed(Commit { requests: batch.len(), stored, took });
                }
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    // A caller that stopped waiting still had its message
                    // stored; its resend will find it.
                    let _ = pending.reply.send(outcome);
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

/// Stores the batch in one transaction, with a fixed number of statements
/// whatever its size: statements are round trips, and on PostgreSQL a round
/// trip per message was what bounded a node's messages per second.
///
/// 1. read (on PostgreSQL: lock) the conversations the batch appends to,
///    and the sites of the agents writing;
/// 2. find which messages are resends, already stored;
/// 3. number the rest here, each taking the next seq of its conversation,
///    and insert them in one statement (the schema's trigger advances each
///    conversation's `last_seq`);
/// 4. read the conversations' new state for the agents' queue.
///
/// [`Error::NotFound`] for a message whose conversation is unknown, of
/// another site than the message's, or not its author's (a visitor may
/// write only in its own, an agent only in its site's), and
/// [`Error::Conflict`] for a "rated" line whose close was rated already:
/// that request alone fails, the rest go on.
async fn store_batch(
    backend: Backend,
    connection: &mut AnyConnection,
    batch: &[Pending],
    now: Timestamp,
) -> Result<Vec<Result<Appended, Error>>, sqlx::Error> {
    // IMMEDIATE takes SQLite's write lock up front: a deferred transaction
    // would take it at the insert and could then fail with "busy" without
    // waiting if a pool write slipped in after its first read.
    let mut tx = match backend {
        Backend::Sqlite => connection.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => connection.begin().await?,
    };
    let targets = read_targets(backend, &mut tx, batch).await?;
    let originals = read_originals(&mut tx, batch).await?;

    let mut last_seqs: HashMap<ConversationId, u64> =
        targets.conversations.iter().map(|(&id, target)| (id, target.last_seq)).collect();
    let mut plan = Vec::with_capacity(batch.len());
    for (i, pending) in batch.iter().enumerate() {
        let message = &pending.message;
        let key = idempotency_key(message.conversation, message.author, message.client_id);
        let stored_before = key.and_then(|key| {
            originals.iter().find(|original| {
                idempotency_key(original.conversation, original.author, original.client_id) == Some(key)
            })
        });
        let earlier_in_batch = key.and_then(|key| {
            batch[..i].iter().position(|earlier| {
                let earlier = &earlier.message;
                idempotency_key(earlier.conversation, earlier.author, earlier.client_id) == Some(key)
            })
        });
        // Refused first, so that not even a resend's original is told to
        // a message that names another site.
        plan.push(if !targets.allows(message) {
            Planned::Refused
        } else if let Some(original) = stored_before {
            Planned::Resend(original.clone())
        } else if let Some(first) = earlier_in_batch {
            Planned::SameAs(first)
        } else if !rating_taken(&mut tx, message).await? {
            Planned::AlreadyRated
        } else {
            let last_seq = last_seqs.entry(message.conversation).or_default();
            *last_seq += 1;
            Planned::Insert(Seq(*last_seq))
        });
    }
    // A resend queued in the batch after its refused first copy is refused
    // too: it points at a request that stored nothing.
    for i in 0..plan.len() {
        if let Planned::SameAs(first) = plan[i]
            && !matches!(plan[first], Planned::Insert(_))
        {
            plan[i] = Planned::Refused;
        }
    }

    let ids = insert_messages(&mut tx, batch, &plan, now).await?;
    attach_files(&mut tx, batch, &plan, &ids).await?;
    let mut outcomes: Vec<Option<Appended>> = Vec::with_capacity(batch.len());
    for (pending, planned) in batch.iter().zip(&plan) {
        let message = &pending.message;
        outcomes.push(match planned {
            Planned::Refused | Planned::AlreadyRated => None,
            Planned::Resend(original) => Some(Appended { message: original.clone(), fresh: false, conversation: None }),
            Planned::SameAs(first) => outcomes[*first].as_ref().map(|first| Appended {
                message: first.message.clone(),
                fresh: false,
                conversation: None,
            }),
            Planned::Insert(seq) => {
                let id = ids.get(&(message.conversation, *seq)).ok_or_else(|| {
                    sqlx::Error::Protocol(format!("the insert returned no id for {} seq {seq}", message.conversation))
                })?;
                Some(Appended {
                    // Filled in for the whole batch by `attach_conversations`.
                    conversation: None,
                    message: Message {
                        conversation: message.conversation,
                        seq: *seq,
                        prev: Seq(seq.0 - 1),
                        id: *id,
                        client_id: message.client_id,
                        author: message.author,
                        body: message.body.clone(),
                        sent_at: now,
                    },
                    fresh: true,
                })
            }
        });
    }
    attach_conversations(&mut tx, &mut outcomes).await?;
    // The mails the fresh messages queue (a visitor's follow-up of an
    // agent's reply), in this transaction: stored reply, queued mail.
    for (pending, planned) in batch.iter().zip(&plan) {
        if let (Planned::Insert(_), Some(WrittenWith::Mail(mail))) = (planned, pending.message.with.as_deref()) {
            super::Store::enqueue_mail_on(&mut tx, pending.message.site, &mail.as_new()).await.map_err(|error| {
                match error {
                    Error::Database(error) => sqlx::Error::Protocol(format!("queueing a mail: {error}")),
                    other => sqlx::Error::Protocol(format!("queueing a mail: {other}")),
                }
            })?;
        }
    }
    tx.commit().await?;
    Ok(outcomes
        .into_iter()
        .zip(&plan)
        .map(|(outcome, planned)| match planned {
            Planned::AlreadyRated => Err(Error::Conflict("a rating of this close")),
            _ => outcome.ok_or(Error::NotFound),
        })
        .collect())
}

/// Stores the rating a "rated" line carries, in the line's transaction;
/// `false` if that close was rated already, so the line is not written
/// either. A statement a rating, outside the batch's fixed count: ratings
/// are rare. `true` for a message that carries no rating.
async fn rating_taken(tx: &mut AnyConnection, message: &NewMessage) -> Result<bool, sqlx::Error> {
    match message.with.as_deref() {
        Some(WrittenWith::Rating { rating, first_only }) => {
            super::Store::rate_on(tx, message.site, rating, *first_only).await
        }
        _ => Ok(true),
    }
}

/// What the batch decided for one request.
enum Planned {
    /// Stored by an earlier batch (on any node): answered with the original.
    Resend(Message),
    /// The same message as the request at this index of the batch.
    SameAs(usize),
    /// Unknown conversation, another site's, or not the author's.
    Refused,
    /// A "rated" line for a close rated already: neither is written.
    AlreadyRated,
    /// Stored now, with this seq.
    Insert(Seq),
}

/// The conversations a batch appends to and the sites of its agents.
struct Targets {
    conversations: HashMap<ConversationId, Target>,
    agent_sites: HashMap<AgentId, SiteId>,
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    id: Unsigned,
    site_id: Unsigned,
    visitor_id: Unsigned,
    last_seq: Unsigned,
}

struct Target {
    site: SiteId,
    visitor: VisitorId,
    last_seq: u64,
}

impl Targets {
    /// Whether `message`'s conversation is of its site and its author may
    /// write there.
    fn allows(&self, message: &NewMessage) -> bool {
        let Some(target) = self.conversations.get(&message.conversation) else { return false };
        if target.site != message.site {
            return false;
        }
        match message.author {
            Author::Visitor(visitor) => target.visitor == visitor,
            Author::Agent(agent) => self.agent_sites.get(&agent) == Some(&target.site),
            Author::System => true,
        }
    }
}

/// Reads the batch's conversations and its agents' sites. On PostgreSQL
/// the conversation rows stay locked until the commit, so that no other
/// node's writer takes a seq in them meanwhile: a racing writer waits here,
/// and once it has the locks it reads the seqs and idempotency keys this
/// one committed. In id order, so two batches that share conversations
/// lock them in the same order and never deadlock.
async fn read_targets(backend: Backend, tx: &mut AnyConnection, batch: &[Pending]) -> Result<Targets, sqlx::Error> {
    let ids: BTreeSet<u64> = batch.iter().map(|pending| pending.message.conversation.0).collect();
    let lock = match backend {
        Backend::Postgres => " ORDER BY id FOR UPDATE",
        Backend::Sqlite => "",
    };
    let sql =
        format!("SELECT id, site_id, visitor_id, last_seq FROM conversations WHERE id IN ({}){lock}", id_list(&ids));
    let rows: Vec<TargetRow> = sqlx::query_as(&sql).persistent(false).fetch_all(&mut *tx).await?;
    let conversations = rows
        .into_iter()
        .map(|row| {
            let target =
                Target { site: SiteId(row.site_id.0), visitor: VisitorId(row.visitor_id.0), last_seq: row.last_seq.0 };
            (ConversationId(row.id.0), target)
        })
        .collect();

    let agents: BTreeSet<u64> = batch
        .iter()
        .filter_map(|pending| match pending.message.author {
            Author::Agent(agent) => Some(agent.0),
            _ => None,
        })
        .collect();
    let mut agent_sites = HashMap::new();
    if !agents.is_empty() {
        let sql = format!("SELECT id, site_id FROM agents WHERE id IN ({})", id_list(&agents));
        let rows: Vec<(Unsigned, Unsigned)> = sqlx::query_as(&sql).persistent(false).fetch_all(&mut *tx).await?;
        agent_sites = rows.into_iter().map(|(agent, site)| (AgentId(agent.0), SiteId(site.0))).collect();
    }
    Ok(Targets { conversations, agent_sites })
}

/// The stored messages that requests of the batch resend: each looked up
/// by its whole idempotency key, so the unique index finds it however long
/// its conversation is.
async fn read_originals(tx: &mut AnyConnection, batch: &[Pending]) -> Result<Vec<Message>, sqlx::Error> {
    let keyed: Vec<&NewMessage> =
        batch.iter().map(|pending| &pending.message).filter(|m| m.client_id.is_some()).collect();
    if keyed.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from(concat!("SELECT ", message_columns!(), " FROM messages WHERE "));
    for i in 0..keyed.len() {
        let or = if i == 0 { "" } else { " OR " };
        let n = 4 * i;
        let _ = write!(
            sql,
            "{or}(conversation_id = ${} AND author_kind = ${} AND author_id = ${} AND client_id = ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        );
    }
    let mut query = sqlx::query_as::<_, MessageRow>(&sql).persistent(false);
    for message in &keyed {
        let (author_kind, author_id) = author_columns(message.author);
        query = query
            .bind(int(message.conversation.0))
            .bind(author_kind)
            .bind(author_id)
            .bind(client_id_column(message.client_id));
    }
    let rows = query.fetch_all(&mut *tx).await?;
    rows.into_iter().map(Message::try_from).collect()
}

/// What makes two sends the same message: the unique key of `messages`.
/// `None` for the relay's own lines, which have no client id.
fn idempotency_key(
    conversation: ConversationId,
    author: Author,
    client_id: Option<ClientMessageId>,
) -> Option<(ConversationId, Author, ClientMessageId)> {
    client_id.map(|client_id| (conversation, author, client_id))
}

/// Inserts the batch's new messages in one statement; returns their ids by
/// conversation and seq.
async fn insert_messages(
    tx: &mut AnyConnection,
    batch: &[Pending],
    plan: &[Planned],
    now: Timestamp,
) -> Result<HashMap<(ConversationId, Seq), MessageId>, sqlx::Error> {
    let new: Vec<(&NewMessage, Seq)> = batch
        .iter()
        .zip(plan)
        .filter_map(|(pending, planned)| match planned {
            Planned::Insert(seq) => Some((&pending.message, *seq)),
            _ => None,
        })
        .collect();
    if new.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = String::from(
        "INSERT INTO messages \
         (conversation_id, seq, author_kind, author_id, client_id, body_kind, body, files, created_at) VALUES ",
    );
    for i in 0..new.len() {
        let comma = if i == 0 { "" } else { ", " };
        let n = 8 * i;
        // Every row shares the batch's time, bound once as $1.
        let _ = write!(
            sql,
            "{comma}(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, $1)",
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8,
            n + 9
        );
    }
    sql.push_str(" RETURNING id, conversation_id, seq");
    let bodies: Vec<_> = new.iter().map(|(message, _)| body_columns(&message.body)).collect();
    let mut query = sqlx::query_as::<_, (Unsigned, Unsigned, Unsigned)>(&sql).persistent(false).bind(int(now.0));
    for ((message, seq), (body_kind, body, files)) in new.iter().zip(&bodies) {
        let (author_kind, author_id) = author_columns(message.author);
        query = query
            .bind(int(message.conversation.0))
            .bind(int(seq.0))
            .bind(author_kind)
            .bind(author_id)
            .bind(client_id_column(message.client_id))
            .bind(*body_kind)
            .bind(&**body)
            .bind(files.as_deref());
    }
    let rows = query.fetch_all(&mut *tx).await?;
    Ok(rows
        .into_iter()
        .map(|(id, conversation, seq)| ((ConversationId(conversation.0), Seq(seq.0)), MessageId(id.0)))
        .collect())
}

/// Ties the uploads the batch's new messages name to them, in their
/// transaction: a file is attached once, to the first message naming it
/// (`Store::check_files` let only its uploader name it).
async fn attach_files(
    tx: &mut AnyConnection,
    batch: &[Pending],
    plan: &[Planned],
    ids: &HashMap<(ConversationId, Seq), MessageId>,
) -> Result<(), sqlx::Error> {
    for (pending, planned) in batch.iter().zip(plan) {
        let (Planned::Insert(seq), Body::Files(files)) = (planned, &pending.message.body) else {
            continue;
        };
        let message = &pending.message;
        let Some(id) = ids.get(&(message.conversation, *seq)) else {
            continue;
        };
        for file in &files.files {
            sqlx::query(
                "UPDATE attachments SET conversation_id = $1, message_id = $2 \
                 WHERE id = $3 AND site_id = $4 AND message_id IS NULL",
            )
            .bind(int(message.conversation.0))
            .bind(int(id.0))
            .bind(file.id.to_string())
            .bind(int(message.site.0))
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// Gives every fresh message the state its conversation is left in, read
/// in one statement for the whole batch. Two messages of one conversation
/// in a batch both carry the state after the later one; nobody sees either
/// before the commit, and receivers keep the highest `last_seq` they were
/// told.
async fn attach_conversations(tx: &mut AnyConnection, outcomes: &mut [Option<Appended>]) -> Result<(), sqlx::Error> {
    let ids: BTreeSet<u64> = outcomes
        .iter()
        .flatten()
        .filter(|appended| appended.fresh)
        .map(|appended| appended.message.conversation.0)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let states = conversations::conversations_on(tx, &id_list(&ids)).await?;
    for appended in outcomes.iter_mut().flatten().filter(|appended| appended.fresh) {
        appended.conversation = states.iter().find(|c| c.id == appended.message.conversation).cloned();
    }
    Ok(())
}

/// `1, 2, 3`: ids for an `IN (...)`. Written into the statement because
/// `Any` binds no arrays; such statements are not prepared, as their text
/// differs from batch to batch and would only churn the statement cache.
pub(super) fn id_list(ids: &BTreeSet<u64>) -> String {
    let mut list = String::new();
    for &id in ids {
        let comma = if list.is_empty() { "" } else { ", " };
        let _ = write!(list, "{comma}{}", int(id));
    }
    list
}
