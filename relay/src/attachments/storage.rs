//! Where the bytes of uploads are kept. One small interface, so the
//! relay can keep them in a local folder (one node) or, next, in an
//! S3-compatible object store (several nodes).

use std::io;
use std::path::{Path, PathBuf};

use kefu_protocol::ids::{AttachmentId, SiteId};

/// The files' home.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A folder: `{dir}/{site}/{id}`, uploads in progress in `{dir}/partial`.
    Local(PathBuf),
}

impl Storage {
    /// A fresh path for an upload in progress, on the same file system
    /// as the kept files so keeping one is a rename.
    pub async fn partial_path(&self, id: AttachmentId) -> io::Result<PathBuf> {
        let Storage::Local(dir) = self;
        let partial = dir.join("partial");
        tokio::fs::create_dir_all(&partial).await?;
        Ok(partial.join(id.to_string()))
    }

    /// Keeps the complete upload at `partial` as `site`'s file `id`.
    pub async fn keep(&self, site: SiteId, id: AttachmentId, partial: &Path) -> io::Result<()> {
        let path = self.path(site, id);
        if let Some(folder) = path.parent() {
            tokio::fs::create_dir_all(folder).await?;
        }
        tokio::fs::rename(partial, &path).await
    }

    /// Opens `site`'s file `id` for reading, with its length.
    pub async fn open(&self, site: SiteId, id: AttachmentId) -> io::Result<(tokio::fs::File, u64)> {
        let file = tokio::fs::File::open(self.path(site, id)).await?;
        let len = file.metadata().await?.len();
        Ok((file, len))
    }

    /// Removes `site`'s file `id`; removing one that is gone is no error.
    pub async fn remove(&self, site: SiteId, id: AttachmentId) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(site, id)).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    fn path(&self, site: SiteId, id: AttachmentId) -> PathBuf {
        let Storage::Local(dir) = self;
        dir.join(site.to_string()).join(id.to_string())
    }
}
