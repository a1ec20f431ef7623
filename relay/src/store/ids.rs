//! Ids handed out before their rows exist.
//!
//! A visitor's hello creates nothing in the store: the visitor learns its
//! id and its first conversation's id at once, and the rows follow with
//! its first message (`Store::save_visitor`), so a flood of hellos costs
//! no rows. Those ids cannot come from the tables, so each comes from a
//! counter in `id_blocks`, taken a block at a time: one write per
//! [`BLOCK`] ids, and nodes sharing a database never hand out the same
//! one. Ids of a block a relay did not use before it stopped are skipped,
//! never reused.

use std::ops::Range;

use kefu_protocol::ids::{ConversationId, VisitorId};
use tokio::sync::Mutex;

use super::{Error, Store, Unsigned, int};

/// How many ids one write reserves.
const BLOCK: u64 = 64;

/// The unused rest of this relay's current blocks.
#[derive(Debug, Default)]
pub(super) struct IdBlocks {
    visitors: Mutex<Range<u64>>,
    conversations: Mutex<Range<u64>>,
}

impl Store {
    /// A visitor id nobody has had.
    pub async fn new_visitor_id(&self) -> Result<VisitorId, Error> {
        self.next_id("visitors", &self.inner.ids.visitors).await.map(VisitorId)
    }

    /// A conversation id nobody has had.
    pub async fn new_conversation_id(&self) -> Result<ConversationId, Error> {
        self.next_id("conversations", &self.inner.ids.conversations).await.map(ConversationId)
    }

    async fn next_id(&self, name: &str, block: &Mutex<Range<u64>>) -> Result<u64, Error> {
        // Held across the refill, so two callers never reserve two blocks
        // where one would do.
        let mut block = block.lock().await;
        if block.is_empty() {
            let end: Unsigned =
                sqlx::query_scalar("UPDATE id_blocks SET next_id = next_id + $1 WHERE name = $2 RETURNING next_id")
                    .bind(int(BLOCK))
                    .bind(name)
                    .fetch_one(self.pool())
                    .await?;
            *block = end.0 - BLOCK..end.0;
        }
        Ok(block.next().expect("a block refilled just now is not empty"))
    }
}
