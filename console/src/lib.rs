//! The agent console: a Leptos app compiled to WebAssembly, served by the
//! relay at `/console`. Agents log in, see every open conversation of
//! their site live, and answer.
//!
//! Like the widget it keeps no reliability logic of its own: the protocol's
//! [`Session`](kefu_protocol::session::Session), as an agent that follows
//! every open conversation (`auto_join`), resends, deduplicates and orders.
//!
//! # Layout
//!
//! - [`api`]: `POST /api/login`, and the token kept in `sessionStorage`.
//! - [`connection`]: the WebSocket and the session; the only place that
//!   touches bytes. Carries out the session's actions, feeds the model and
//!   sends the delivered and read acks.
//! - [`model`]: the conversations, visitors, unread counts and selection as
//!   plain data, tested on the host.
//! - `ui`: the components: the login screen, then the three columns
//!   (conversation list, conversation, visitor panel).
//!
//! `main.rs` only mounts [`ui::App`] on `<body>`.

pub mod api;
pub mod connection;
pub mod model;
pub mod ui;

/// Mounts the console on `<body>`. Only meaningful in a browser.
pub fn mount() {
    use leptos::prelude::*;

    document().set_title(ui::TITLE);
    leptos::mount::mount_to_body(ui::App);
}
