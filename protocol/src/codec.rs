//! Bytes <-> frames. One WebSocket binary message carries one frame.
//!
//! Decoding checks the size before parsing and the body sizes after, and
//! returns a `DecodeError` for any input: it never panics.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{Change, ClientFrame, ErrorCode, Limits, ServerFrame, Update};

/// The protocol version this crate speaks. Bump it when a peer of the
/// version before could not decode or would misread a frame it may be
/// sent: a new variant of an enum the relay sends (`Body`, say) needs a
/// bump, and the relay sends older peers something they know instead
/// (see [`compat`](crate::compat)). A new client frame needs none: an
/// older client never sends it.
///
/// - 1: text, notes, system lines.
/// - 2: [`Body::Files`](crate::frame::Body::Files).
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest version a relay of this crate still talks to.
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;

/// The relay's default limits: 64 KiB frames, 16 KiB message bodies.
pub const DEFAULT_LIMITS: Limits = Limits { max_frame_bytes: 64 * 1024, max_body_bytes: 16 * 1024 };

/// Why bytes could not become a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Refused before parsing, so an oversized frame costs no allocation.
    #[error("frame of {len} bytes is over the limit of {max}")]
    FrameTooLarge { len: usize, max: u32 },
    /// A message body or typing draft is over `Limits::max_body_bytes`.
    #[error("body of {len} bytes is over the limit of {max}")]
    BodyTooLarge { len: usize, max: u32 },
    /// The bytes do not parse as a frame: truncated, an unknown variant,
    /// invalid UTF-8, an invalid key or token, ...
    #[error("not a frame: {0}")]
    Malformed(#[from] postcard::Error),
    /// A whole frame parsed but bytes follow it; one message is one frame.
    #[error("not a frame: {0} bytes left over after it")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// The error code to send back to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            DecodeError::Malformed(_) | DecodeError::TrailingBytes(_) => ErrorCode::Malformed,
        }
    }
}

/// A frame type of this protocol.
pub trait Frame: Serialize + DeserializeOwned + sealed::Sealed {
    /// The largest user text (message body or draft) the frame carries.
    fn largest_text(&self) -> usize;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ClientFrame {}
    impl Sealed for super::ServerFrame {}
}

impl Frame for ClientFrame {
    fn largest_text(&self) -> usize {
        match self {
            ClientFrame::Send(send) => send.body.len_bytes(),
            ClientFrame::Typing(typing) => typing.draft.as_ref().map_or(0, String::len),
            ClientFrame::Visit(visit) => visit.url.len().max(visit.title.len()),
            ClientFrame::Identify(identify) => identify.user_id.len(),
            ClientFrame::Attributes(attributes) => attributes.set.iter().map(|a| a.value.len()).max().unwrap_or(0),
            ClientFrame::Update(Update { change: Change::Transfer { note, .. }, .. }) => note.len(),
            ClientFrame::Rate(rate) => rate.comment.len(),
            ClientFrame::Hello(_)
            | ClientFrame::Update(_)
            | ClientFrame::Status(_)
            | ClientFrame::Join(_)
            | ClientFrame::Ack(_)
            | ClientFrame::Ping(_)
            | ClientFrame::Pong(_)
            | ClientFrame::MailTranscript(_) => 0,
        }
    }
}

impl Frame for ServerFrame {
    fn largest_text(&self) -> usize {
        match self {
            ServerFrame::Message(message) => message.body.len_bytes(),
            ServerFrame::Typing(typing) => typing.draft.as_ref().map_or(0, String::len),
            _ => 0,
        }
    }
}

/// Encodes a frame. Never fails for this crate's frames.
pub fn encode<F: Frame>(frame: &F) -> Vec<u8> {
    // postcard only fails for maps of unknown length or a full buffer;
    // frames have neither and the buffer grows.
    postcard::to_allocvec(frame).unwrap_or_default()
}

/// Decodes one frame, enforcing `limits`.
pub fn decode<F: Frame>(bytes: &[u8], limits: &Limits) -> Result<F, DecodeError> {
    if bytes.len() > limits.max_frame_bytes as usize {
        return Err(DecodeError::FrameTooLarge { len: bytes.len(), max: limits.max_frame_bytes });
    }
    let (frame, rest) = postcard::take_from_bytes::<F>(bytes)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    let text = frame.largest_text();
    if text > limits.max_body_bytes as usize {
        return Err(DecodeError::BodyTooLarge { len: text, max: limits.max_body_bytes });
    }
    Ok(frame)
}

/// `text` cut to at most `max_bytes` bytes (not characters) at a character
/// boundary: how clients and the relay shorten user text that would not
/// fit a limit. Limits in this protocol are bytes, as the codec counts.
pub fn clip_bytes(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Reads the protocol version from the start of an encoded `Hello`, even
/// when the rest of it does not decode with this crate's types, so a relay
/// can answer "unsupported version" rather than "malformed".
pub fn peek_hello_version(bytes: &[u8]) -> Option<u16> {
    let (variant, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    if variant != 0 {
        return None; // not ClientFrame::Hello
    }
    postcard::take_from_bytes::<u16>(rest).ok().map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_never_splits_a_character() {
        assert_eq!(clip_bytes("hello".into(), 10), "hello");
        assert_eq!(clip_bytes("hello".into(), 3), "hel");
        assert_eq!(clip_bytes("中文字".into(), 4), "中"); // 3 bytes each
        assert_eq!(clip_bytes("中文字".into(), 6), "中文");
        assert_eq!(clip_bytes("👋".into(), 3), "");
    }
}
