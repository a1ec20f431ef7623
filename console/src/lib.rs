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
//! - [`api`]: the HTTP API: cookie login, `/api/me`, the CSRF token kept
//!   in memory, and the admin and history calls.
//! - [`connection`]: the agent's session, hosted on a WebSocket by the
//!   shared `kefu-webclient` crate (the only place that touches bytes);
//!   feeds the model, sends the delivered and read acks, and carries out
//!   what the agent does.
//! - [`model`]: the conversations (messages, notes, system lines), who
//!   handles them, the folders, tabs, unread counts, the team and the link
//!   as plain data, tested on the host.
//! - [`notify`]: the beep and the browser notification for news.
//! - `ui`: the components: the login screen, then the inbox (folders and
//!   team, tabs and the conversation, visitor panel) and the admin pages.
//!
//! `main.rs` only mounts [`ui::App`] on `<body>`.

pub mod api;
pub mod connection;
pub mod model;
pub mod notify;
pub mod ui;

/// Mounts the console on `<body>`. Only meaningful in a browser.
pub fn mount() {
    use leptos::prelude::*;

    kefu_webclient::report_panics(
        "Something went wrong and the console stopped. Reload the page to continue.",
        "crash",
    );
    document().set_title(ui::TITLE);
    leptos::mount::mount_to_body(ui::App);
}
