//! What a file is, from its first bytes: the relay never believes a
//! name's extension or a client's `Content-Type`.

/// What the first bytes say a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image browsers show and the relay can read: PNG, JPEG, GIF, WebP.
    Image(&'static str),
    /// Something recognised that is not a program: a PDF, an archive, a
    /// document, a page (HTML, XML, SVG), audio or video. Served as a
    /// download, `application/octet-stream`, so a browser never runs it.
    Document(&'static str),
    /// Nothing recognised: plain text, CSV, a log. Kept as
    /// `application/octet-stream`.
    Unknown,
    /// A program or a library: refused.
    Program(&'static str),
}

/// The types shown inline: images with nothing in them that runs.
const PLAIN_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Sniffs `head`, the first bytes of a file.
pub fn sniff(head: &[u8]) -> Kind {
    let Some(found) = infer::get(head) else {
        return Kind::Unknown;
    };
    let mime = found.mime_type();
    match found.matcher_type() {
        infer::MatcherType::App => Kind::Program(mime),
        infer::MatcherType::Image if PLAIN_IMAGES.contains(&mime) => Kind::Image(mime),
        // Other images (TIFF, HEIC, ICO...) are files to download.
        _ => Kind::Document(mime),
    }
}

impl Kind {
    /// The type the file is stored and served with, if it is accepted.
    pub fn accepted(self) -> Option<&'static str> {
        match self {
            Kind::Image(mime) | Kind::Document(mime) => Some(mime),
            Kind::Unknown => Some("application/octet-stream"),
            Kind::Program(_) => None,
        }
    }

    /// For a refusal: what the file was taken for.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Image(mime) | Kind::Document(mime) | Kind::Program(mime) => mime,
            Kind::Unknown => "unrecognised",
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, Kind::Image(_))
    }
}

/// Whether a stored type is shown inline rather than downloaded.
pub fn is_plain_image(mime: &str) -> bool {
    PLAIN_IMAGES.contains(&mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_decide_not_the_name() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Kind::Image("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Kind::Document("application/pdf"));
        // Pages and drawings are documents: kept, never shown inline.
        assert_eq!(sniff(b"<!doctype html><script>alert(1)</script>"), Kind::Document("text/html"));
        let svg = sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>");
        assert!(!svg.is_image() && svg.accepted().is_some(), "{svg:?}");
        assert_eq!(sniff(b"just some words"), Kind::Unknown);
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert!(matches!(sniff(&elf), Kind::Program(_)), "{:?}", sniff(&elf));
        assert!(matches!(sniff(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff"), Kind::Program(_)));
        assert_eq!(Kind::Unknown.accepted(), Some("application/octet-stream"));
        assert!(!is_plain_image("image/svg+xml"));
    }
}
