//! The components. Each reads the [`Model`] through [`Ctx`] and acts
//! through the [`Connection`]; none keeps chat state of its own.

pub mod composer;
pub mod form;
pub mod header;
pub mod icons;
pub mod messages;
pub mod survey;
pub mod transcript;

use leptos::ev;
use leptos::html::Textarea;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{KeyboardEvent, MessageEvent, VisibilityState};

use crate::bridge::{self, Inbound, Parent};
use crate::config::{Config, Resume};
use crate::connection::Connection;
use crate::i18n::Strings;
use crate::model::Model;
use crate::persist::Store;

use composer::Composer;
use form::{ContactAsk, Forms, PrechatForm};
use header::{Banner, Header};
use messages::MessageList;
use survey::Survey;
use transcript::Transcript;

/// What every component reaches through context. Copy: all handles.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub model: RwSignal<Model>,
    /// `None` when the page named no valid site: nothing to connect to.
    connection: StoredValue<Option<Connection>, LocalStorage>,
    parent: StoredValue<Parent>,
    pub text: &'static Strings,
    /// Inside the loader's iframe (a close button, Escape closes).
    pub embed: bool,
    /// The composer's text box, for [`Ctx::focus_composer`].
    pub composer: NodeRef<Textarea>,
    pub emoji_open: RwSignal<bool>,
    /// A mail's resume link was refused: the banner says so.
    pub resume_refused: bool,
}

impl Ctx {
    pub fn get() -> Ctx {
        // Not `expect_context`: its panic message prints a `Location` and
        // the type name with `{:?}`, which links Debug formatting.
        use_context::<Ctx>().expect("App provides the Ctx")
    }

    /// Runs `call` on the connection, if there is one.
    pub fn connection(self, call: impl FnOnce(&Connection)) {
        self.connection.with_value(|connection| {
            if let Some(connection) = connection {
                call(connection);
            }
        });
    }

    /// Shows or hides the panel; read marks and the unread count follow.
    pub fn set_open(self, open: bool) {
        match self.connection.with_value(Option::is_some) {
            true => self.connection(|c| c.view_changed(|model| model.set_open(open))),
            false => self.model.update(|model| model.set_open(open)),
        }
        if open {
            self.focus_composer();
        } else {
            self.emoji_open.set(false);
        }
    }

    /// Moves the focus to the composer once the browser has laid the
    /// panel out (a hidden text box cannot take it).
    pub fn focus_composer(self) {
        request_animation_frame(move || {
            if let Some(input) = self.composer.get_untracked() {
                let _ = input.focus();
            }
        });
    }

    /// The visitor closed the panel: the parent page hides the iframe.
    pub fn close(self) {
        self.set_open(false);
        self.parent.with_value(Parent::close);
    }
}

/// The whole widget.
#[component]
pub fn App(config: Config) -> impl IntoView {
    let visible = document().visibility_state() == VisibilityState::Visible;
    let model = RwSignal::new(Model::new(config.lang, config.start_open, visible, kefu_protocol::ids::Seq::ZERO));
    let parent = Parent::new(config.parent_origin.clone());
    let ctx = Ctx {
        model,
        connection: StoredValue::new_local(None),
        parent: StoredValue::new(parent.clone()),
        text: config.lang.strings(),
        embed: config.embed,
        composer: NodeRef::new(),
        emoji_open: RwSignal::new(false),
        resume_refused: config.resume == Some(Resume::Refused),
    };
    provide_context(ctx);
    // Listening before saying ready, so the parent's first `open` is heard.
    listen(ctx);
    ctx.parent.with_value(Parent::ready);
    if config.start_open && !coarse_pointer() {
        ctx.focus_composer();
    }
    match config.site.clone() {
        Some(site) => {
            if let Some(Resume::As(visitor)) = &config.resume {
                Store::open(&site, parent.origin()).resume_as(visitor);
            }
            ctx.connection.set_value(Some(Connection::start(site, model, parent)));
        }
        None => model.update(Model::set_unavailable),
    }
    if let Some(token) = config.identity.clone() {
        obey(ctx, bridge::signed_user(token));
    }
    let forms = Forms::provide(ctx, config.look.clone());
    let prechat = Memo::new(move |_| forms.prechat_due(ctx));
    let contact = Memo::new(move |_| forms.contact_due(ctx));

    let style = format!("--kefu-brand:{};--kefu-on-brand:{}", config.brand.css(), config.brand.text_css());
    let class = if config.embed { "kefu kefu-embed" } else { "kefu kefu-page" };
    view! {
        <div class=class style=style>
            <Header />
            <Banner />
            <MessageList />
            <Survey />
            <Transcript />
            {move || match prechat.get() {
                true => view! { <PrechatForm /> }.into_any(),
                false => view! {
                    {move || contact.get().then(|| view! { <ContactAsk /> })}
                    <Composer />
                }
                .into_any(),
            }}
        </div>
    }
}

/// The window's events: connectivity, visibility, the parent page, keys.
fn listen(ctx: Ctx) {
    // The listeners live as long as the page: the widget is never unmounted.
    let _ = window_event_listener(ev::online, move |_| ctx.connection(Connection::wake));
    let _ = window_event_listener(ev::pageshow, move |_| ctx.connection(Connection::wake));
    let _ = window_event_listener_untyped("visibilitychange", move |_| {
        let visible = document().visibility_state() == VisibilityState::Visible;
        ctx.connection(|c| {
            c.view_changed(|model| model.set_visible(visible));
            if visible {
                c.wake();
            }
        });
    });
    let _ = window_event_listener(ev::message, move |event: MessageEvent| {
        if !ctx.parent.with_value(|parent| parent.sent(&event)) {
            return;
        }
        if let Some(inbound) = Inbound::parse(&event.data()) {
            obey(ctx, inbound);
        }
    });
    // The native bridge: only a script running in this page (a webview's
    // injected script) can dispatch an event on its window.
    let _ = window_event_listener_untyped("kefu", move |event| {
        let detail = event.unchecked_ref::<web_sys::CustomEvent>().detail();
        if let Some(inbound) = Inbound::parse(&detail) {
            obey(ctx, inbound);
        }
    });
    // Links open through the native app, outside its webview, when one
    // listens; as usual otherwise.
    let _ = window_event_listener(ev::click, move |event: web_sys::MouseEvent| {
        let link = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.closest("a[href]").ok().flatten());
        let url = link
            .and_then(|a| a.get_attribute("href"))
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"));
        if let Some(url) = url
            && bridge::native::open_link(&url)
        {
            event.prevent_default();
        }
    });
    let _ = window_event_listener(ev::keydown, move |event: KeyboardEvent| {
        if event.key() != "Escape" || event.is_composing() {
            return;
        }
        if ctx.emoji_open.get_untracked() {
            ctx.emoji_open.set(false);
            ctx.focus_composer();
        } else if ctx.embed {
            ctx.close();
        }
    });
}

/// Carries out what the parent page or the native app asked for.
fn obey(ctx: Ctx, inbound: Inbound) {
    match inbound {
        Inbound::Open => ctx.set_open(true),
        Inbound::Close => ctx.set_open(false),
        Inbound::SetUser(identify) => {
            let email = identify.email.is_some();
            ctx.model.update(|model| model.identified(email));
            ctx.connection(|c| c.with_session(|s| s.identify(identify)));
        }
        Inbound::SetAttributes(set) => ctx.connection(|c| c.with_session(|s| s.set_attributes(set))),
        Inbound::Page(visit) => ctx.connection(|c| c.with_session(|s| s.visit(visit))),
    }
}

/// A touch screen: focusing the composer there would pop the keyboard up
/// over the conversation before the visitor asked for it.
fn coarse_pointer() -> bool {
    window().match_media("(pointer: coarse)").ok().flatten().is_some_and(|query| query.matches())
}
