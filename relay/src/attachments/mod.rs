//! Files in the chat: taking an upload, knowing what it is, keeping its
//! bytes, and handing them back safely.
//!
//! An upload streams to a temporary file while its bytes are counted
//! against the limit, so a large one never sits in memory; its type is
//! sniffed from the first bytes ([`sniff`]), never taken from the name
//! or the request's `Content-Type`; then [`Storage`] keeps the bytes and
//! the store a row ([`store::NewAttachment`]). A message names uploads by
//! id; `ws::connection` checks each is the sender's own and fills in what
//! the store found, and the store's writer ties them to the message in
//! its transaction. Uploads no message names are removed after a day
//! ([`sweep`]).
//!
//! This module knows nothing of HTTP: `http::attachments` is the door.

mod sniff;
mod storage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use kefu_protocol::frame::{Author, FileRef, ImageSize};
use kefu_protocol::ids::{AttachmentId, SiteId, Timestamp};
use tokio::io::AsyncWriteExt;

pub use sniff::{Kind, is_plain_image, sniff};
pub use storage::Storage;

use crate::state::AppState;
use crate::store::{self, NewAttachment};

/// How long an upload may wait for a message to name it.
pub const UNATTACHED_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 200;

/// Why an upload was not kept.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("files are limited to {} here", kefu_protocol::compat::size_words(*limit))]
    TooLarge { limit: u64 },
    #[error("empty file")]
    Empty,
    #[error("{0} files are not accepted")]
    Type(&'static str),
    /// The client stopped sending or the connection broke.
    #[error("the upload was cut short")]
    CutShort,
    #[error("storing the file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The largest file `site` takes: its own limit (20 MB unless its admin
/// set another) under the operator's ceiling (`--attachment-limit-mb`).
pub async fn file_limit(state: &AppState, site: SiteId) -> Result<u64, store::Error> {
    let own = state.store.site_settings(site).await?.max_file_bytes;
    Ok(own.min(state.config.attachment_limit_mb.saturating_mul(1_000_000)))
}

/// Takes an upload of `uploader` to `site` named `name`: streams `body`
/// to disk under the limit, sniffs it, stores it. Nothing is kept of a
/// refused one.
pub async fn upload<S, E>(
    state: &AppState,
    site: SiteId,
    uploader: Author,
    name: &str,
    body: S,
) -> Result<FileRef, Refused>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let storage = state.storage();
    let id = AttachmentId(rand::random());
    let limit = file_limit(state, site).await?;
    let partial = storage.partial_path(id).await?;
    let taken = take(&partial, body, limit).await;
    let (size, head) = match taken {
        Ok(taken) => taken,
        Err(refused) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(refused);
        }
    };
    let kind = sniff(&head);
    let Some(mime) = kind.accepted() else {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(Refused::Type(kind.label()));
    };
    let image = if kind.is_image() { image_size(&partial).await } else { None };
    storage.keep(site, id, &partial).await?;
    let file = FileRef { id, name: clean_name(name), mime: mime.to_owned(), size, image };
    let new = NewAttachment { id, uploader, name: file.name.clone(), mime: file.mime.clone(), size, image: file.image };
    if let Err(error) = state.store.add_attachment(site, &new).await {
        let _ = storage.remove(site, id).await;
        return Err(error.into());
    }
    state.metrics.attachment_stored(size);
    Ok(file)
}

/// Bytes kept of the start of a file for sniffing.
const HEAD: usize = 8 * 1024;

/// Streams `body` to `path`; its size and first bytes.
async fn take<S, E>(path: &Path, mut body: S, limit: u64) -> Result<(u64, Vec<u8>), Refused>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut file = tokio::fs::File::create(path).await?;
    let (mut size, mut head) = (0_u64, Vec::with_capacity(HEAD));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| Refused::CutShort)?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(Refused::TooLarge { limit });
        }
        if head.len() < HEAD {
            head.extend_from_slice(&chunk[..chunk.len().min(HEAD - head.len())]);
        }
        file.write_all(&chunk).await?;
    }
    if size == 0 {
        return Err(Refused::Empty);
    }
    file.sync_all().await?;
    Ok((size, head))
}

/// An image's size in pixels from its header, without decoding it.
async fn image_size(path: &Path) -> Option<ImageSize> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let (width, height) =
            image::ImageReader::open(path).ok()?.with_guessed_format().ok()?.into_dimensions().ok()?;
        Some(ImageSize { width, height })
    })
    .await
    .ok()
    .flatten()
}

/// The name a file is shown and downloaded with: no folders, no control
/// characters, not empty, not endless.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    let clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() { "file".to_owned() } else { clean }
}

/// Every hour, removes the uploads no message named within a day. Each
/// node sweeps; removing twice is harmless.
pub async fn sweep(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(60 * 60));
    loop {
        every.tick().await;
        if let Err(error) = sweep_once(&state, store::now()).await {
            tracing::warn!(%error, "could not remove unattached uploads");
        }
    }
}

/// Removes the uploads older than a day at `now` that no message names;
/// how many.
pub async fn sweep_once(state: &AppState, now: Timestamp) -> Result<usize, Refused> {
    let lifetime = u64::try_from(UNATTACHED_LIFETIME.as_millis()).unwrap_or(u64::MAX);
    let cutoff = Timestamp(now.0.saturating_sub(lifetime));
    let mut removed = 0;
    loop {
        let batch = state.store.unattached_before(cutoff, 500).await?;
        if batch.is_empty() {
            return Ok(removed);
        }
        for (site, id) in batch {
            // The row goes first: a message naming it from now on is
            // refused, and bytes without a row are only litter.
            if state.store.remove_unattached(site, id).await? {
                state.storage().remove(site, id).await?;
                removed += 1;
            }
        }
    }
}

/// Where a relay keeps files by default: beside its store.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("attachments")
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn names_lose_folders_and_control_characters() {
        assert_eq!(clean_name("C:\\Users\\ann\\shot 1.png"), "shot 1.png");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(".htaccess"), "htaccess");
        assert_eq!(clean_name("   "), "file");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), 200);
    }
}
