//! Moving one site to another server: `kefu-relay export` writes a site's
//! rows to a file while the relay runs, `kefu-relay import` writes them
//! into another store (which may be running too).
//!
//! # The format, version 2
//!
//! A gzip-compressed file of JSON Lines: UTF-8, one JSON object per line.
//!
//! 1. The header:
//!    `{"kefu_export":2,"site":"KEY","exported_at":MS,"relay_version":"0.1.0","schema_version":14}`.
//!    `kefu_export` is the format's version ([`EXPORT_VERSION`]); a reader
//!    refuses one it does not know. Any change to what a file holds is a
//!    new version, so a reader also refuses a field it does not know
//!    rather than drop it. Version 2 added `site_hours`, `site_forms`,
//!    `conversation_ratings` and the three `follow_up_` tables; a version 1
//!    file (without them) still reads.
//! 2. One line per row, `{"table":"NAME","row":{...}}`, a row's fields
//!    being its table's columns, parents before children, in this order:
//!    `sites` (exactly one: key, name, widget settings), `site_secrets`
//!    (the identity secret, and the previous one in its grace period),
//!    `visitor_token_keys`, `agents` (with their password hashes, so they
//!    log in as before), `canned_replies`, `site_hours` (none if the site
//!    never set business hours; the calendar as JSON), `site_forms` (the
//!    pre-chat form as JSON, the survey switches), `visitors`, `moved_visitors`
//!    (visitors this site brought from a server before), `visitor_profiles`,
//!    `visits`, `conversations` (with receipt marks, assignee, queue time),
//!    `messages` (every one, by conversation, then seq),
//!    `conversation_ratings` (satisfaction ratings, by close),
//!    `follow_up_settings`, `follow_up_unsubscribed` (visitors who asked
//!    for no more follow-up mails), `follow_up_mailed` (how far each
//!    conversation was mailed). Numbers are JSON
//!    numbers, flags booleans, times milliseconds since 1970 (seconds for
//!    `previous_until`), a message's `client_id` 32 hex digits or null.
//! 3. The trailer, `{"end":{"rows":N}}`, N the number of row lines: a file
//!    without it was cut short.
//!
//! Ids in the file are the source's. Left behind: agents' sessions (they
//! log in again), the deployment's owners, every other site, and the
//! site's mail: its outbox (mails already sent, or due to the old
//! server's SMTP) and its mail settings (`site_mail`), which an admin sets
//! again on the new server.
//!
//! # Reading and writing
//!
//! The export reads in one snapshot transaction, so the file is one moment
//! of the site while messages go on arriving. The import writes in one
//! transaction: a refused or broken file leaves the target as it was.
//! The target gives every row its own id (sites, agents, visitors,
//! conversations, messages; visitor and conversation ids from the id
//! blocks, see `ids`); seqs and idempotency keys are kept.
//!
//! A visitor's browser still holds its old ids and a token that is a MAC
//! of them (`auth::visitor_token`), so the import keeps each visitor's
//! old ids and the old site's token key in `moved_visitors`, and the
//! handshake checks a token it does not know against those
//! ([`Store::moved_visitor`]): the visitor comes back once with the old
//! ids and is given its new ones. The moved site signs new tokens with a
//! new key: under the old key an old token would verify for whichever
//! visitor now has its old id.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures_util::TryStreamExt;
use kefu_protocol::frame::{AgentRef, ConversationEvent};
use kefu_protocol::ids::{SiteId, SiteKey, VisitorId};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow};

use super::{Error, Flag, Site, Store, Unsigned, constraint, int, now};
use crate::hours::Calendar;

/// The version of the format this relay writes and reads.
pub const EXPORT_VERSION: u64 = 2;

/// What an export or import moved, for the operator to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The site as the store that was written or read has it.
    pub site: Site,
    pub agents: u64,
    pub visitors: u64,
    pub conversations: u64,
    pub messages: u64,
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "site `{}` ({}): {} agents, {} visitors, {} conversations, {} messages",
            self.site.key.as_str(),
            self.site.name,
            self.agents,
            self.visitors,
            self.conversations,
            self.messages
        )
    }
}

/// A visitor that came with its site from another server, as it is known
/// there: see [`Store::moved_visitor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedVisitor {
    /// Its id here.
    pub visitor: VisitorId,
    /// The site's id on the old server.
    pub old_site: SiteId,
    /// The old server's visitor token key; `None` if it never made one.
    pub old_token_key: Option<String>,
}

/// Why an export or import was refused. Each says what to do; an import
/// refused wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no site with key {0:?} (kefu-relay site list shows them)")]
    NoSuchSite(String),
    #[error("{0} exists already: an export never overwrites a file")]
    Exists(PathBuf),
    #[error("{path} is not a Kefu export: {why}")]
    NotAnExport { path: PathBuf, why: String },
    #[error(
        "{path} is export format version {found}; this kefu-relay reads versions 1 to {EXPORT_VERSION}: import it with the version that wrote it or newer"
    )]
    Version { path: PathBuf, found: u64 },
    #[error("{path} is damaged at line {line}: {why}")]
    Corrupt { path: PathBuf, line: u64, why: String },
    #[error("{path} is cut short after {line} whole lines: its end line is missing")]
    Truncated { path: PathBuf, line: u64 },
    #[error("site key {0:?} is taken here: give the site another with --site-key NEWKEY")]
    KeyTaken(String),
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for ExportError {
    fn from(error: sqlx::Error) -> ExportError {
        ExportError::Store(error.into())
    }
}

/// The first line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    kefu_export: u64,
    site: String,
    exported_at: u64,
    relay_version: String,
    schema_version: i64,
}

/// The last line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    end: Count,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    rows: u64,
}

/// A row line: the table and its columns.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "table", content = "row", deny_unknown_fields)]
enum Row {
    #[serde(rename = "sites")]
    Site(SiteRow),
    #[serde(rename = "site_secrets")]
    SiteSecret(SiteSecretRow),
    #[serde(rename = "visitor_token_keys")]
    VisitorTokenKey(VisitorTokenKeyRow),
    #[serde(rename = "agents")]
    Agent(AgentRow),
    #[serde(rename = "canned_replies")]
    CannedReply(CannedReplyRow),
    #[serde(rename = "site_hours")]
    SiteHours(SiteHoursRow),
    #[serde(rename = "site_forms")]
    SiteForms(SiteFormsRow),
    #[serde(rename = "visitors")]
    Visitor(VisitorRow),
    #[serde(rename = "moved_visitors")]
    MovedVisitor(MovedVisitorRow),
    #[serde(rename = "visitor_profiles")]
    VisitorProfile(VisitorProfileRow),
    #[serde(rename = "visits")]
    Visit(VisitRow),
    #[serde(rename = "conversations")]
    Conversation(ConversationRow),
    #[serde(rename = "messages")]
    Message(MessageRow),
    #[serde(rename = "conversation_ratings")]
    Rating(RatingRow),
    #[serde(rename = "follow_up_settings")]
    FollowUpSettings(FollowUpSettingsRow),
    #[serde(rename = "follow_up_unsubscribed")]
    Unsubscribed(UnsubscribedRow),
    #[serde(rename = "follow_up_mailed")]
    Mailed(MailedRow),
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct FollowUpSettingsRow {
    batch_delay_secs: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct UnsubscribedRow {
    visitor_id: Unsigned,
    unsubscribed_at: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct MailedRow {
    conversation_id: Unsigned,
    mailed_through: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct SiteRow {
    id: Unsigned,
    key: String,
    name: String,
    created_at: Unsigned,
    draft_preview: Flag,
    color: String,
    greeting: String,
    position: String,
    allowed_origins: String,
    /// Absent in files written before sites had a file limit.
    #[serde(default = "default_max_file_bytes")]
    max_file_bytes: Unsigned,
}

fn default_max_file_bytes() -> Unsigned {
    Unsigned(20_000_000)
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct SiteSecretRow {
    identity_secret: String,
    previous_secret: Option<String>,
    previous_until: Option<Unsigned>,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct VisitorTokenKeyRow {
    key: String,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct AgentRow {
    id: Unsigned,
    email: String,
    name: String,
    password_hash: String,
    role: String,
    created_at: Unsigned,
    capacity: Unsigned,
    status: String,
    active: Flag,
    last_assigned_at: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct CannedReplyRow {
    shortcut: String,
    text: String,
    created_at: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct SiteHoursRow {
    enabled: Flag,
    calendar: String,
    offline_form_only: Flag,
    updated_at: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct SiteFormsRow {
    /// The pre-chat form's JSON, as the store keeps it.
    prechat: String,
    survey_enabled: Flag,
    survey_ask_again: Flag,
    updated_at: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct RatingRow {
    conversation_id: Unsigned,
    closed_seq: Unsigned,
    score: Unsigned,
    comment: String,
    rated_at: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct VisitorRow {
    id: Unsigned,
    token_hash: String,
    created_at: Unsigned,
    last_seen_at: Unsigned,
    user_agent: Option<String>,
    language: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct MovedVisitorRow {
    old_site_id: Unsigned,
    old_visitor_id: Unsigned,
    old_token_key: Option<String>,
    visitor_id: Unsigned,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct VisitorProfileRow {
    visitor_id: Unsigned,
    user_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    verified: Flag,
    profile_signed: Flag,
    attributes: String,
    page_url: Option<String>,
    page_title: Option<String>,
    page_referrer: Option<String>,
    page_since: Option<Unsigned>,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct VisitRow {
    visitor_id: Unsigned,
    url: String,
    title: String,
    referrer: Option<String>,
    at: Unsigned,
}

#[derive(Debug, Clone, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct ConversationRow {
    id: Unsigned,
    visitor_id: Unsigned,
    status: String,
    last_seq: Unsigned,
    visitor_delivered: Unsigned,
    visitor_read: Unsigned,
    agent_delivered: Unsigned,
    agent_read: Unsigned,
    created_at: Unsigned,
    updated_at: Unsigned,
    agent_marks_by: Option<Unsigned>,
    assignee_id: Option<Unsigned>,
    waiting_since: Option<Unsigned>,
}

#[derive(Debug, Serialize, Deserialize, FromRow)]
#[serde(deny_unknown_fields)]
struct MessageRow {
    conversation_id: Unsigned,
    seq: Unsigned,
    author_kind: String,
    author_id: Unsigned,
    #[serde(with = "hex_bytes")]
    client_id: Option<Vec<u8>>,
    body_kind: String,
    body: String,
    /// A message's files (JSON), absent for most messages and in files
    /// written before files existed. The files' rows and bytes are not
    /// in the export yet: on the new server their names show, and a
    /// download answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<String>,
    created_at: Unsigned,
}

/// `client_id` in the file: hex, as bytes are not JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&hex::encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| hex::decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Each table's rows of one site ($1), in the file's order. Ordered by
/// id so a file is the same for the same rows, and messages by seq.
const SITE_SQL: &str = "SELECT id, key, name, created_at, draft_preview, color, greeting, position, allowed_origins, \
     max_file_bytes FROM sites WHERE id = $1";
const SITE_SECRETS_SQL: &str =
    "SELECT identity_secret, previous_secret, previous_until FROM site_secrets WHERE site_id = $1";
const VISITOR_TOKEN_KEYS_SQL: &str = "SELECT key FROM visitor_token_keys WHERE site_id = $1";
const AGENTS_SQL: &str = "SELECT id, email, name, password_hash, role, created_at, capacity, status, active, \
     last_assigned_at FROM agents WHERE site_id = $1 ORDER BY id";
const CANNED_REPLIES_SQL: &str = "SELECT shortcut, text, created_at FROM canned_replies WHERE site_id = $1 ORDER BY id";
const SITE_HOURS_SQL: &str =
    "SELECT enabled, calendar, offline_form_only, updated_at FROM site_hours WHERE site_id = $1";
const SITE_FORMS_SQL: &str =
    "SELECT prechat, survey_enabled, survey_ask_again, updated_at FROM site_forms WHERE site_id = $1";
const RATINGS_SQL: &str = "SELECT conversation_id, closed_seq, score, comment, rated_at FROM conversation_ratings \
     WHERE site_id = $1 ORDER BY conversation_id, closed_seq";
const FOLLOW_UP_SETTINGS_SQL: &str = "SELECT batch_delay_secs FROM follow_up_settings WHERE site_id = $1";
// Only visitors the file carries: an unsubscribe names a visitor by id.
const UNSUBSCRIBED_SQL: &str = "SELECT u.visitor_id, u.unsubscribed_at FROM follow_up_unsubscribed u \
     JOIN visitors v ON v.id = u.visitor_id AND v.site_id = u.site_id WHERE u.site_id = $1 ORDER BY u.visitor_id";
const MAILED_SQL: &str = "SELECT m.conversation_id, m.mailed_through FROM follow_up_mailed m \
     JOIN conversations c ON c.id = m.conversation_id AND c.site_id = m.site_id WHERE m.site_id = $1 \
     ORDER BY m.conversation_id";
const VISITORS_SQL: &str = "SELECT id, token_hash, created_at, last_seen_at, user_agent, language FROM visitors WHERE site_id = $1 ORDER BY id";
const MOVED_VISITORS_SQL: &str = "SELECT old_site_id, old_visitor_id, old_token_key, visitor_id FROM moved_visitors \
     WHERE site_id = $1 ORDER BY visitor_id, old_site_id, old_visitor_id";
const VISITOR_PROFILES_SQL: &str = "SELECT p.visitor_id, p.user_id, p.name, p.email, p.verified, p.profile_signed, \
     p.attributes, p.page_url, p.page_title, p.page_referrer, p.page_since \
     FROM visitor_profiles p JOIN visitors v ON v.id = p.visitor_id WHERE v.site_id = $1 ORDER BY p.visitor_id";
const VISITS_SQL: &str = "SELECT s.visitor_id, s.url, s.title, s.referrer, s.at \
     FROM visits s JOIN visitors v ON v.id = s.visitor_id WHERE v.site_id = $1 ORDER BY s.id";
const CONVERSATIONS_SQL: &str = "SELECT id, visitor_id, status, last_seq, visitor_delivered, visitor_read, \
     agent_delivered, agent_read, created_at, updated_at, agent_marks_by, assignee_id, waiting_since \
     FROM conversations WHERE site_id = $1 ORDER BY id";
const MESSAGES_SQL: &str = "SELECT m.conversation_id, m.seq, m.author_kind, m.author_id, m.client_id, m.body_kind, \
     m.body, m.files, m.created_at FROM messages m JOIN conversations c ON c.id = m.conversation_id \
     WHERE c.site_id = $1 ORDER BY m.conversation_id, m.seq";

/// The file being written: gzip over a buffer, and how many row lines.
struct Writer {
    gzip: GzEncoder<BufWriter<File>>,
    path: PathBuf,
    rows: u64,
}

impl Writer {
    fn line(&mut self, value: &impl Serialize) -> Result<(), ExportError> {
        serde_json::to_writer(&mut self.gzip, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.gzip.write_all(b"\n"))
            .map_err(io("writing", &self.path))
    }

    fn row(&mut self, row: Row) -> Result<(), ExportError> {
        self.rows += 1;
        self.line(&row)
    }

    /// Ends the gzip stream and puts the file on disk.
    fn finish(self) -> Result<(), ExportError> {
        let path = self.path;
        let file = self.gzip.finish().and_then(|buffer| buffer.into_inner().map_err(|e| e.into_error()));
        file.and_then(|file| file.sync_all()).map_err(io("writing", &path))
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_owned();
    move |source| ExportError::Io { action, path, source }
}

/// Writes every row `sql` selects for `site` as a line, one at a time.
async fn dump<R>(
    connection: &mut AnyConnection,
    sql: &str,
    site: SiteId,
    out: &mut Writer,
    line: fn(R) -> Row,
) -> Result<u64, ExportError>
where
    R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let mut rows = sqlx::query_as::<_, R>(sql).bind(int(site.0)).fetch(connection);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        out.row(line(row))?;
        count += 1;
    }
    Ok(count)
}

impl Store {
    /// Writes the site with key `key` and everything that is its to `out`
    /// (a file that must not exist), in the format above, from one
    /// snapshot while the store goes on working. The file appears only
    /// once it is complete.
    pub async fn export_site(&self, key: &SiteKey, out: &Path) -> Result<Moved, ExportError> {
        if out.exists() {
            return Err(ExportError::Exists(out.to_owned()));
        }
        let partial = PathBuf::from(format!("{}.partial", out.display()));
        let file = File::create_new(&partial).map_err(io("creating", &partial))?;
        let gzip = GzEncoder::new(BufWriter::new(file), Compression::default());
        let writer = Writer { gzip, path: partial.clone(), rows: 0 };
        let written = self.write_site(key, writer).await;
        let moved = written.and_then(|moved| {
            std::fs::rename(&partial, out).map_err(io("moving into place", &partial))?;
            Ok(moved)
        });
        if moved.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        moved
    }

    async fn write_site(&self, key: &SiteKey, mut out: Writer) -> Result<Moved, ExportError> {
        let mut tx = self.backend().begin_snapshot(self.pool()).await?;
        let site: Option<Unsigned> = sqlx::query_scalar("SELECT id FROM sites WHERE key = $1")
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let site = SiteId(site.ok_or_else(|| ExportError::NoSuchSite(key.as_str().to_owned()))?.0);
        let name: String =
            sqlx::query_scalar("SELECT name FROM sites WHERE id = $1").bind(int(site.0)).fetch_one(&mut *tx).await?;
        let schema_version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&mut *tx).await?;
        out.line(&Header {
            kefu_export: EXPORT_VERSION,
            site: key.as_str().to_owned(),
            exported_at: now().0,
            relay_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version: schema_version.unwrap_or(0),
        })?;
        let tx = &mut *tx;
        dump(tx, SITE_SQL, site, &mut out, Row::Site).await?;
        dump(tx, SITE_SECRETS_SQL, site, &mut out, Row::SiteSecret).await?;
        dump(tx, VISITOR_TOKEN_KEYS_SQL, site, &mut out, Row::VisitorTokenKey).await?;
        let agents = dump(tx, AGENTS_SQL, site, &mut out, Row::Agent).await?;
        dump(tx, CANNED_REPLIES_SQL, site, &mut out, Row::CannedReply).await?;
        dump(tx, SITE_HOURS_SQL, site, &mut out, Row::SiteHours).await?;
        dump(tx, SITE_FORMS_SQL, site, &mut out, Row::SiteForms).await?;
        let visitors = dump(tx, VISITORS_SQL, site, &mut out, Row::Visitor).await?;
        dump(tx, MOVED_VISITORS_SQL, site, &mut out, Row::MovedVisitor).await?;
        dump(tx, VISITOR_PROFILES_SQL, site, &mut out, Row::VisitorProfile).await?;
        dump(tx, VISITS_SQL, site, &mut out, Row::Visit).await?;
        let conversations = dump(tx, CONVERSATIONS_SQL, site, &mut out, Row::Conversation).await?;
        let messages = dump(tx, MESSAGES_SQL, site, &mut out, Row::Message).await?;
        dump(tx, RATINGS_SQL, site, &mut out, Row::Rating).await?;
        dump(tx, FOLLOW_UP_SETTINGS_SQL, site, &mut out, Row::FollowUpSettings).await?;
        dump(tx, UNSUBSCRIBED_SQL, site, &mut out, Row::Unsubscribed).await?;
        dump(tx, MAILED_SQL, site, &mut out, Row::Mailed).await?;
        let rows = out.rows;
        out.line(&End { end: Count { rows } })?;
        out.finish()?;
        let site = Site { id: site, key: key.clone(), name };
        Ok(Moved { site, agents, visitors, conversations, messages })
    }

    /// Writes the site in the export `from` into this store, under the key
    /// `key` if given, else the one in the file, in one transaction; the
    /// site as it is here, and what came with it. Refused, with nothing
    /// written, if the file is not a complete export of a version this
    /// relay reads, or the key is taken here. A site imported into a store
    /// without sites makes its first admin the deployment's owner, as the
    /// first start does.
    pub async fn import_site(&self, from: &Path, key: Option<&SiteKey>) -> Result<Moved, ExportError> {
        let mut file = File::open(from).map_err(io("opening", from))?;
        let mut magic = [0; 2];
        let read = std::io::Read::read_exact(&mut file, &mut magic);
        if read.is_err() || magic != [0x1f, 0x8b] {
            return Err(ExportError::NotAnExport { path: from.to_owned(), why: "it is not gzip-compressed".into() });
        }
        std::io::Seek::rewind(&mut file).map_err(io("reading", from))?;
        let mut lines = Lines { lines: BufReader::new(GzDecoder::new(file)).lines(), path: from.to_owned(), number: 0 };
        let header = lines.header()?;
        let key = match key {
            Some(key) => key.clone(),
            None => SiteKey::new(header.site.clone()).map_err(|error| lines.corrupt(format!("site key: {error}")))?,
        };
        let mut tx = self.backend().begin_write(self.pool()).await?;
        let first_site: Unsigned = sqlx::query_scalar("SELECT COUNT(*) FROM sites").fetch_one(&mut *tx).await?;
        let mut import = Import::new(key, first_site.0 == 0);
        let rows = loop {
            match lines.next()? {
                Line::Row(row) => import.row(&mut tx, row).await.map_err(|why| match why {
                    Refusal::Corrupt(why) => lines.corrupt(why),
                    Refusal::Export(error) => error,
                })?,
                Line::End(rows) => break rows,
            }
        };
        if rows != lines.number - 2 {
            return Err(lines.corrupt(format!("the end line counts {rows} rows, the file has {}", lines.number - 2)));
        }
        let moved = import.finish(&mut tx).await.map_err(|why| match why {
            Refusal::Corrupt(why) => lines.corrupt(why),
            Refusal::Export(error) => error,
        })?;
        tx.commit().await?;
        Ok(moved)
    }

    /// The visitors of `site` that had the id `old` on the server the site
    /// came from (`kefu-relay import`), one per earlier server with such a
    /// visitor: the handshake tells which by the token.
    pub async fn moved_visitor(&self, site: SiteId, old: VisitorId) -> Result<Vec<MovedVisitor>, Error> {
        let rows: Vec<(Unsigned, Option<String>, Unsigned)> = sqlx::query_as(
            "SELECT old_site_id, old_token_key, visitor_id FROM moved_visitors \
             WHERE site_id = $1 AND old_visitor_id = $2 ORDER BY old_site_id",
        )
        .bind(int(site.0))
        .bind(int(old.0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(old_site, old_token_key, visitor)| MovedVisitor {
                visitor: VisitorId(visitor.0),
                old_site: SiteId(old_site.0),
                old_token_key,
            })
            .collect())
    }
}

/// A line read.
enum Line {
    Row(Row),
    /// The end, with the number of rows it counts.
    End(u64),
}

/// The file's lines, numbered from 1, for errors that say where.
struct Lines {
    lines: std::io::Lines<BufReader<GzDecoder<File>>>,
    path: PathBuf,
    number: u64,
}

impl Lines {
    fn corrupt(&self, why: String) -> ExportError {
        ExportError::Corrupt { path: self.path.clone(), line: self.number, why }
    }

    /// The next line's text; a gzip stream that stops early is a cut-short file.
    fn text(&mut self) -> Result<Option<String>, ExportError> {
        match self.lines.next() {
            None => Ok(None),
            Some(Ok(text)) => {
                self.number += 1;
                Ok(Some(text))
            }
            Some(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(ExportError::Truncated { path: self.path.clone(), line: self.number })
            }
            Some(Err(error)) if self.number == 0 => {
                Err(ExportError::NotAnExport { path: self.path.clone(), why: error.to_string() })
            }
            Some(Err(error)) => {
                self.number += 1;
                Err(self.corrupt(error.to_string()))
            }
        }
    }

    /// The first line, checked for its version before anything else in it.
    fn header(&mut self) -> Result<Header, ExportError> {
        let path = self.path.clone();
        let not_an_export = |why: &str| ExportError::NotAnExport { path: path.clone(), why: why.to_owned() };
        let text = self.text()?.ok_or_else(|| not_an_export("it is empty"))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| not_an_export("its first line is not a JSON object"))?;
        let version = value.get("kefu_export").ok_or_else(|| not_an_export("its first line has no `kefu_export`"))?;
        let version = version.as_u64().ok_or_else(|| not_an_export("`kefu_export` is not a version number"))?;
        if !(1..=EXPORT_VERSION).contains(&version) {
            return Err(ExportError::Version { path: self.path.clone(), found: version });
        }
        serde_json::from_value(value).map_err(|error| self.corrupt(format!("header: {error}")))
    }

    fn next(&mut self) -> Result<Line, ExportError> {
        let Some(text) = self.text()? else {
            return Err(ExportError::Truncated { path: self.path.clone(), line: self.number });
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| self.corrupt(error.to_string()))?;
        if value.get("end").is_some() {
            let end: End = serde_json::from_value(value).map_err(|error| self.corrupt(error.to_string()))?;
            if self.text()?.is_some() {
                return Err(self.corrupt("a line after the end line".into()));
            }
            return Ok(Line::End(end.end.rows));
        }
        serde_json::from_value(value).map(Line::Row).map_err(|error| self.corrupt(error.to_string()))
    }
}

/// Why a row could not be written: the file's fault (said with its line),
/// or the store's.
enum Refusal {
    Corrupt(String),
    Export(ExportError),
}

impl From<sqlx::Error> for Refusal {
    fn from(error: sqlx::Error) -> Refusal {
        Refusal::Export(error.into())
    }
}

/// An import under way: the target's ids for the file's, and what is left
/// to do once every message is in.
struct Import {
    key: SiteKey,
    first_site: bool,
    site: Option<(Site, SiteId)>,
    old_token_key: Option<String>,
    agents: HashMap<u64, u64>,
    /// The file's first admin, who owns a store the site is the first of.
    first_admin: Option<String>,
    visitors: HashMap<u64, u64>,
    /// Each conversation's id here and its row: its marks and times are
    /// set after its messages, which move them.
    conversations: HashMap<u64, (u64, ConversationRow)>,
    messages: u64,
}

impl Import {
    fn new(key: SiteKey, first_site: bool) -> Import {
        Import {
            key,
            first_site,
            site: None,
            old_token_key: None,
            agents: HashMap::new(),
            first_admin: None,
            visitors: HashMap::new(),
            conversations: HashMap::new(),
            messages: 0,
        }
    }

    fn site(&self) -> Result<SiteId, Refusal> {
        self.site.as_ref().map(|(site, _)| site.id).ok_or_else(|| Refusal::Corrupt("a row before the site".into()))
    }

    fn agent(&self, old: u64) -> Result<u64, Refusal> {
        self.agents.get(&old).copied().ok_or_else(|| Refusal::Corrupt(format!("agent {old} is not in the file")))
    }

    fn visitor(&self, old: u64) -> Result<u64, Refusal> {
        self.visitors.get(&old).copied().ok_or_else(|| Refusal::Corrupt(format!("visitor {old} is not in the file")))
    }

    fn conversation(&self, old: u64) -> Result<u64, Refusal> {
        let found = self.conversations.get(&old).map(|(id, _)| *id);
        found.ok_or_else(|| Refusal::Corrupt(format!("conversation {old} is not in the file")))
    }

    async fn row(&mut self, tx: &mut AnyConnection, row: Row) -> Result<(), Refusal> {
        if let Row::Site(row) = row {
            return self.insert_site(tx, row).await;
        }
        let site = int(self.site()?.0);
        match row {
            Row::Site(_) => unreachable!("handled above"),
            Row::SiteSecret(row) => {
                sqlx::query(
                    "INSERT INTO site_secrets (site_id, identity_secret, previous_secret, previous_until) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(site)
                .bind(row.identity_secret)
                .bind(row.previous_secret)
                .bind(row.previous_until.map(|until| int(until.0)))
                .execute(&mut *tx)
                .await?;
            }
            // Not this site's key from now on: see the module's doc.
            Row::VisitorTokenKey(row) => self.old_token_key = Some(row.key),
            Row::Agent(row) => {
                let id: Unsigned = sqlx::query_scalar(
                    "INSERT INTO agents (site_id, email, name, password_hash, role, created_at, capacity, status, \
                     active, last_assigned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                )
                .bind(site)
                .bind(&row.email)
                .bind(row.name)
                .bind(row.password_hash)
                .bind(&row.role)
                .bind(int(row.created_at.0))
                .bind(int(row.capacity.0))
                .bind(row.status)
                .bind(row.active.0)
                .bind(int(row.last_assigned_at.0))
                .fetch_one(&mut *tx)
                .await
                .map_err(|error| refusal(error, "agent email"))?;
                if self.first_admin.is_none() && row.role == "admin" && row.active.0 {
                    self.first_admin = Some(row.email);
                }
                self.agents.insert(row.id.0, id.0);
            }
            Row::CannedReply(row) => {
                sqlx::query("INSERT INTO canned_replies (site_id, shortcut, text, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(site)
                    .bind(row.shortcut)
                    .bind(row.text)
                    .bind(int(row.created_at.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(|error| refusal(error, "canned reply shortcut"))?;
            }
            Row::SiteHours(row) => {
                // Checked as an admin's save is: a file must not give a
                // site hours the relay would refuse.
                let calendar: Calendar = serde_json::from_str(&row.calendar)
                    .map_err(|error| Refusal::Corrupt(format!("site_hours calendar: {error}")))?;
                calendar.schedule().map_err(|error| Refusal::Corrupt(format!("site_hours calendar: {error}")))?;
                sqlx::query(
                    "INSERT INTO site_hours (site_id, enabled, calendar, offline_form_only, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(site)
                .bind(row.enabled.0)
                .bind(row.calendar)
                .bind(row.offline_form_only.0)
                .bind(int(row.updated_at.0))
                .execute(&mut *tx)
                .await
                .map_err(|error| refusal(error, "site_hours row"))?;
            }
            Row::SiteForms(row) => {
                sqlx::query(
                    "INSERT INTO site_forms (site_id, prechat, survey_enabled, survey_ask_again, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(site)
                .bind(row.prechat)
                .bind(row.survey_enabled.0)
                .bind(row.survey_ask_again.0)
                .bind(int(row.updated_at.0))
                .execute(&mut *tx)
                .await
                .map_err(|error| refusal(error, "the site's forms"))?;
            }
            Row::Rating(row) => {
                sqlx::query(
                    "INSERT INTO conversation_ratings (site_id, conversation_id, closed_seq, score, comment, rated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(site)
                .bind(int(self.conversation(row.conversation_id.0)?))
                .bind(int(row.closed_seq.0))
                .bind(int(row.score.0))
                .bind(row.comment)
                .bind(int(row.rated_at.0))
                .execute(&mut *tx)
                .await
                .map_err(|error| refusal(error, "a rating of one close"))?;
            }
            Row::FollowUpSettings(row) => {
                sqlx::query("INSERT INTO follow_up_settings (site_id, batch_delay_secs) VALUES ($1, $2)")
                    .bind(site)
                    .bind(int(row.batch_delay_secs.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(|error| refusal(error, "the site's follow-up settings"))?;
            }
            Row::Unsubscribed(row) => {
                sqlx::query(
                    "INSERT INTO follow_up_unsubscribed (site_id, visitor_id, unsubscribed_at) VALUES ($1, $2, $3)",
                )
                .bind(site)
                .bind(int(self.visitor(row.visitor_id.0)?))
                .bind(int(row.unsubscribed_at.0))
                .execute(&mut *tx)
                .await
                .map_err(|error| refusal(error, "an unsubscribed visitor"))?;
            }
            Row::Mailed(row) => {
                sqlx::query(
                    "INSERT INTO follow_up_mailed (site_id, conversation_id, mailed_through) VALUES ($1, $2, $3)",
                )
                .bind(site)
                .bind(int(self.conversation(row.conversation_id.0)?))
                .bind(int(row.mailed_through.0))
                .execute(&mut *tx)
                .await
                .map_err(|error| refusal(error, "how far a conversation was mailed"))?;
            }
            Row::Visitor(row) => {
                let id = next_id(tx, "visitors").await?;
                sqlx::query(
                    "INSERT INTO visitors (id, site_id, token_hash, created_at, last_seen_at, user_agent, language) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(int(id))
                .bind(site)
                .bind(row.token_hash)
                .bind(int(row.created_at.0))
                .bind(int(row.last_seen_at.0))
                .bind(row.user_agent)
                .bind(row.language)
                .execute(&mut *tx)
                .await?;
                if self.visitors.insert(row.id.0, id).is_some() {
                    return Err(Refusal::Corrupt(format!("visitor {} twice", row.id.0)));
                }
                let old_site = self.site.as_ref().map(|(_, old)| int(old.0));
                self.insert_moved(tx, old_site.unwrap_or_default(), row.id.0, self.old_token_key.clone(), id).await?;
            }
            Row::MovedVisitor(row) => {
                let id = self.visitor(row.visitor_id.0)?;
                self.insert_moved(tx, int(row.old_site_id.0), row.old_visitor_id.0, row.old_token_key, id).await?;
            }
            Row::VisitorProfile(row) => {
                sqlx::query(
                    "INSERT INTO visitor_profiles (visitor_id, user_id, name, email, verified, profile_signed, \
                     attributes, page_url, page_title, page_referrer, page_since) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(int(self.visitor(row.visitor_id.0)?))
                .bind(row.user_id)
                .bind(row.name)
                .bind(row.email)
                .bind(row.verified.0)
                .bind(row.profile_signed.0)
                .bind(row.attributes)
                .bind(row.page_url)
                .bind(row.page_title)
                .bind(row.page_referrer)
                .bind(row.page_since.map(|at| int(at.0)))
                .execute(&mut *tx)
                .await?;
            }
            Row::Visit(row) => {
                sqlx::query("INSERT INTO visits (visitor_id, url, title, referrer, at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(int(self.visitor(row.visitor_id.0)?))
                    .bind(row.url)
                    .bind(row.title)
                    .bind(row.referrer)
                    .bind(int(row.at.0))
                    .execute(&mut *tx)
                    .await?;
            }
            Row::Conversation(row) => {
                let id = next_id(tx, "conversations").await?;
                // Marks and times wait for the messages (see `finish`);
                // the status is set now so two open ones of one visitor
                // are refused here, as the schema refuses them anywhere.
                sqlx::query(
                    "INSERT INTO conversations (id, site_id, visitor_id, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(int(id))
                .bind(site)
                .bind(int(self.visitor(row.visitor_id.0)?))
                .bind(&row.status)
                .bind(int(row.created_at.0))
                .execute(&mut *tx)
                .await?;
                if self.conversations.insert(row.id.0, (id, row.clone())).is_some() {
                    return Err(Refusal::Corrupt(format!("conversation {} twice", row.id.0)));
                }
            }
            Row::Message(row) => self.insert_message(tx, row).await?,
        }
        Ok(())
    }

    async fn insert_site(&mut self, tx: &mut AnyConnection, row: SiteRow) -> Result<(), Refusal> {
        if self.site.is_some() {
            return Err(Refusal::Corrupt("a second site".into()));
        }
        let id: Unsigned = sqlx::query_scalar(
            "INSERT INTO sites \
             (key, name, created_at, draft_preview, color, greeting, position, allowed_origins, max_file_bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(self.key.as_str())
        .bind(&row.name)
        .bind(int(row.created_at.0))
        .bind(row.draft_preview.0)
        .bind(row.color)
        .bind(row.greeting)
        .bind(row.position)
        .bind(row.allowed_origins)
        .bind(int(row.max_file_bytes.0))
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| match constraint(error, "site key") {
            Error::Conflict(_) => Refusal::Export(ExportError::KeyTaken(self.key.as_str().to_owned())),
            error => Refusal::Export(error.into()),
        })?;
        let site = Site { id: SiteId(id.0), key: self.key.clone(), name: row.name };
        self.site = Some((site, SiteId(row.id.0)));
        Ok(())
    }

    async fn insert_moved(
        &self,
        tx: &mut AnyConnection,
        old_site: i64,
        old_visitor: u64,
        old_token_key: Option<String>,
        visitor: u64,
    ) -> Result<(), Refusal> {
        sqlx::query(
            "INSERT INTO moved_visitors (site_id, old_site_id, old_visitor_id, old_token_key, visitor_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(int(self.site()?.0))
        .bind(old_site)
        .bind(int(old_visitor))
        .bind(old_token_key)
        .bind(int(visitor))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn insert_message(&mut self, tx: &mut AnyConnection, row: MessageRow) -> Result<(), Refusal> {
        let conversation = self.conversation(row.conversation_id.0)?;
        let author = match row.author_kind.as_str() {
            "visitor" => self.visitor(row.author_id.0)?,
            "agent" => self.agent(row.author_id.0)?,
            _ => row.author_id.0,
        };
        // A system line names agents by id: theirs here.
        let body = if row.body_kind == "event" {
            let mut event: ConversationEvent =
                serde_json::from_str(&row.body).map_err(|error| Refusal::Corrupt(format!("system line: {error}")))?;
            let mut refs: Vec<&mut AgentRef> = match &mut event {
                ConversationEvent::Assigned { to, by } => std::iter::once(to).chain(by.as_mut()).collect(),
                ConversationEvent::Transferred { from, to } => vec![from, to],
                ConversationEvent::Closed { by } => vec![by],
                ConversationEvent::Reopened { by } => by.as_mut().into_iter().collect(),
                ConversationEvent::Rated { .. } => Vec::new(),
            };
            for agent in &mut refs {
                agent.id.0 = self.agent(agent.id.0)?;
            }
            serde_json::to_string(&event).map_err(|error| Refusal::Corrupt(error.to_string()))?
        } else {
            row.body
        };
        sqlx::query(
            "INSERT INTO messages \
             (conversation_id, seq, author_kind, author_id, client_id, body_kind, body, files, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(int(conversation))
        .bind(int(row.seq.0))
        .bind(row.author_kind)
        .bind(int(author))
        .bind(row.client_id)
        .bind(row.body_kind)
        .bind(body)
        .bind(row.files)
        .bind(int(row.created_at.0))
        .execute(&mut *tx)
        .await
        .map_err(|error| refusal(error, "message seq or idempotency key"))?;
        self.messages += 1;
        Ok(())
    }

    /// Each conversation's state as the file has it, now that its messages
    /// (which the trigger counts) are in; then the owner.
    async fn finish(self, tx: &mut AnyConnection) -> Result<Moved, Refusal> {
        let Some((site, _)) = self.site.clone() else {
            return Err(Refusal::Corrupt("no site in the file".into()));
        };
        for (id, row) in self.conversations.values() {
            let assignee = row.assignee_id.map(|agent| self.agent(agent.0)).transpose()?;
            let marks_by = row.agent_marks_by.map(|agent| self.agent(agent.0)).transpose()?;
            sqlx::query(
                "UPDATE conversations SET status = $2, last_seq = $3, visitor_delivered = $4, visitor_read = $5, \
                 agent_delivered = $6, agent_read = $7, updated_at = $8, agent_marks_by = $9, assignee_id = $10, \
                 waiting_since = $11 WHERE id = $1",
            )
            .bind(int(*id))
            .bind(&row.status)
            .bind(int(row.last_seq.0))
            .bind(int(row.visitor_delivered.0))
            .bind(int(row.visitor_read.0))
            .bind(int(row.agent_delivered.0))
            .bind(int(row.agent_read.0))
            .bind(int(row.updated_at.0))
            .bind(marks_by.map(int))
            .bind(assignee.map(int))
            .bind(row.waiting_since.map(|at| int(at.0)))
            .execute(&mut *tx)
            .await?;
        }
        let stored: Unsigned = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.site_id = $1 AND m.seq > c.last_seq",
        )
        .bind(int(site.id.0))
        .fetch_one(&mut *tx)
        .await?;
        if stored.0 > 0 {
            return Err(Refusal::Corrupt(format!("{} messages lie past their conversation's last seq", stored.0)));
        }
        if self.first_site
            && let Some(email) = &self.first_admin
        {
            super::owners::insert_owner(tx, email).await?;
        }
        Ok(Moved {
            site,
            agents: self.agents.len() as u64,
            visitors: self.visitors.len() as u64,
            conversations: self.conversations.len() as u64,
            messages: self.messages,
        })
    }
}

/// A visitor or conversation id from its block, one at a time: the
/// import's ids come after every id any relay holds in a block now.
async fn next_id(tx: &mut AnyConnection, name: &str) -> Result<u64, Refusal> {
    let end: Unsigned =
        sqlx::query_scalar("UPDATE id_blocks SET next_id = next_id + 1 WHERE name = $1 RETURNING next_id")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    Ok(end.0 - 1)
}

/// A failed insert: a broken constraint is the file's fault.
fn refusal(error: sqlx::Error, what: &'static str) -> Refusal {
    match constraint(error, what) {
        Error::Conflict(what) => Refusal::Corrupt(format!("{what} twice")),
        Error::NotFound => Refusal::Corrupt("a row refers to one not in the file".into()),
        error => Refusal::Export(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use kefu_protocol::frame::{AgentRef, Attribute, Author, Body, ConversationEvent, Message, ReceiptKind, Visit};
    use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, Seq, SiteKey, Timestamp, VisitorId};

    use super::*;
    use crate::store::console::ConversationPage;
    use crate::store::tests::{TestDb, on_both_backends};
    use crate::store::{
        Backend, FieldKind, FormField, FormWhen, Identity, NewMessage, Rating, Role, SiteForms, SiteHours, SiteUpdate,
        Survey, WidgetPosition,
    };

    fn key(value: &str) -> SiteKey {
        SiteKey::new(value).unwrap()
    }

    /// A second, empty database of the same kind as `db`.
    async fn another(db: &TestDb) -> TestDb {
        match db.backend() {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    async fn say(store: &Store, site: SiteId, conversation: ConversationId, author: Author, body: Body, id: u128) {
        let client_id = (author != Author::System).then_some(ClientMessageId(id));
        store.append(NewMessage { site, conversation, client_id, author, body, with: None }).await.unwrap();
    }

    /// A site as the HTTP API and the sockets read it, with every id
    /// replaced by what a person recognises (an agent's email, a
    /// visitor's place in the conversation list), so that two stores
    /// compare however their ids differ.
    async fn view(store: &Store, site: SiteId) -> String {
        let agents = store.agents(site).await.unwrap();
        let email: HashMap<AgentId, String> = agents.iter().map(|agent| (agent.id, agent.email.clone())).collect();
        let agent = |id: AgentId| email.get(&id).cloned().unwrap_or_else(|| format!("stranger {}", id.0));
        let mut out = Vec::new();
        let found = store.site(site).await.unwrap().unwrap();
        out.push(format!("site {} {:?}", found.key.as_str(), found.name));
        out.push(format!("settings {:?}", store.site_settings(site).await.unwrap()));
        out.push(format!("hours {:?}", store.site_hours(site).await.unwrap()));
        let secrets = store.identity_secrets(site).await.unwrap();
        out.push(format!("identity secrets {} {:?}", secrets.current, secrets.previous));
        for agent in &agents {
            out.push(format!(
                "agent {} {} {:?} {} {}",
                agent.email, agent.name, agent.role, agent.capacity, agent.active
            ));
        }
        for reply in store.canned_replies(site).await.unwrap() {
            out.push(format!("canned /{} {:?}", reply.shortcut, reply.text));
        }
        out.push(format!("forms {:?}", store.site_forms(site).await.unwrap()));
        for rating in store.ratings(site).await.unwrap() {
            out.push(format!(
                "rating of #{} {} {:?} at {}",
                rating.closed.0, rating.score, rating.comment, rating.at.0
            ));
        }
        out.push(format!("follow-up delay {:?}", store.follow_up_delay(site).await.unwrap()));
        let page = ConversationPage { status: None, before: None, before_id: None, limit: 100 };
        let mut visitors: Vec<VisitorId> = Vec::new();
        for summary in store.conversation_page(site, &page).await.unwrap() {
            if !visitors.contains(&summary.visitor) {
                visitors.push(summary.visitor);
            }
            let unsubscribed = store.visitor_unsubscribed(site, summary.visitor).await.unwrap();
            let unmailed = store.unmailed_replies(site, summary.id).await.unwrap().len();
            out.push(format!(
                "visitor {} unsubscribed {unsubscribed}, {unmailed} replies unmailed",
                visitors.len() - 1
            ));
            let place = visitors.iter().position(|&v| v == summary.visitor).unwrap();
            let name = |author: Author| match author {
                Author::Visitor(id) => format!("visitor {}", visitors.iter().position(|&v| v == id).unwrap()),
                Author::Agent(id) => agent(id),
                Author::System => "system".into(),
            };
            let line = |message: &Message| {
                let body = match &message.body {
                    Body::Event(event) => {
                        let mut event = event.clone();
                        let refs: Vec<&mut AgentRef> = match &mut event {
                            ConversationEvent::Assigned { to, by } => std::iter::once(to).chain(by.as_mut()).collect(),
                            ConversationEvent::Transferred { from, to } => vec![from, to],
                            ConversationEvent::Closed { by } => vec![by],
                            ConversationEvent::Reopened { by } => by.as_mut().into_iter().collect(),
                            ConversationEvent::Rated { .. } => Vec::new(),
                        };
                        let names: Vec<String> = refs
                            .into_iter()
                            .map(|named| std::mem::replace(&mut named.id, AgentId(0)))
                            .map(agent)
                            .collect();
                        format!("{event:?} naming {names:?}")
                    }
                    body => format!("{body:?}"),
                };
                format!(
                    "  #{} prev {} by {} {:?} at {} {body}",
                    message.seq.0,
                    message.prev.0,
                    name(message.author),
                    message.client_id,
                    message.sent_at.0
                )
            };
            out.push(format!(
                "conversation of visitor {place} {:?} last {} at {} assignee {:?} waiting {:?} name {:?} preview {:?}",
                summary.status,
                summary.last_seq.0,
                summary.updated_at.0,
                summary.assignee.map(agent),
                summary.waiting_since,
                summary.visitor_name,
                summary.last_message.as_ref().map(line),
            ));
            for message in store.messages_before(site, summary.id, None, 1000).await.unwrap() {
                out.push(line(&message));
            }
            let after = store.messages_after(site, summary.id, Seq::ZERO, 1000).await.unwrap();
            out.push(format!("  replay {} messages", after.len()));
            for receipt in store.receipts(site, summary.id).await.unwrap() {
                out.push(format!("  receipt {} {:?} {}", name(receipt.by), receipt.kind, receipt.up_to.0));
            }
        }
        for (place, &visitor) in visitors.iter().enumerate() {
            let mut profile = store.visitor_profile(site, visitor).await.unwrap();
            profile.visitor = VisitorId(0);
            out.push(format!("visitor {place} {profile:?}"));
            out.push(format!("  visits {:?}", store.visits(site, visitor, 100).await.unwrap()));
            out.push(format!("  client {:?}", store.visitor_client(site, visitor).await.unwrap()));
            let past = store.visitor_conversations(site, visitor, None).await.unwrap();
            out.push(format!("  past conversations {}", past.len()));
        }
        out.join("\n")
    }

    /// A site with a bit of everything: agents, settings, canned replies,
    /// a closed conversation with replies, a note and system lines, and an
    /// open one waiting with receipts; `visitors` is how many.
    async fn fill(store: &Store, site_key: &str, visitors: usize) -> Site {
        let (site, admin) =
            store.create_site_with_admin(&key(site_key), "Shop", "boss@shop.test", "Boss", "phc-boss").await.unwrap();
        let ann = store.create_agent(site.id, "ann@shop.test", "Ann", "phc-ann", Role::Agent).await.unwrap();
        let update = SiteUpdate {
            greeting: Some("Hi!".into()),
            position: Some(WidgetPosition::Left),
            allowed_origins: Some(vec!["https://shop.test".into()]),
            ..SiteUpdate::default()
        };
        store.update_site(site.id, &update).await.unwrap();
        store.create_canned_reply(site.id, "hello", "Hello, how can I help?").await.unwrap();
        store.create_canned_reply(site.id, "bye", "Bye!").await.unwrap();
        let calendar = serde_json::from_str(
            r#"{"zone":"Europe/Berlin","week":{"mon":[{"from":"09:00","to":"12:00"},{"from":"13:00","to":"17:00"}]},
                "exceptions":[{"date":"2026-12-25"}]}"#,
        )
        .unwrap();
        store.set_site_hours(site.id, &SiteHours { enabled: true, calendar, offline_form_only: true }).await.unwrap();
        let mut forms = SiteForms::default();
        forms.prechat.when = FormWhen::OutOfHours;
        forms.prechat.consent = Some("We keep what you write for a year.".into());
        forms.prechat.fields.push(FormField {
            key: "plan".into(),
            label: "Plan".into(),
            kind: FieldKind::Select { options: vec!["Free".into(), "Pro".into()] },
            required: true,
        });
        forms.survey = Survey { enabled: true, ask_again: true };
        store.set_site_forms(site.id, &forms).await.unwrap();
        store.rotate_identity_secret(site.id).await.unwrap();
        store.visitor_token_key(site.id).await.unwrap();
        for n in 0..visitors {
            let visitor = store.create_visitor(site.id, &format!("hash {n}")).await.unwrap();
            let conversation = store.open_conversation(site.id, visitor).await.unwrap().id;
            let visit = Visit { url: format!("https://shop.test/{n}"), title: "Shop".into(), referrer: None };
            store.record_visit(site.id, visitor, &visit).await.unwrap();
            store.record_visitor_client(site.id, visitor, Some("Firefox"), Some("de")).await.unwrap();
            let identity =
                Identity { user_id: "u1", name: Some("Vera"), email: None, verified: true, profile_signed: false };
            store.identify_visitor(site.id, visitor, &identity).await.unwrap();
            let attribute = Attribute { key: "plan".into(), value: format!("plan {n}") };
            store.set_visitor_attributes(site.id, visitor, &[attribute]).await.unwrap();
            let text = |text: &str| Body::Text(text.into());
            say(store, site.id, conversation, Author::Visitor(visitor), text("hello?"), 1).await;
            store.assign_conversation(site.id, conversation, None, ann.id).await.unwrap().unwrap();
            let assigned = ConversationEvent::Assigned { to: AgentRef { id: ann.id, name: "Ann".into() }, by: None };
            say(store, site.id, conversation, Author::System, Body::Event(assigned), 0).await;
            say(store, site.id, conversation, Author::Agent(ann.id), text("hi, Ann here"), 1).await;
            say(store, site.id, conversation, Author::Agent(admin.id), Body::Note("VIP".into()), 2).await;
            store
                .record_receipt(site.id, conversation, Author::Visitor(visitor), ReceiptKind::Read, Seq(3))
                .await
                .unwrap();
            store
                .record_receipt(site.id, conversation, Author::Agent(ann.id), ReceiptKind::Delivered, Seq(1))
                .await
                .unwrap();
            if n % 2 == 0 {
                store.close_conversation(site.id, conversation).await.unwrap().unwrap();
                let closed = ConversationEvent::Closed { by: AgentRef { id: admin.id, name: "Boss".into() } };
                say(store, site.id, conversation, Author::System, Body::Event(closed), 0).await;
                if n == 0 {
                    let at = Timestamp(1_700_000_000_000);
                    let rating = Rating { conversation, closed: Seq(5), score: 4, comment: "quick".into(), at };
                    assert!(store.append(NewMessage::rated(site.id, rating, true)).await.unwrap().fresh);
                }
            } else {
                say(store, site.id, conversation, Author::Visitor(visitor), text("still there?"), 2).await;
                store.unsubscribe_visitor(site.id, visitor).await.unwrap();
                // Two replies the visitor has not read, the first mailed.
                say(store, site.id, conversation, Author::Agent(ann.id), text("yes, here"), 3).await;
                say(store, site.id, conversation, Author::Agent(ann.id), text("anything else?"), 4).await;
                store.mark_mailed(site.id, conversation, Seq(6)).await.unwrap();
            }
        }
        store.set_follow_up_delay(site.id, std::time::Duration::from_secs(30)).await.unwrap();
        site
    }

    async fn a_site_moves_with_new_ids_and_reads_the_same(db: TestDb) {
        let source = db.open().await;
        // A site before it, so its ids are not the target's.
        let early = fill(&source, "early", 1).await;
        let spare = source.create_site(&key("spare"), "Spare").await.unwrap();
        source.create_agent(spare.id, "ann@shop.test", "Ann", "phc-other", Role::Agent).await.unwrap();
        let shop = fill(&source, "shop", 3).await;
        let before_export = view(&source, shop.id).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shop.kefu");
        let exported = source.export_site(&key("shop"), &file).await.unwrap();
        assert_eq!((exported.agents, exported.visitors, exported.conversations, exported.messages), (2, 3, 3, 18));
        assert!(!dir.path().join("shop.kefu.partial").exists());
        assert!(matches!(source.export_site(&key("shop"), &file).await, Err(ExportError::Exists(_))));

        let target_db = another(&db).await;
        let target = target_db.open().await;
        // The target's own site, with its own visitors, conversations and
        // messages: ids that collide unless the import remaps.
        let home = fill(&target, "home", 2).await;
        let home_before = view(&target, home.id).await;
        let imported = target.import_site(&file, None).await.unwrap();
        assert_ne!(imported.site.id, shop.id);
        assert_eq!((imported.agents, imported.visitors, imported.conversations, imported.messages), (2, 3, 3, 18));
        assert_eq!(view(&target, imported.site.id).await, before_export);
        assert_eq!(view(&target, home.id).await, home_before, "the target's own site is untouched");
        assert_eq!(view(&source, shop.id).await, before_export, "the export changes nothing");
        assert!(view(&source, early.id).await.contains("site early"));
        // The agents log in with their old passwords.
        let logins = target.agent_logins("ann@shop.test").await.unwrap();
        let moved: Vec<_> = logins.iter().filter(|login| login.site.id == imported.site.id).collect();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].password_hash, "phc-ann");
        // Ids handed out later collide with none imported: this relay's
        // block was reserved before, another relay's comes after them.
        let imported_ids = target.open_conversations(imported.site.id).await.unwrap();
        let other_node = target_db.open().await;
        for store in [&target, &other_node] {
            let (visitor, conversation) =
                (store.new_visitor_id().await.unwrap(), store.new_conversation_id().await.unwrap());
            for summary in &imported_ids {
                assert!(summary.visitor != visitor && summary.id != conversation, "{summary:?} vs {visitor:?}");
            }
        }
        let (visitor, conversation) =
            (other_node.new_visitor_id().await.unwrap(), other_node.new_conversation_id().await.unwrap());
        assert!(imported_ids.iter().all(|c| c.visitor.0 < visitor.0 && c.id.0 < conversation.0));
        other_node.close().await;
        // Each old visitor id leads to its new visitor, with the old key.
        let old_key = source.visitor_token_key(shop.id).await.unwrap();
        let new_key = target.visitor_token_key(imported.site.id).await.unwrap();
        assert_ne!(old_key, new_key, "the moved site signs with a key of its own");
        for old in source.open_conversations(shop.id).await.unwrap() {
            let found = target.moved_visitor(imported.site.id, old.visitor).await.unwrap();
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!((found[0].old_site, found[0].old_token_key.as_deref()), (shop.id, Some(old_key.as_str())));
            let token_hash = target.visitor_token_hash(imported.site.id, found[0].visitor).await.unwrap();
            assert_eq!(token_hash, source.visitor_token_hash(shop.id, old.visitor).await.unwrap());
        }
        assert!(target.moved_visitor(home.id, VisitorId(1)).await.unwrap().is_empty());

        // Again: the key is taken, and nothing changes.
        let sites = target.all_sites().await.unwrap();
        let moved_before = view(&target, imported.site.id).await;
        let again = target.import_site(&file, None).await;
        assert!(matches!(&again, Err(ExportError::KeyTaken(key)) if key == "shop"), "{again:?}");
        assert_eq!(target.all_sites().await.unwrap(), sites);
        assert_eq!(view(&target, imported.site.id).await, moved_before);
        assert_eq!(view(&target, home.id).await, home_before);
        // Under a free key it goes in beside the first.
        let copy = target.import_site(&file, Some(&key("shop2"))).await.unwrap();
        assert_eq!(view(&target, copy.site.id).await, before_export.replacen("site shop ", "site shop2 ", 1));

        // And moved once more, from the target to a third store: the
        // visitors' ids from the first server still lead to them.
        let second = dir.path().join("second.kefu");
        target.export_site(&key("shop"), &second).await.unwrap();
        let third_db = another(&db).await;
        let third = third_db.open().await;
        let last = third.import_site(&second, None).await.unwrap();
        assert_eq!(view(&third, last.site.id).await, before_export);
        for old in source.open_conversations(shop.id).await.unwrap() {
            let found = third.moved_visitor(last.site.id, old.visitor).await.unwrap();
            assert!(found.iter().any(|m| m.old_site == shop.id), "{found:?}");
        }
        assert!(third.is_owner("boss@shop.test").await.unwrap(), "the first site's admin owns a new store");
        assert!(!target.is_owner("boss@shop.test").await.unwrap(), "a store with sites keeps its owners");
        source.close().await;
        target.close().await;
        third.close().await;
    }

    async fn a_broken_or_future_file_is_refused_and_writes_nothing(db: TestDb) {
        let source = db.open().await;
        fill(&source, "shop", 2).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shop.kefu");
        source.export_site(&key("shop"), &file).await.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut GzDecoder::new(File::open(&file).unwrap()), &mut text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let write = |name: &str, lines: &[String]| {
            let path = dir.path().join(name);
            let mut gzip = GzEncoder::new(File::create(&path).unwrap(), Compression::default());
            for line in lines {
                writeln!(gzip, "{line}").unwrap();
            }
            gzip.finish().unwrap();
            path
        };
        let owned = |lines: &[&str]| lines.iter().map(|line| (*line).to_owned()).collect::<Vec<_>>();
        let future = lines[0].replace("\"kefu_export\":2", "\"kefu_export\":3");
        let future = write("future.kefu", &[vec![future], owned(&lines[1..])].concat());
        let short = write("short.kefu", &owned(&lines[..lines.len() - 1]));
        let mut bad = owned(&lines);
        let message = bad.iter().rposition(|line| line.contains("\"messages\"")).unwrap();
        bad[message] = bad[message].replace("\"seq\":", "\"seq\":-");
        let bad = write("bad.kefu", &bad);
        let mut unknown = owned(&lines);
        unknown[1] = unknown[1].replace("\"name\":", "\"colour\":\"red\",\"name\":");
        let unknown = write("unknown.kefu", &unknown);
        let mut bad_hours = owned(&lines);
        let hours_line = bad_hours.iter().position(|line| line.contains("\"site_hours\"")).unwrap();
        bad_hours[hours_line] = bad_hours[hours_line].replace("Europe/Berlin", "Mars/Olympus");
        let bad_hours = write("bad-hours.kefu", &bad_hours);
        let bytes = std::fs::read(&file).unwrap();
        let cut = dir.path().join("cut.kefu");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();

        let target_db = another(&db).await;
        let target = target_db.open().await;
        let home = fill(&target, "home", 1).await;
        let home_before = view(&target, home.id).await;
        let said = |result: Result<Moved, ExportError>| result.unwrap_err().to_string();
        let error = said(target.import_site(&future, None).await);
        assert!(error.contains("export format version 3") && error.contains("reads versions 1 to 2"), "{error}");
        let error = said(target.import_site(&short, None).await);
        assert!(error.contains("cut short") && error.contains("end line is missing"), "{error}");
        let error = said(target.import_site(&cut, None).await);
        assert!(error.contains("cut short") || error.contains("damaged"), "{error}");
        let error = said(target.import_site(&bad, None).await);
        assert!(error.contains(&format!("damaged at line {}", message + 1)), "{error}");
        let error = said(target.import_site(&unknown, None).await);
        assert!(error.contains("damaged at line 2") && error.contains("colour"), "{error}");
        let error = said(target.import_site(&bad_hours, None).await);
        let (line, zone) = (format!("damaged at line {}", hours_line + 1), "unknown time zone \"Mars/Olympus\"");
        assert!(error.contains(&line) && error.contains(zone), "{error}");
        let error = said(target.import_site(dir.path().join("none.kefu").as_path(), None).await);
        assert!(error.contains("opening"), "{error}");
        assert_eq!(target.all_sites().await.unwrap().len(), 1, "no site came of any of them");
        assert_eq!(view(&target, home.id).await, home_before);
        // And the good file still goes in.
        target.import_site(&file, None).await.unwrap();
        source.close().await;
        target.close().await;
    }

    on_both_backends![
        a_site_moves_with_new_ids_and_reads_the_same,
        a_broken_or_future_file_is_refused_and_writes_nothing
    ];
}
