//! Files in a message. The bytes go over HTTP first (`POST
//! /api/attachments`), which answers with an [`AttachmentId`]; a message
//! then names its files by id. Frames never carry the bytes.

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::AttachmentId;

/// Most files one message carries.
pub const MAX_FILES_PER_MESSAGE: usize = 10;

/// A message with files and an optional caption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    /// Text shown with the files; may be empty.
    pub caption: String,
    /// In the order the sender chose them.
    pub files: Vec<FileRef>,
}

/// One file of a message, as the relay stored it.
///
/// A sender fills in only `id`: the relay replaces everything else with
/// what it found when it took the upload, so a name, a type or a size
/// in a send is never believed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub id: AttachmentId,
    /// The file's name as uploaded, without any folder.
    pub name: String,
    /// The type sniffed from the bytes (`image/png`, `application/pdf`).
    pub mime: String,
    /// Bytes.
    pub size: u64,
    /// For an image the relay could read: its size in pixels, so a
    /// client can keep room for it before it loads.
    pub image: Option<ImageSize>,
}

impl FileRef {
    /// A reference to an upload by its id alone: what a sender puts in
    /// a send.
    pub fn by_id(id: AttachmentId) -> FileRef {
        FileRef { id, name: String::new(), mime: String::new(), size: 0, image: None }
    }
}

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}
