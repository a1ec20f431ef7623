//! One connection's queue of frames to send, and what can interrupt it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::task::AtomicWaker;

use super::Published;
use super::revocation::Revoked;

/// One connection's queue of frames to send. Not a tokio channel: that
/// allocates about 0.8 KiB per connection up front (its state is cache
/// padded, its first block has 32 slots), which an idle connection never
/// uses. This queue allocates only when frames arrive. A std mutex: it is
/// held only to push or pop.
#[derive(Debug)]
pub(super) struct Queue {
    state: Mutex<Queued>,
    capacity: usize,
    /// The connection waiting for a frame.
    pub(super) waker: AtomicWaker,
}

#[derive(Debug, Default)]
pub(super) struct Queued {
    pub(super) frames: VecDeque<Arc<Published>>,
    /// Why the connection must end, once it must: said before any frame
    /// still queued.
    interrupted: Option<Interrupted>,
}

/// Why a connection's queue stopped handing out frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The queue overflowed: the connection did not keep up with what it
    /// was sent.
    TooSlow,
    /// The agent's access ended or changed (see [`super::revocation`]).
    Revoked(Revoked),
}

/// Slots an empty queue may keep for the next frames.
const KEPT_QUEUE_CAPACITY: usize = 16;

impl Queue {
    pub(super) fn new(capacity: usize) -> Queue {
        Queue { state: Mutex::default(), capacity: capacity.max(1), waker: AtomicWaker::new() }
    }

    pub(super) fn push(&self, published: &Arc<Published>) {
        {
            let mut queued = self.state();
            if queued.frames.len() >= self.capacity {
                queued.interrupted.get_or_insert(Interrupted::TooSlow);
            } else {
                queued.frames.push_back(Arc::clone(published));
            }
        }
        self.waker.wake();
    }

    /// Ends the connection for `why`, ahead of anything still queued: a
    /// revoked agent is sent nothing more.
    pub(super) fn revoke(&self, why: Revoked) {
        self.state().interrupted = Some(Interrupted::Revoked(why));
        self.waker.wake();
    }

    /// The next frame, `Ok(None)` if there is none yet, or why the
    /// connection must end.
    pub(super) fn pop(&self) -> Result<Option<Arc<Published>>, Interrupted> {
        let mut queued = self.state();
        if let Some(interrupted) = queued.interrupted {
            return Err(interrupted);
        }
        let published = queued.frames.pop_front();
        // What a burst grew the queue to is not kept by a connection that
        // has caught up.
        if queued.frames.is_empty() && queued.frames.capacity() > KEPT_QUEUE_CAPACITY {
            queued.frames.shrink_to(KEPT_QUEUE_CAPACITY);
        }
        Ok(published)
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, Queued> {
        // Each change is one push or pop: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
