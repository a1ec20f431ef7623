//! The relay's durable state: one SQLite file, `kefu.db`, in the data folder.
//!
//! # Layout
//!
//! - this file: [`Store`] (open, close, health), the row types the rest of
//!   the relay sees, and [`Error`].
//! - `sites`: sites and their settings, agents and agent sessions.
//! - `team`: the agents as assignment sees them (status, capacity, load).
//! - `canned`: canned replies.
//! - `conversations`: visitors, conversations (queue, assignment, close and
//!   reopen) and receipt marks.
//! - `console`: what the console reads over HTTP: history pages, the
//!   visitor panel.
//! - `visitors`: visitor profiles, visits, identity secrets.
//! - `messages`: appending and reading messages.
//! - `writer`: the one task that stores messages, many per transaction.
//!
//! # Durability
//!
//! The file runs in WAL mode with `synchronous = FULL`: a transaction is on
//! disk, fsync included, when `COMMIT` returns, so anything the relay
//! acknowledged survives `kill -9` and power loss. An fsync per message
//! would cap throughput at the disk's fsync rate, so messages go through a
//! single writer task that stores whatever is queued in one transaction
//! (group commit) and answers each caller only after that commit.
//!
//! Everything else (logins, visitors, receipts) writes directly through the
//! pool: those writes are rare next to messages, and SQLite serialises
//! writers anyway; the busy timeout makes them wait their turn.

mod canned;
mod console;
mod conversations;
mod messages;
mod sites;
mod team;
mod visitors;
mod writer;

pub use team::Member;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kefu_protocol::frame::{Author, Body, ConversationStatus, ConversationUpdate, Message};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, Seq, SiteId, SiteKey, Timestamp, VisitorId};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub use canned::{CannedReply, CannedReplyId};
pub use console::{ConversationPage, ConversationSummary, PastConversation, VisitorClient};
pub use sites::{AgentUpdate, DEFAULT_CAPACITY, NewAgent, SiteSettings, SiteUpdate, WidgetPosition};
pub use visitors::Identity;
pub use writer::{AppendTicket, WriterStats};

/// The database file inside the data folder.
const FILE_NAME: &str = "kefu.db";

/// How long a write waits for another writer before giving up. Long enough
/// to ride out a large batch or a WAL checkpoint on a slow disk.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections for reads and the occasional non-message write; WAL lets
/// readers run alongside the writer.
const POOL_SIZE: u32 = 8;

/// The relay's store. Cloning is shallow (one `Arc`), so every connection
/// task holds its own copy.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    pool: SqlitePool,
    writer: writer::Handle,
    /// Taken by the first `close`; a tokio mutex because `close` holds it
    /// while it waits for the writer to finish, so a second `close` returns
    /// only once the store really is closed.
    writer_task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data folder could not be created.
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed, or a row held a value the relay does not understand.
    /// Shared because a failed batch gives the same cause to every request
    /// in it.
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The row asked for does not exist, or not for the one asking.
    #[error("not found")]
    NotFound,
    /// A row with the same unique value exists; names what.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The store was closed; nothing more is written.
    #[error("the store is closed")]
    Closed,
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Database(Arc::new(error))
    }
}

/// A site: one website or app with its own visitors and agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Its id.
    pub id: SiteId,
    /// The public key in its script tag.
    pub key: SiteKey,
    /// Its name, for the console.
    pub name: String,
}

/// What an agent may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages the site and its agents, and chats.
    Admin,
    /// Chats.
    Agent,
}

/// An agent of one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// The site it works for.
    pub site: SiteId,
    /// Its login name.
    pub email: String,
    /// The name visitors see.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The most open conversations auto-assignment gives it.
    pub capacity: u32,
    /// `false` once an admin deactivated it: it cannot log in, its
    /// sessions stop working, and it is never assigned.
    pub active: bool,
}

/// A conversation between one visitor and the agents of its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// The site it belongs to.
    pub site: SiteId,
    /// The visitor it is with.
    pub visitor: VisitorId,
    /// Open or closed.
    pub status: ConversationStatus,
    /// The seq of its newest message; `Seq::ZERO` when it has none.
    pub last_seq: Seq,
    /// When it last got a message or changed status.
    pub updated_at: Timestamp,
    /// The agent handling it; `None` while it waits in the queue.
    pub assignee: Option<AgentId>,
    /// When the oldest unanswered visitor message was sent.
    pub waiting_since: Option<Timestamp>,
}

impl Conversation {
    /// The frame that tells agents about this conversation's state.
    pub fn update(&self) -> ConversationUpdate {
        ConversationUpdate {
            conversation: self.id,
            visitor: self.visitor,
            status: self.status,
            last_seq: self.last_seq,
            updated_at: self.updated_at,
            assignee: self.assignee,
            waiting_since: self.waiting_since,
        }
    }
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Where it goes.
    pub conversation: ConversationId,
    /// The sender's idempotency key; `None` stores it unconditionally (the
    /// relay's own lines).
    pub client_id: Option<ClientMessageId>,
    /// Who wrote it.
    pub author: Author,
    /// What it says.
    pub body: Body,
}

/// The outcome of [`Store::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message. For a resend this is the original: same id,
    /// seq and time as the first time it was stored.
    pub message: Message,
    /// `false` when the message had been stored before (a resend), so it
    /// must be acknowledged again but not fanned out again.
    pub fresh: bool,
    /// The conversation right after a fresh message (last seq, who waits),
    /// read in the same transaction; `None` for a resend.
    pub conversation: Option<Conversation>,
}

impl Store {
    /// Opens (or creates) `kefu.db` in `data_dir`, creating the folder if
    /// needed, brings the schema up to date and starts the message writer.
    pub async fn open(data_dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir { path: data_dir.to_owned(), source })?;
        let path = data_dir.join(FILE_NAME);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new().max_connections(POOL_SIZE).connect_with(options.clone()).await?;
        sqlx::migrate!().run(&pool).await?;
        // The writer gets a connection of its own so a busy pool never
        // holds up a commit.
        let writer_connection = options.connect().await?;
        let (writer, writer_task) = writer::start(writer_connection, options);
        Ok(Store { inner: Arc::new(Inner { path, pool, writer, writer_task: Mutex::new(Some(writer_task)) }) })
    }

    /// Stores every message queued so far, stops the writer and closes the
    /// database. Appends after this fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.inner.writer.close().await;
        let mut task = self.inner.writer_task.lock().await;
        if let Some(task) = task.take()
            && let Err(error) = task.await
        {
            tracing::error!(%error, "the store's writer task failed");
        }
        self.inner.pool.close().await;
    }

    /// Whether the database answers and the writer is running.
    pub async fn health(&self) -> Result<(), Error> {
        if self.inner.writer.is_closed() {
            return Err(Error::Closed);
        }
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        Ok(())
    }

    /// How much the writer has stored so far, for metrics and benchmarks.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }
}

/// The relay's clock: milliseconds since the Unix epoch. Message times,
/// expiry checks and the welcome's server time all read it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

/// A wire number as an SQLite integer. SQLite integers are signed, and no
/// stored id, seq or time reaches `i64::MAX`, so a larger value (only ever
/// sent by a confused or hostile client) saturates: as an id it matches no
/// row, as a seq it means "after everything".
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A row value the relay cannot map back to its types: the file was written
/// by something else, or by a newer relay.
fn undecodable(what: &str, value: impl fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} in the store: {value}").into())
}

/// Maps a unique-constraint violation to [`Error::Conflict`] and a missing
/// parent row (foreign key) to [`Error::NotFound`].
fn constraint(error: sqlx::Error, what: &'static str) -> Error {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => Error::Conflict(what),
        Some(db) if db.is_foreign_key_violation() => Error::NotFound,
        _ => error.into(),
    }
}
