//! The relay's durable state, on one of two backends: an embedded SQLite
//! file, `kefu.db` in the data folder (the default), or a PostgreSQL
//! database that several relay nodes share (`--database-url postgres://…`).
//!
//! # Layout
//!
//! - this file: [`Store`] (open, close, health), the row types the rest of
//!   the relay sees, [`Error`], and `Backend`: where the two dialects
//!   differ.
//! - `sites`: sites and their settings, agents and agent sessions.
//! - `team`: the agents as assignment sees them (status, capacity, load).
//! - `canned`: canned replies.
//! - `hours`: business hours per site.
//! - `forms`: the widget's pre-chat form and survey switches per site,
//!   and visitors' ratings.
//! - `conversations`: visitors, conversations (queue, assignment, close and
//!   reopen) and receipt marks.
//! - `ids`: visitor and conversation ids handed out before their rows
//!   exist.
//! - `console`: what the console reads over HTTP: history pages, the
//!   visitor panel.
//! - `visitors`: visitor profiles, visits, identity secrets.
//! - `messages`: appending and reading messages.
//! - `follow_up`: email follow-up: batch delays, unsubscribed visitors,
//!   how far a conversation was mailed, a visitor's address.
//! - `mail`: the outbox of mail (queued with their cause, claimed by one
//!   node at a time) and the sites' mail settings.
//! - `writer`: the one task that stores messages, many per transaction.
//! - `backup`: snapshots of the SQLite file, and restoring one.
//! - `export`: one site's rows to a file and into another store, for
//!   moving a site to another server.
//!
//! Every query is written once, in SQL both backends understand (`$1`
//! parameters, `ON CONFLICT`, `RETURNING`), and runs through sqlx's `Any`
//! driver. The schemas (`relay/migrations/sqlite`, `relay/migrations/postgres`)
//! match version for version; the few statements that cannot be shared ask
//! `Backend` (locking, mostly). `Any` decodes only signed integers and a
//! real boolean, so rows read numbers as `Unsigned` and flags as `Flag`.
//!
//! # Durability
//!
//! SQLite: the file runs in WAL mode with `synchronous = FULL`: a
//! transaction is on disk, fsync included, when `COMMIT` returns, so
//! anything the relay acknowledged survives `kill -9` and power loss.
//! PostgreSQL: the same holds as long as the server keeps its default
//! `synchronous_commit = on`; durability is the server's to configure.
//!
//! A commit costs a flush either way, so messages go through a single
//! writer task per relay that stores whatever is queued in one transaction
//! (group commit) and answers each caller only after that commit.
//!
//! # Many writers
//!
//! Each relay has one writer, but nodes sharing a PostgreSQL database have
//! one each, so two transactions may append to one conversation at once.
//! A message takes `last_seq + 1` of its conversation in the statement that
//! stores it; on PostgreSQL the writer first locks the batch's
//! conversation rows (`FOR UPDATE`, in id order so two batches never
//! deadlock), so that number is read only once no other node can take it.
//! A resend conflicts on the idempotency key, whichever node stored the
//! original, and is answered with it. SQLite needs no such lock: its
//! writers take the whole file (`BEGIN IMMEDIATE`).
//!
//! Everything else (logins, visitors, receipts) writes directly through the
//! pool: those writes are rare next to messages. Conditional updates
//! (assignment, close, receipt marks) are single statements that re-check
//! their condition on the row they lock, which makes them compare-and-set
//! on both backends.

mod attachments;
mod backup;
mod canned;
mod console;
mod conversations;
mod export;
mod follow_up;
mod forms;
mod hours;
mod ids;
mod mail;
mod messages;
mod owners;
mod sites;
mod team;
mod visitors;
mod writer;

pub use team::Member;

#[cfg(test)]
mod mail_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kefu_protocol::frame::{Author, Body, ConversationStatus, ConversationUpdate, Message};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, Seq, SiteId, SiteKey, Timestamp, VisitorId};
use sqlx::any::{Any, AnyConnectOptions, AnyPoolOptions, AnyTypeInfo, AnyTypeInfoKind};
use sqlx::error::BoxDynError;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{ConnectOptions, Decode, Executor, Transaction, Type};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub use attachments::{Attachment, NewAttachment, Unusable};
pub use backup::{BackupError, Contents, restore};
pub use canned::{CannedReply, CannedReplyId};
pub use console::{ConversationPage, ConversationSummary, PastConversation, VisitorClient};
pub use conversations::NewVisitor;
pub use export::{EXPORT_VERSION, ExportError, Moved, MovedVisitor};
pub use follow_up::{DEFAULT_BATCH_DELAY, MAX_BATCH_DELAY};
pub use forms::{FieldKind, FormField, FormWhen, LastClose, PrechatForm, Rating, SiteForms, Survey};
pub use hours::SiteHours;
pub use mail::{MailId, MailOutcome, MailStatus, NewMail, OnDuplicate, OutboxMail, SiteMailSettings};
pub use owners::SiteOverview;
pub use sites::{AgentUpdate, DEFAULT_CAPACITY, LoginCandidate, NewAgent, SiteSettings, SiteUpdate, WidgetPosition};
pub use visitors::Identity;
pub use writer::{AppendTicket, Commit, CommitObserver, WriterStats};

/// The database file inside the data folder.
const FILE_NAME: &str = "kefu.db";

/// How long a SQLite write waits for another writer before giving up.
/// Long enough to ride out a large batch or a WAL checkpoint on a slow disk.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections for reads and the occasional non-message write; WAL lets
/// readers run alongside the writer. Per node on PostgreSQL, so a few nodes
/// stay well inside the server's default of 100 connections.
const POOL_SIZE: u32 = 8;

/// Which database the store runs on. Queries are shared; this is asked
/// only where the dialects differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// The embedded file: one writer at a time, by file lock.
    Sqlite,
    /// A server that several relay nodes may share.
    Postgres,
}

impl Backend {
    /// How every connection starts: SQLite's per-connection settings
    /// (WAL itself is a property of the file, set once at open). PostgreSQL
    /// takes the server's settings, `synchronous_commit` included.
    async fn prepare(self, connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
        if self == Backend::Sqlite {
            let timeout = BUSY_TIMEOUT.as_millis();
            for pragma in [
                format!("PRAGMA busy_timeout = {timeout}"),
                "PRAGMA synchronous = FULL".into(),
                "PRAGMA foreign_keys = ON".into(),
            ] {
                connection.execute(pragma.as_str()).await?;
            }
        }
        Ok(())
    }

    /// Begins a transaction that writes after reading and must not let
    /// another writer in between: SQLite takes the file's write lock up
    /// front (a deferred transaction could fail with "busy" at its first
    /// write); on PostgreSQL the caller locks the rows or table it needs.
    async fn begin_write(self, pool: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self {
            Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => pool.begin().await,
        }
    }

    /// Begins a transaction that only reads, and sees one moment of the
    /// database throughout while writers go on: SQLite's WAL gives a
    /// deferred transaction its snapshot at its first read; PostgreSQL
    /// needs REPEATABLE READ for one snapshot across statements.
    async fn begin_snapshot(self, pool: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self {
            Backend::Sqlite => pool.begin_with("BEGIN DEFERRED").await,
            Backend::Postgres => pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await,
        }
    }

    /// The newest migration of this backend's schema.
    fn newest_migration(self) -> i64 {
        let migrator = match self {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.iter().map(|migration| migration.version).max().unwrap_or(0)
    }

    /// Appended to a SELECT inside a transaction whose later write depends
    /// on what it read: PostgreSQL locks the rows until the commit (SQLite
    /// has one writer at a time and no such clause).
    fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// The relay's store. Cloning is shallow (one `Arc`), so every connection
/// task holds its own copy.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// SQLite: the shared lock on the data folder that keeps a restore
    /// out while the store is open (`backup`).
    _data_dir_lock: Option<std::fs::File>,
    /// The file, or the PostgreSQL server and database (no password).
    location: String,
    backend: Backend,
    pool: AnyPool,
    writer: writer::Handle,
    /// Taken by the first `close`; a tokio mutex because `close` holds it
    /// while it waits for the writer to finish, so a second `close` returns
    /// only once the store really is closed.
    writer_task: Mutex<Option<JoinHandle<()>>>,
    ids: ids::IdBlocks,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("location", &self.inner.location).finish_non_exhaustive()
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
    /// `--database-url` named neither PostgreSQL nor nothing.
    #[error("unsupported database URL (expected postgres://...): {0}")]
    UnsupportedUrl(String),
    /// The database failed, or a row held a value the relay does not understand.
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
    /// The database lacks migrations this relay needs: they failed, or it
    /// was put back from an older copy under a running relay.
    #[error("the schema is at migration {applied}, this relay needs {needed}")]
    Schema {
        /// The newest migration applied to the database.
        applied: i64,
        /// The newest migration this relay knows.
        needed: i64,
    },
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
    /// The site it is written in: the writer refuses it unless its
    /// conversation is this site's.
    pub site: SiteId,
    /// Where it goes.
    pub conversation: ConversationId,
    /// The sender's idempotency key; `None` stores it unconditionally (the
    /// relay's own lines).
    pub client_id: Option<ClientMessageId>,
    /// Who wrote it.
    pub author: Author,
    /// What it says.
    pub body: Body,
    /// What its storing writes with it, in the same transaction, if it is
    /// stored now (not a resend). Boxed: most messages carry none, and
    /// every one travels the writer's queue.
    pub with: Option<Box<WrittenWith>>,
}

/// A row a message is written with, in its transaction: either both are
/// stored or neither, whatever crashes in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrittenWith {
    /// A mail to queue: the visitor's follow-up of an agent's reply.
    Mail(QueuedMail),
    /// The rating the message (a "rated" system line) reports. If that
    /// close was rated already (or, with `first_only`, any close of the
    /// conversation), neither is written and the append fails with
    /// [`Error::Conflict`]: two tabs or two nodes rating at once get one
    /// rating and one line.
    Rating {
        /// The rating.
        rating: Rating,
        /// Refused if any close of the conversation was rated.
        first_only: bool,
    },
}

/// A mail ready for the outbox, owning what [`NewMail`] borrows: queued
/// with a message ([`WrittenWith::Mail`]), which travels to the writer's
/// task, or with a visitor's first save. `crate::mail` makes it; the
/// store only keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub kind: &'static str,
    pub job: String,
    pub dedupe_key: String,
    pub not_before: Timestamp,
    pub on_duplicate: OnDuplicate,
}

impl QueuedMail {
    /// As the outbox takes it.
    pub fn as_new(&self) -> NewMail<'_> {
        NewMail {
            kind: self.kind,
            job: &self.job,
            dedupe_key: &self.dedupe_key,
            not_before: self.not_before,
            on_duplicate: self.on_duplicate,
        }
    }
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
    /// Opens the store the configuration names: the PostgreSQL database at
    /// `database_url` if given (`postgres://` or `postgresql://`), else the
    /// SQLite file in `data_dir`.
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Store, Error> {
        match database_url {
            None => Store::open(data_dir).await,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::open_postgres(url).await
            }
            Some(url) => Err(Error::UnsupportedUrl(redact(url))),
        }
    }

    /// Opens (or creates) `kefu.db` in `data_dir`, creating the folder if
    /// needed, brings the schema up to date and starts the message writer.
    pub async fn open(data_dir: &Path) -> Result<Store, Error> {
        sqlx::any::install_default_drivers();
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir { path: data_dir.to_owned(), source })?;
        let path = std::path::absolute(data_dir.join(FILE_NAME))
            .map_err(|source| Error::DataDir { path: data_dir.to_owned(), source })?;
        let lock = backup::share_data_dir(data_dir)?;
        let options = AnyConnectOptions::from_str(&sqlite_url(&path))?;
        // The writer's connection comes first: it switches a new file to
        // WAL, which needs the file to itself.
        let mut writer_connection = options.connect().await?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL").fetch_one(&mut writer_connection).await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(sqlx::Error::Configuration(format!("{} cannot use WAL: {mode}", path.display()).into()).into());
        }
        Store::start(Backend::Sqlite, path.display().to_string(), options, writer_connection, Some(lock)).await
    }

    /// Connects to the PostgreSQL database at `url` (which must exist),
    /// brings its schema up to date and starts this node's message writer.
    /// Any number of relays may do this on one database at once.
    pub async fn open_postgres(url: &str) -> Result<Store, Error> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        let writer_connection = options.connect().await?;
        Store::start(Backend::Postgres, redact(url), options, writer_connection, None).await
    }

    async fn start(
        backend: Backend,
        location: String,
        options: AnyConnectOptions,
        mut writer_connection: AnyConnection,
        data_dir_lock: Option<std::fs::File>,
    ) -> Result<Store, Error> {
        backend.prepare(&mut writer_connection).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(POOL_SIZE)
            .after_connect(move |connection, _| Box::pin(backend.prepare(connection)))
            .connect_with(options.clone())
            .await?;
        // On PostgreSQL sqlx migrates under an advisory lock, so nodes
        // starting together on one database migrate it once. Migrations
        // the database has and this binary does not are a newer release's,
        // applied by a node upgraded first in a rolling upgrade: this node
        // still starts (every migration keeps the previous release working:
        // new tables, new columns with defaults, nothing dropped or renamed
        // in the release that stops using it).
        match backend {
            Backend::Sqlite => migrate_sqlite(&options).await?,
            Backend::Postgres => {
                let mut migrator = sqlx::migrate!("./migrations/postgres");
                migrator.set_ignore_missing(true);
                migrator.run(&pool).await?;
            }
        }
        // The writer gets a connection of its own so a busy pool never
        // holds up a commit.
        let (writer, writer_task) = writer::start(backend, writer_connection, options);
        let inner = Inner {
            _data_dir_lock: data_dir_lock,
            location,
            backend,
            pool,
            writer,
            writer_task: Mutex::new(Some(writer_task)),
            ids: Default::default(),
        };
        Ok(Store { inner: Arc::new(inner) })
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

    /// Whether the store can serve traffic: it answers, and its schema has
    /// every migration this relay knows.
    pub async fn ready(&self) -> Result<(), Error> {
        self.health().await?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.inner.pool)
            .await?;
        let (applied, needed) = (applied.unwrap_or(0), self.backend().newest_migration());
        if applied < needed {
            return Err(Error::Schema { applied, needed });
        }
        Ok(())
    }

    /// From now on `observer` hears of every batch of messages committed
    /// (for metrics). Only the first call counts.
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        self.inner.writer.observe(observer);
    }

    /// How much the writer has stored so far, for metrics and benchmarks.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    fn backend(&self) -> Backend {
        self.inner.backend
    }
}

/// Brings a SQLite file's schema up to date on one connection, with foreign
/// keys off while it does. A migration that changes a table's constraints
/// must rebuild the table (SQLite cannot alter them), and the documented
/// way to do that needs the keys off: with them on, dropping the old table
/// first deletes its rows, cascading into other tables. The pragma has no
/// effect inside a transaction, and sqlx runs each migration in one, so it
/// is set here around them; each rebuilding migration checks the keys
/// itself before it commits.
async fn migrate_sqlite(options: &AnyConnectOptions) -> Result<(), Error> {
    // A pool of one rather than `run(&mut connection)`: sqlx's migrator on
    // a borrowed connection makes a future that is not `Send` for every
    // lifetime, so a relay spawned on a runtime (tests, the fuzz harness)
    // would not compile.
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(|connection, _| {
            Box::pin(async move {
                let timeout = BUSY_TIMEOUT.as_millis();
                connection.execute(format!("PRAGMA busy_timeout = {timeout}").as_str()).await?;
                connection.execute("PRAGMA foreign_keys = OFF").await.map(drop)
            })
        })
        .connect_with(options.clone())
        .await?;
    let migrated = sqlx::migrate!("./migrations/sqlite").run(&pool).await;
    pool.close().await;
    Ok(migrated?)
}

/// The relay's clock: milliseconds since the Unix epoch. Message times,
/// expiry checks and the welcome's server time all read it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

/// A `sqlite://` URL for `path` (absolute), every byte but the plainest
/// percent-encoded: sqlx decodes the path again, so `%`, `?` or `#` in a
/// folder name survive the trip.
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// A database URL fit for logs: without its user and password.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, rest))) => format!("{scheme}://{rest}"),
        _ => url.to_owned(),
    }
}

/// A number read from a row. Both backends store numbers as signed 64-bit
/// integers and `Any` decodes no unsigned type; a negative id, seq or
/// count was not written by the relay and fails to decode. Transparent to
/// serde, for the rows of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Unsigned(u64);

impl Unsigned {
    /// As a `u32`, for capacities and counts.
    fn small(self) -> Result<u32, sqlx::Error> {
        u32::try_from(self.0).map_err(|_| undecodable("number", self.0))
    }
}

impl Type<Any> for Unsigned {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Unsigned {
    fn decode(value: <Any as sqlx::Database>::ValueRef<'r>) -> Result<Unsigned, BoxDynError> {
        Ok(Unsigned(u64::try_from(<i64 as Decode<Any>>::decode(value)?)?))
    }
}

/// A yes/no column: `BOOLEAN` on PostgreSQL, an integer 0 or 1 on SQLite.
/// Either binds as a Rust `bool`; reading takes this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Flag(bool);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <bool as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        ty.kind() == AnyTypeInfoKind::Bool || ty.kind().is_integer()
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: <Any as sqlx::Database>::ValueRef<'r>) -> Result<Flag, BoxDynError> {
        match <i64 as Decode<Any>>::decode(value.clone()) {
            Ok(number) => Ok(Flag(number != 0)),
            Err(_) => Ok(Flag(<bool as Decode<Any>>::decode(value)?)),
        }
    }
}

/// A wire number as a database integer. Stored integers are signed, and no
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
