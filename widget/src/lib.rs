//! The visitor's chat widget: a Leptos app compiled to WebAssembly, shown
//! in the loader's iframe (`/widget?site=KEY&embed=1&...`) or as a whole
//! page for mobile webviews (`/c/KEY`).
//!
//! The widget keeps no reliability logic of its own: the protocol's
//! [`Session`](kefu_protocol::session::Session) resends, deduplicates and
//! orders; the widget hosts it and shows what it reports.
//!
//! # Layout
//!
//! - [`config`]: what the relay wrote into the page (site, parent origin)
//!   and what the URL says (language, colour, embed mode).
//! - [`connection`]: the visitor's session, hosted on a WebSocket by the
//!   shared `kefu-webclient` crate (the only place that touches bytes);
//!   tells the session what the visitor did and feeds the model.
//! - [`forms`]: the site's pre-chat form and survey switches as the
//!   relay wrote them into the page, and the checks of what visitors fill
//!   in.
//! - [`persist`]: what survives a reload in `localStorage`: the visitor's
//!   identity, the outbox, the read mark.
//! - [`model`]: the chat as plain data (messages, marks, link, typing,
//!   unread), tested on the host.
//! - [`typing`]: when to tell agents the visitor is typing.
//! - [`bridge`]: `postMessage` to and from the page that embeds the widget.
//! - [`i18n`]: the texts in English, 简体中文 and 繁體中文.
//! - `ui`: the components, which read the model and call the connection.
//!
//! `main.rs` only reads the config and mounts [`ui::App`] on `<body>`.

pub mod bridge;
pub mod config;
pub mod connection;
pub mod forms;
pub mod i18n;
pub mod model;
pub mod persist;
pub mod typing;
pub mod ui;

/// Reads the config from the page URL and mounts the widget on `<body>`.
/// Only meaningful in a browser.
pub fn mount() {
    use leptos::prelude::*;

    let location = window().location();
    let search = location.search().unwrap_or_default();
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok();
    let meta = |name: &str| {
        let element = document().query_selector(&format!("meta[name={name}]")).ok().flatten()?;
        element.get_attribute("content").filter(|value| !value.is_empty())
    };
    let granted = config::Granted { site: meta("kefu-site"), parent: meta("kefu-parent") };
    let resume = config::Resume::from_meta(meta("kefu-resume").as_deref());
    let browser_lang = window().navigator().language();
    let mut config = config::Config::from_page(
        granted,
        |name| params.as_ref().and_then(|params| params.get(name)),
        browser_lang.as_deref(),
    );
    config.look = forms::Look::from_page(meta("kefu-look"));
    kefu_webclient::report_panics(config.lang.strings().crashed, "kefu-crash");
    let fragment = location.hash().unwrap_or_default();
    config.identity = config::identity_from_fragment(&fragment);
    let mut search = search;
    if resume.is_some()
        && let Some(params) = &params
    {
        params.delete("resume");
        let rest = params.to_string().as_string().unwrap_or_default();
        search = if rest.is_empty() { rest } else { format!("?{rest}") };
    }
    config.resume = resume;
    if (!fragment.is_empty() || config.resume.is_some())
        && let Ok(history) = window().history()
    {
        // The token has been read: keep it out of the address bar, the
        // history and anything the visitor shares.
        let path = location.pathname().unwrap_or_default();
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&format!("{path}{search}")));
    }
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("lang", config.lang.tag());
    }
    document().set_title(config.lang.strings().title);
    leptos::mount::mount_to_body(move || view! { <ui::App config /> });
}
