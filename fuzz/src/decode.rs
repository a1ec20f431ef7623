//! The checks of the `decode_frame` target: whatever bytes come in, the
//! decoder answers without panicking, and what it accepts is a frame that
//! survives a round trip within the limits it enforced.
//!
//! `protocol/tests/fuzz_corpus.rs` includes this file to replay the
//! committed seeds through the same checks on the stable toolchain, so it
//! depends on `kefu_protocol` only.

use std::fmt::Debug;

use kefu_protocol::codec::{self, DecodeError, Frame};
use kefu_protocol::frame::Limits;
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame};

/// Every input is decoded under each of these: the clients' limits, the
/// relay's (it checks message bodies itself, so only the frame size
/// counts), and tiny ones that short inputs can reach.
pub const LIMITS: [Limits; 3] = [
    DEFAULT_LIMITS,
    Limits { max_frame_bytes: DEFAULT_LIMITS.max_frame_bytes, max_body_bytes: DEFAULT_LIMITS.max_frame_bytes },
    Limits { max_frame_bytes: 48, max_body_bytes: 4 },
];

/// No limit at all: what a frame is, regardless of its size.
const UNLIMITED: Limits = Limits { max_frame_bytes: u32::MAX, max_body_bytes: u32::MAX };

/// Decodes `bytes` as a client and as a server frame under every limit set,
/// and peeks at a hello's version; panics if any answer is wrong.
pub fn check_bytes(bytes: &[u8]) {
    for limits in &LIMITS {
        check_as::<ClientFrame>(bytes, limits);
        check_as::<ServerFrame>(bytes, limits);
    }
    check_peek(bytes);
}

fn check_as<F: Frame + Debug + PartialEq>(bytes: &[u8], limits: &Limits) {
    let result = codec::decode::<F>(bytes, limits);
    match &result {
        Ok(frame) => check_round_trip(bytes, frame, limits),
        Err(DecodeError::FrameTooLarge { len, max }) => {
            assert_eq!((*len, *max), (bytes.len(), limits.max_frame_bytes), "size error names the input and limit");
            assert!(*len > *max as usize, "refused a frame within the limit: {len} <= {max}");
        }
        Err(DecodeError::BodyTooLarge { len, max }) => {
            assert_eq!(*max, limits.max_body_bytes);
            assert!(*len > *max as usize, "refused a body within the limit: {len} <= {max}");
            assert!(bytes.len() <= limits.max_frame_bytes as usize, "an oversized frame is refused for its size first");
            // Without the body limit it is a frame, with a text of exactly that size.
            let frame = codec::decode::<F>(bytes, &UNLIMITED).expect("only the body limit refused it");
            assert_eq!(frame.largest_text(), *len);
        }
        Err(DecodeError::TrailingBytes(rest)) => {
            assert!(*rest > 0 && *rest < bytes.len(), "{rest} trailing bytes of {}", bytes.len());
            let head = &bytes[..bytes.len() - rest];
            assert!(codec::decode::<F>(head, &UNLIMITED).is_ok(), "the bytes before the trailing ones are a frame");
        }
        Err(DecodeError::Malformed(_)) => {}
    }
    if let Err(error) = result {
        // Both are sent to the peer; neither may panic.
        let _ = (error.code(), error.to_string());
    }
}

/// A decoded frame encodes to at most as many bytes as it came from (the
/// encoding is the shortest), within the limits it was decoded under, and
/// decodes to the same value again.
fn check_round_trip<F: Frame + Debug + PartialEq>(bytes: &[u8], frame: &F, limits: &Limits) {
    assert!(bytes.len() <= limits.max_frame_bytes as usize, "accepted a frame over the size limit");
    assert!(frame.largest_text() <= limits.max_body_bytes as usize, "accepted a body over the limit");
    let again = codec::encode(frame);
    assert!(again.len() <= bytes.len(), "re-encoding grew from {} to {} bytes: {frame:?}", bytes.len(), again.len());
    let back = codec::decode::<F>(&again, limits).expect("a re-encoded frame decodes under the same limits");
    assert_eq!(&back, frame, "round trip changed the frame");
    assert_eq!(codec::encode(&back), again, "encoding is deterministic");
}

/// The relay reads a hello's version even when the rest does not parse; on
/// a frame that does parse it must read a hello's version and nothing else.
fn check_peek(bytes: &[u8]) {
    let peeked = codec::peek_hello_version(bytes);
    match codec::decode::<ClientFrame>(bytes, &UNLIMITED) {
        Ok(ClientFrame::Hello(hello)) => assert_eq!(peeked, Some(hello.version), "peeked version of a hello"),
        Ok(frame) => assert_eq!(peeked, None, "peeked a version in {frame:?}"),
        Err(_) => {}
    }
}
