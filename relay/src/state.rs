//! What every request handler and connection shares.

use crate::attachments::Storage;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kefu_protocol::ids::SessionId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::visitor_token;
use crate::config::Config;
use crate::dispatcher::Dispatcher;
use crate::hub::Hub;
use crate::limits::Limiters;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;

/// The relay's shared state. Cloning is shallow (one `Arc`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// The parts of the shared state.
#[derive(Debug)]
pub struct Inner {
    /// How this relay was started.
    pub config: Config,
    /// Durable storage.
    pub store: Store,
    /// Fan-out to connections.
    pub hub: Hub,
    /// Serializes auto-assignment passes.
    pub dispatcher: Dispatcher,
    /// Wakes `team::keep_hours` when a site's business hours are saved.
    pub hours_changed: Notify,
    /// Cancelled when the relay starts draining; connections then tell
    /// their clients to reconnect and close.
    pub shutdown: CancellationToken,
    /// Every WebSocket connection, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// How often each address may connect and log in.
    pub limiters: Limiters,
    /// The keys visitor tokens are signed with, per site.
    pub visitor_keys: visitor_token::Keys,
    /// What `/metrics` shows; an `Arc` as the store's writer and the
    /// metrics listener hold it too.
    pub metrics: Arc<Metrics>,
    /// The relay's mail (`--smtp-url`): off unless configured.
    pub mail: Mailer,
    /// Where uploads' bytes are kept (`--attachments-dir`).
    pub storage: Storage,
    next_session: AtomicU64,
}

impl AppState {
    /// State for a relay with an open store, whose commits are counted in
    /// its metrics from now on. Mail is off; [`AppState::with_mail`] turns
    /// it on.
    pub fn new(config: Config, store: Store) -> AppState {
        AppState::with_mail(config, store, Mailer::default())
    }

    /// As [`AppState::new`], sending mail through `mail`.
    pub fn with_mail(config: Config, store: Store, mail: Mailer) -> AppState {
        let metrics = Arc::new(Metrics::new(config.redis_url.is_some()));
        store.observe_commits(Arc::clone(&metrics) as _);
        let limiters = Limiters::new(&config, &metrics);
        let storage = Storage::Local(
            config.attachments_dir.clone().unwrap_or_else(|| crate::attachments::default_dir(&config.data_dir)),
        );
        AppState(Arc::new(Inner {
            storage,
            metrics,
            limiters,
            config,
            store,
            hub: Hub::default(),
            dispatcher: Dispatcher::default(),
            hours_changed: Notify::new(),
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            visitor_keys: visitor_token::Keys::default(),
            mail,
            next_session: AtomicU64::new(1),
        }))
    }

    /// Whether this relay sends mail (`--smtp-url`): what the widget may
    /// promise ("we'll email you") and the console says.
    pub fn mail_enabled(&self) -> bool {
        self.mail.enabled()
    }

    /// Where uploads' bytes are kept.
    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }

    /// A fresh id for a new connection.
    pub fn next_session(&self) -> SessionId {
        SessionId(self.0.next_session.fetch_add(1, Ordering::Relaxed))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
