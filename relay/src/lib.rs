//! Kefu's relay: one binary that stores every message and fans it out.
//!
//! # Layout
//!
//! Data flows from a socket to the store and back out to every participant:
//!
//! - [`ws`]: the `/ws` endpoint. `ws::socket` is the only place that turns
//!   bytes into frames and back; `ws::connection` runs one client's
//!   connection (hello, replay, live traffic, heartbeats).
//! - [`store`]: SQLite (one node) or PostgreSQL (several nodes). A
//!   message gets its seq in the transaction that stores it; a
//!   group-commit writer batches many per fsync.
//! - [`hub`]: in-process fan-out to the connections following a
//!   conversation or a site, each through a bounded queue; presence; the
//!   revocation of agent logins. Knows no other module.
//! - [`cluster`]: several relay nodes as one, over Redis: the hub's
//!   frames and revocations to and from the other nodes, their agents'
//!   presence, the assignment lock. Depends on the hub, never the other
//!   way. Redis only helps; the store stays the truth.
//! - [`team`]: who answers which conversation: take, transfer, close,
//!   reopen, auto-assignment within capacity, the agents' roster.
//! - [`hours`]: a site's business hours (zone, weekly intervals, dated
//!   exceptions): open now, next opening and closing. Pure; the store
//!   keeps them, team and the widget's look ask them.
//! - [`attachments`]: files in the chat: streamed uploads under a limit,
//!   the type sniffed from the bytes, the bytes' storage, the sweep of
//!   uploads no message named. The store keeps their rows; `http` is
//!   their door.
//! - [`survey`]: a visitor's satisfaction rating of a closed chat, once
//!   per close, as a system line.
//! - [`dispatcher`]: one assignment pass per site at a time, here and
//!   (behind a small lock trait the cluster implements) across nodes.
//! - [`auth`]: argon2id passwords, tokens, the first-start bootstrap;
//!   `auth::cookie`: the console's session cookie and the one
//!   same-origin check, for the HTTP API and the WebSocket alike.
//! - [`identity`]: the visitor identities a site's backend signs (tokens
//!   with an expiry, the older plain hash), and what "replayed" means.
//! - [`http`]: the HTTP API: login with cookie sessions and CSRF, the
//!   admin's agents, site settings and canned replies, history and the
//!   visitor panel for the console, `/healthz` and `/readyz`.
//! - [`follow_up`]: email follow-up for visitors who left: the mails'
//!   text, their signed resume and unsubscribe links.
//! - [`mail`]: the mail the relay sends (`--smtp-url`): the jobs the
//!   store's outbox holds, composing each when it is sent, and the task
//!   per node that sends them with retries. Depends on the store.
//! - [`limits`]: rate limits per address (connects, logins) and per socket.
//! - [`metrics`]: the Prometheus metrics and `/metrics`. Everything above
//!   counts into it; it knows none of them (the store reports through an
//!   observer trait of its own).
//! - [`web`]: the built web apps: `kefu.js`, the widget page, `/demo`,
//!   from the copy embedded in the binary or from `--web-dir`.
//! - [`config`]: flags and environment variables.
//! - [`tls`]: `--tls-cert` and `--tls-key`, read again on SIGHUP.
//! - [`server`]: `run(listener, config, shutdown)` ties it together.
//! - [`cli`]: the command line: `serve` (the default), `site create`,
//!   `site list`, `check`; `main.rs` only parses it and calls these.

pub mod attachments;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dispatcher;
pub mod error;
pub mod follow_up;
pub mod hours;
pub mod http;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod server;
pub mod state;
pub mod store;
pub mod survey;
pub mod team;
pub mod tls;
pub mod web;
pub mod ws;

pub use config::Config;
pub use server::{app, run};
pub use state::AppState;
