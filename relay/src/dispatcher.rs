//! One assignment pass per site at a time, so two passes cannot both fill
//! an agent's last slot: on this node by a local lock, and across nodes by
//! a [`SharedLock`] when the node is one of several (the cluster's lock in
//! Redis). The team runs its passes through [`Dispatcher::one_at_a_time`]
//! and never needs to know which kind of lock it got.

use std::fmt;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use kefu_protocol::ids::SiteId;
use tokio::sync::Mutex;

use crate::store;

/// An assignment pass, as a [`SharedLock`] runs it.
pub type Pass<'a> = BoxFuture<'a, Result<(), store::Error>>;

/// A lock every node shares.
pub trait SharedLock: Send + Sync + fmt::Debug {
    /// Runs `pass` once, while no other node holds the lock `name`.
    fn exclusive<'a>(&'a self, name: &'a str, pass: Pass<'a>) -> Pass<'a>;
}

/// What serializes assignment passes. A pass is a few small queries, and
/// passes are rare next to messages, so one lock for every site of the
/// node is enough.
#[derive(Debug, Default)]
pub struct Dispatcher {
    pass: Mutex<()>,
    shared: OnceLock<Arc<dyn SharedLock>>,
}

impl Dispatcher {
    /// From now on passes also take `lock`. Only the first call counts.
    pub fn share(&self, lock: Arc<dyn SharedLock>) {
        let _ = self.shared.set(lock);
    }

    /// Runs `pass` for `site` while no other pass of the site runs, here
    /// or on another node.
    pub async fn one_at_a_time(&self, site: SiteId, pass: Pass<'_>) -> Result<(), store::Error> {
        let _here = self.pass.lock().await;
        match self.shared.get() {
            Some(shared) => shared.exclusive(&format!("dispatch:{}", site.0), pass).await,
            None => pass.await,
        }
    }
}
