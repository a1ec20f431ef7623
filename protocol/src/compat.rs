//! What a peer of an older protocol version is sent instead of what it
//! could not decode. The relay takes every version from
//! [`OLDEST_PROTOCOL_VERSION`](crate::codec::OLDEST_PROTOCOL_VERSION) on
//! and passes each message through [`body_for`] on its way to a peer that
//! said an older version in its hello.

use std::borrow::Cow;
use std::format;
use std::string::String;

use crate::frame::{Body, Files};

/// `body` as a peer of `version` can read it: unchanged for the current
/// version; for version 1, files become a text that names them.
pub fn body_for(body: &Body, version: u16) -> Cow<'_, Body> {
    match body {
        Body::Files(files) if version < 2 => Cow::Owned(Body::Text(files_as_text(files))),
        _ => Cow::Borrowed(body),
    }
}

/// Whether a peer of `version` is sent `body` as it is.
pub fn is_current(body: &Body, version: u16) -> bool {
    matches!(body_for(body, version), Cow::Borrowed(_))
}

/// The caption, then a line per file: `[file: report.pdf, 12 KB]`.
pub fn files_as_text(files: &Files) -> String {
    let mut text = files.caption.clone();
    for file in &files.files {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("[file: {}, {}]", file.name, size_words(file.size)));
    }
    text
}

/// `512 B`, `12 KB`, `3.4 MB`: for people, in powers of 1,000.
pub fn size_words(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{} KB", bytes.div_ceil(1_000)),
        _ => {
            let tenths = bytes.div_ceil(100_000);
            format!("{}.{} MB", tenths / 10, tenths % 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::vec;

    use super::*;
    use crate::frame::{FileRef, ImageSize};
    use crate::ids::AttachmentId;

    fn files() -> Body {
        let shot = FileRef {
            id: AttachmentId(1),
            name: "screen.png".into(),
            mime: "image/png".into(),
            size: 48_213,
            image: Some(ImageSize { width: 800, height: 600 }),
        };
        let manual = FileRef {
            id: AttachmentId(2),
            name: "manual.pdf".into(),
            mime: "application/pdf".into(),
            size: 3_450_001,
            image: None,
        };
        Body::Files(Files { caption: "look".into(), files: vec![shot, manual] })
    }

    #[test]
    fn version_1_reads_files_as_a_text_that_names_them() {
        assert_eq!(
            *body_for(&files(), 1),
            Body::Text("look\n[file: screen.png, 49 KB]\n[file: manual.pdf, 3.5 MB]".into())
        );
        assert!(!is_current(&files(), 1));
    }

    #[test]
    fn the_current_version_and_other_bodies_pass_unchanged() {
        assert!(is_current(&files(), 2));
        assert!(is_current(&Body::Text("hi".into()), 1));
        assert_eq!(size_words(999), "999 B");
        assert_eq!(size_words(1_000), "1 KB");
    }
}
