//! The components. Each reads the [`Model`] through [`Ctx`] and acts
//! through the [`Connection`]; none keeps chat state of its own.

pub mod conversation;
pub mod list;
pub mod login;
pub mod visitor;

use leptos::ev;
use leptos::prelude::*;
use web_sys::VisibilityState;

use crate::api::{self, Login};
use crate::connection::Connection;
use crate::model::Model;

use conversation::ConversationPane;
use list::ConversationList;
use login::LoginScreen;
use visitor::VisitorPanel;

/// The tab's title; unread messages are counted in front of it.
pub const TITLE: &str = "Kefu console";

/// What every component of the signed-in console reaches through context.
/// Copy: all handles.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub model: RwSignal<Model>,
    connection: StoredValue<Option<Connection>, LocalStorage>,
}

impl Ctx {
    pub fn get() -> Ctx {
        expect_context::<Ctx>()
    }

    /// Runs `call` on the connection, if there is one.
    pub fn connection(self, call: impl FnOnce(&Connection)) {
        self.connection.with_value(|connection| {
            if let Some(connection) = connection {
                call(connection);
            }
        });
    }

    /// Puts a conversation on screen; it counts as read.
    pub fn select(self, id: kefu_protocol::ids::ConversationId) {
        self.connection(|c| c.view_changed(|model| model.select(id)));
    }
}

/// The login screen, or the console once signed in.
#[component]
pub fn App() -> impl IntoView {
    let login = RwSignal::new(api::stored());
    let notice = RwSignal::new(None::<&'static str>);
    let sign_out = move |why: Option<&'static str>| {
        api::store(None);
        notice.set(why);
        login.set(None);
        document().set_title(TITLE);
    };
    move || match login.get() {
        Some(current) => view! { <Console login=current sign_out /> }.into_any(),
        None => view! { <LoginScreen notice on_login=move |l| login.set(Some(l)) /> }.into_any(),
    }
}

/// The signed-in console: header, banner, three columns.
#[component]
fn Console(login: Login, sign_out: impl Fn(Option<&'static str>) + Copy + Send + Sync + 'static) -> impl IntoView {
    let visible = document().visibility_state() == VisibilityState::Visible;
    let model = RwSignal::new(Model::new(visible));
    let connection = Connection::start(&login.token, model);
    if connection.is_none() {
        model.update(Model::sign_out);
    }
    let ctx = Ctx { model, connection: StoredValue::new_local(connection) };
    provide_context(ctx);
    on_cleanup(move || ctx.connection(Connection::stop));
    listen(ctx);

    // The relay refused the token for good (expired, revoked).
    Effect::new(move |_| {
        if model.with(Model::signed_out) {
            ctx.connection(Connection::stop);
            sign_out(Some("Your session has ended. Please log in again."));
        }
    });
    Effect::new(move |_| {
        let unread = model.with(Model::unread_total);
        let title = if unread > 0 { format!("({unread}) {TITLE}") } else { TITLE.to_owned() };
        document().set_title(&title);
    });
    let banner = Memo::new(move |_| model.with(Model::banner));
    let logout = move |_| {
        ctx.connection(Connection::stop);
        sign_out(None);
    };
    let name = if login.name.is_empty() { "Agent".to_owned() } else { login.name };

    view! {
        <div class="app">
            <header class="topbar">
                <div class="brand"><span class="logo" aria-hidden="true">"客"</span>"Kefu"</div>
                <div class="me">
                    <span class="me-name">{name}</span>
                    <button type="button" class="button ghost" on:click=logout>"Log out"</button>
                </div>
            </header>
            {move || banner.get().map(|text| view! { <div class="banner" role="status">{text}</div> })}
            <main class="columns">
                <ConversationList />
                <ConversationPane />
                <VisitorPanel />
            </main>
        </div>
    }
}

/// The window's events: connectivity and visibility.
fn listen(ctx: Ctx) {
    let online = window_event_listener(ev::online, move |_| ctx.connection(Connection::wake));
    let visibility = window_event_listener_untyped("visibilitychange", move |_| {
        let visible = document().visibility_state() == VisibilityState::Visible;
        ctx.connection(|c| {
            c.view_changed(|model| model.set_visible(visible));
            if visible {
                c.wake();
            }
        });
    });
    on_cleanup(move || {
        online.remove();
        visibility.remove();
    });
}

/// `HH:MM` in the agent's time zone, or the date for older days.
pub fn clock(at: kefu_protocol::ids::Timestamp) -> String {
    #[allow(clippy::cast_precision_loss)]
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.0 as f64));
    let today = js_sys::Date::new_0();
    if date.to_date_string() == today.to_date_string() {
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    } else {
        format!("{}-{:02}-{:02}", date.get_full_year(), date.get_month() + 1, date.get_date())
    }
}
