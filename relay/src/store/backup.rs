//! Snapshots of the embedded store, and putting one back.
//!
//! A backup is a complete SQLite file written by `VACUUM INTO` from a
//! running store: it reads one transaction's view of the database, so it
//! holds every message committed before it started and none half-written,
//! while the relay goes on storing. A restore checks that a file is such a
//! snapshot (an intact Kefu store no newer than this binary), keeps the
//! store it replaces beside it, puts the snapshot in place and migrates it.
//!
//! Restoring under a running relay would pull the file from under it, so
//! every store opened on a data folder holds a shared lock on `kefu.lock`
//! there, and a restore takes it exclusively: one refuses the other.
//!
//! PostgreSQL has its own tools for this (`pg_dump`, `pg_restore`); the
//! relay does not copy them.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use sqlx::ConnectOptions;
use sqlx::any::AnyConnectOptions;
use sqlx::{Connection, Row};
use std::str::FromStr;

use super::{Backend, Error, FILE_NAME, Store, sqlite_url};

/// The lock file beside `kefu.db`.
const LOCK_FILE: &str = "kefu.lock";

/// What is in a store: shown after a backup or a restore, so the operator
/// sees they got what they meant to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub sites: u64,
    pub conversations: u64,
    pub messages: u64,
    /// The newest migration applied to it.
    pub schema_version: i64,
}

impl std::fmt::Display for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sites, {} conversations, {} messages (schema version {})",
            self.sites, self.conversations, self.messages, self.schema_version
        )
    }
}

/// Why a backup or restore could not be made. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "the store is in PostgreSQL ({0}): back it up with `pg_dump --format=custom --file FILE URL` and restore with `pg_restore`"
    )]
    Postgres(String),
    #[error("{0} exists already: a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("a relay (or another kefu-relay command) is using {0}: stop it before restoring")]
    InUse(PathBuf),
    #[error("{path} is not a Kefu store: {why}")]
    NotAStore { path: PathBuf, why: String },
    #[error(
        "{path} comes from a newer Kefu (schema version {found}; this binary knows up to {known}): restore it with that version or newer"
    )]
    Newer { path: PathBuf, found: i64, known: i64 },
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] Error),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { action, path, source }
}

/// The shared lock every store on a data folder holds while it is open.
pub(super) fn share_data_dir(data_dir: &Path) -> Result<File, Error> {
    let path = data_dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::DataDir { path: path.clone(), source })?;
    match file.try_lock_shared() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            Err(Error::DataDir { path, source: std::io::Error::other("a restore is running on this folder") })
        }
        Err(TryLockError::Error(source)) => Err(Error::DataDir { path, source }),
    }
}

impl Store {
    /// Writes a snapshot of the whole store to `out`, a file that must not
    /// exist, while the store goes on working.
    pub async fn backup_into(&self, out: &Path) -> Result<Contents, BackupError> {
        if self.backend() == Backend::Postgres {
            return Err(BackupError::Postgres(self.inner.location.clone()));
        }
        if out.exists() {
            return Err(BackupError::Exists(out.to_owned()));
        }
        let out = std::path::absolute(out).map_err(io("finding", out))?;
        sqlx::query("VACUUM INTO $1")
            .bind(out.display().to_string())
            .execute(self.pool())
            .await
            .map_err(Error::from)?;
        inspect(&out).await
    }
}

/// Puts the snapshot `from` in place of the store in `data_dir` (which may
/// hold none yet), keeping the one it replaces as
/// `kefu-before-restore-SECONDS.db`; returns what the restored store holds
/// and where the old one went. Refused while anything has the store open.
pub async fn restore(data_dir: &Path, from: &Path) -> Result<(Contents, Option<PathBuf>), BackupError> {
    let found = inspect(from).await?;
    let known = sqlx::migrate!("./migrations/sqlite").iter().map(|m| m.version).max().unwrap_or(0);
    if found.schema_version > known {
        return Err(BackupError::Newer { path: from.to_owned(), found: found.schema_version, known });
    }
    std::fs::create_dir_all(data_dir).map_err(io("creating", data_dir))?;
    let lock_path = data_dir.join(LOCK_FILE);
    let lock =
        File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(io("opening", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(BackupError::InUse(data_dir.to_owned())),
        Err(TryLockError::Error(source)) => return Err(BackupError::Io { action: "locking", path: lock_path, source }),
    }

    // Copied next to its place first, so the store is never half a file.
    let target = data_dir.join(FILE_NAME);
    let incoming = data_dir.join("kefu-restoring.db");
    std::fs::copy(from, &incoming).map_err(io("copying", from))?;
    File::open(&incoming).and_then(|f| f.sync_all()).map_err(io("syncing", &incoming))?;

    let kept = if target.exists() {
        let seconds = super::now().0 / 1000;
        let kept = data_dir.join(format!("kefu-before-restore-{seconds}.db"));
        // The write-ahead log and its index go with the file, under the
        // names SQLite looks for, so the old store opens as it was.
        for suffix in ["", "-wal", "-shm"] {
            let old = PathBuf::from(format!("{}{suffix}", target.display()));
            if old.exists() {
                let new = PathBuf::from(format!("{}{suffix}", kept.display()));
                std::fs::rename(&old, &new).map_err(io("moving aside", &old))?;
            }
        }
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&incoming, &target).map_err(io("moving into place", &incoming))?;
    drop(lock);

    // Opening it brings an older snapshot's schema up to date.
    let store = Store::open(data_dir).await?;
    store.close().await;
    Ok((inspect(&target).await?, kept))
}

/// Opens `path` read-only and tells whether it is an intact Kefu store,
/// and what it holds.
async fn inspect(path: &Path) -> Result<Contents, BackupError> {
    let not_a_store = |why: String| BackupError::NotAStore { path: path.to_owned(), why };
    if !path.is_file() {
        return Err(not_a_store("no such file".into()));
    }
    let absolute = std::path::absolute(path).map_err(io("finding", path))?;
    sqlx::any::install_default_drivers();
    let url = sqlite_url(&absolute).replace("?mode=rwc", "?mode=ro");
    let options = AnyConnectOptions::from_str(&url).map_err(Error::from)?;
    let mut connection = options.connect().await.map_err(|error| not_a_store(error.to_string()))?;
    let checked = async {
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut connection).await?;
        if integrity != "ok" {
            return Ok(Err(format!("damaged ({integrity})")));
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&mut connection).await?;
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sites), (SELECT COUNT(*) FROM conversations), (SELECT COUNT(*) FROM messages)",
        )
        .fetch_one(&mut connection)
        .await?;
        let count = |i: usize| row.try_get::<i64, _>(i).map(|n| u64::try_from(n).unwrap_or(0));
        Ok::<_, sqlx::Error>(Ok(Contents {
            sites: count(0)?,
            conversations: count(1)?,
            messages: count(2)?,
            schema_version: version.unwrap_or(0),
        }))
    }
    .await;
    let _ = connection.close().await;
    match checked {
        Ok(Ok(contents)) => Ok(contents),
        Ok(Err(why)) => Err(not_a_store(why)),
        // No such table, not a database at all, …
        Err(error) => Err(not_a_store(error.to_string())),
    }
}
