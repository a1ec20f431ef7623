//! Keeping the link alive. The relay pings; clients may ping too.

use serde::{Deserialize, Serialize};

/// "Are you there?" Answer with a `Pong` carrying the same nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub nonce: u64,
}

/// The answer to a `Ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub nonce: u64,
}
