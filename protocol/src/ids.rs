//! Identifiers that cross the wire.
//!
//! Every id is a newtype so a `ConversationId` can never be passed where a
//! `MessageId` is expected. Numeric ids are assigned by the relay's store;
//! `ClientMessageId` is chosen by the sending client and makes resends
//! idempotent. Keys and tokens are strings with validating constructors, so a
//! decoded frame never carries an empty or oversized one.

use core::fmt;

use serde::{Deserialize, Serialize};

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

numeric_id!(
    /// A conversation between one visitor and the agents of one site.
    ConversationId
);
numeric_id!(
    /// A stored message, unique across the deployment.
    MessageId
);
numeric_id!(
    /// A visitor of one site, stable across reloads and days.
    VisitorId
);
numeric_id!(
    /// An agent (human or bot) of one site.
    AgentId
);
numeric_id!(
    /// A site: one website or app with its own visitors, agents and data.
    SiteId
);
numeric_id!(
    /// One WebSocket connection, for logs and support requests.
    SessionId
);

/// Position of a message in its conversation: 1, 2, 3, ... without gaps.
///
/// The relay assigns it in the transaction that stores the message, so a
/// client that holds every seq up to `n` holds the whole conversation up to
/// `n`. `Seq::ZERO` means "nothing yet".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first message.
    pub const ZERO: Seq = Seq(0);

    /// The seq right after this one.
    #[must_use]
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Chosen by the sending client, unique per sender and conversation; a
/// resend with the same id is stored once and answered with the original seq.
///
/// 128 random bits: a client picks it from its own entropy, so two clients
/// (or one client before and after a reload) never collide in practice.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientMessageId(pub u128);

impl fmt::Debug for ClientMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientMessageId({:032x})", self.0)
    }
}

impl fmt::Display for ClientMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// An uploaded file, named by the relay when it stores the bytes.
///
/// 128 random bits, so one cannot be guessed from another; serving still
/// checks who asks (see the relay's `attachments`). On the wire a number;
/// in JSON its 32 hex digits, as JavaScript's numbers stop at 53 bits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttachmentId(pub u128);

impl Serialize for AttachmentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(self) } else { serializer.serialize_u128(self.0) }
    }
}

impl<'de> Deserialize<'de> for AttachmentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AttachmentId, D::Error> {
        if deserializer.is_human_readable() {
            let hex = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            hex.parse().map_err(|_| serde::de::Error::custom("an attachment id is 32 hex digits"))
        } else {
            u128::deserialize(deserializer).map(AttachmentId)
        }
    }
}

impl fmt::Debug for AttachmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttachmentId({:032x})", self.0)
    }
}

impl fmt::Display for AttachmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl core::str::FromStr for AttachmentId {
    type Err = core::num::ParseIntError;

    /// The 32 hex digits of [`Display`](fmt::Display); nothing else.
    fn from_str(hex: &str) -> Result<AttachmentId, Self::Err> {
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            // An empty string is the one input `from_str_radix` refuses
            // with the error this type has to give.
            return u128::from_str_radix("", 16).map(AttachmentId);
        }
        u128::from_str_radix(hex, 16).map(AttachmentId)
    }
}

/// Milliseconds since the Unix epoch, as seen by the relay.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

/// Why a key or token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 1 to {max} characters of A-Z, a-z, 0-9, '-' or '_'")]
pub struct InvalidKey {
    what: &'static str,
    max: usize,
}

fn validate(what: &'static str, max: usize, value: &str) -> Result<(), InvalidKey> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(InvalidKey { what, max }) }
}

macro_rules! string_key {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, secret = $secret:tt) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps a value.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidKey> {
                let value = value.into();
                validate($what, $max, &value)?;
                Ok(Self(value))
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidKey;
            fn try_from(value: String) -> Result<Self, InvalidKey> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                string_key!(@debug $secret, self, f, $name)
            }
        }
    };
    (@debug true, $self:ident, $f:ident, $name:ident) => {
        // Secrets stay out of logs.
        write!($f, concat!(stringify!($name), "(..)"))
    };
    (@debug false, $self:ident, $f:ident, $name:ident) => {
        write!($f, concat!(stringify!($name), "({:?})"), $self.0)
    };
}

string_key!(
    /// The public key of a site, as pasted in the script tag (`data-site`).
    SiteKey, "site key", 64, secret = false
);
string_key!(
    /// The secret a visitor presents to resume its identity after a reload.
    VisitorToken, "visitor token", 128, secret = true
);
string_key!(
    /// The secret an agent got from logging in over HTTP.
    AgentToken, "agent token", 128, secret = true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(SiteKey::new("demo").is_ok());
        assert!(SiteKey::new("").is_err());
        assert!(SiteKey::new("has space").is_err());
        assert!(SiteKey::new("x".repeat(65)).is_err());
        assert!(VisitorToken::new("ab_CD-09").is_ok());
    }

    #[test]
    fn secrets_are_not_printed() {
        let token = AgentToken::new("secret123").unwrap();
        assert_eq!(format!("{token:?}"), "AgentToken(..)");
        assert_eq!(format!("{:?}", SiteKey::new("demo").unwrap()), "SiteKey(\"demo\")");
    }
}
