//! The components. Each reads the [`Model`] through [`Ctx`] and acts
//! through the [`Connection`] or the HTTP [`api`]; none keeps chat state of
//! its own.

pub mod admin;
pub mod composer;
pub mod conversation;
pub mod forms;
pub mod hours;
pub mod list;
pub mod login;
pub mod mail;
pub mod sites;
pub mod visitor;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use kefu_protocol::frame::{AgentStatus, Presence};
use kefu_protocol::ids::{ConversationId, Timestamp};
use leptos::ev;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::VisibilityState;

use crate::api::{self, AgentView, Canned, Me};
use crate::connection::{Connection, wall_clock};
use crate::model::Model;
use crate::notify;

use admin::{AgentsPage, CannedPage, SitePage};
use conversation::ConversationPane;
use list::Sidebar;
use login::LoginScreen;
use sites::SitesPage;
use visitor::VisitorPanel;

/// The tab's title; unread messages are counted in front of it.
pub const TITLE: &str = "Kefu console";

/// Where the agent's online/away choice is kept across reloads.
const STATUS_KEY: &str = "kefu-console-status";

/// Toasts go away by themselves after this long.
const TOAST_FOR: Duration = Duration::from_secs(6);

/// The console's screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Inbox,
    Agents,
    Site,
    Canned,
    /// Every site of the deployment: owners only.
    Sites,
}

impl Page {
    fn from_hash(hash: &str) -> Page {
        match hash.trim_start_matches('#') {
            "agents" => Page::Agents,
            "settings" => Page::Site,
            "canned" => Page::Canned,
            "sites" => Page::Sites,
            _ => Page::Inbox,
        }
    }

    fn hash(self) -> &'static str {
        match self {
            Page::Inbox => "#inbox",
            Page::Agents => "#agents",
            Page::Site => "#settings",
            Page::Canned => "#canned",
            Page::Sites => "#sites",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Page::Inbox => "Inbox",
            Page::Agents => "Agents",
            Page::Site => "Settings",
            Page::Canned => "Canned replies",
            Page::Sites => "Sites",
        }
    }
}

/// What every component of the signed-in console reaches through context.
/// Copy: all handles.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub model: RwSignal<Model>,
    connection: StoredValue<Option<Connection>, LocalStorage>,
    pub me: StoredValue<AgentView>,
    /// An owner of the deployment: the Sites page too.
    pub owner: bool,
    pub page: RwSignal<Page>,
    /// The site's canned replies, for the composer.
    pub canned: RwSignal<Vec<Canned>>,
    /// What the agent was writing in each conversation, kept across tab
    /// switches; not reactive, read when a composer appears.
    pub drafts: StoredValue<BTreeMap<ConversationId, String>>,
    /// The wall clock, ticking every few seconds, for "waiting 3 min".
    pub now: RwSignal<Timestamp>,
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

    /// Puts a conversation on screen in a tab; it counts as read.
    pub fn select(self, id: ConversationId) {
        self.show(Page::Inbox);
        self.connection(|c| c.view_changed(|model| model.select(id)));
    }

    /// Shows `page`. Only a change of page notifies: the inbox is built
    /// once and stays while the agent clicks around in it (rebuilding it
    /// would drop the visitor panel and its details mid-load).
    pub fn show(self, page: Page) {
        if self.page.get_untracked() != page {
            self.page.set(page);
        }
    }

    /// Shows a short message at the bottom of the screen.
    pub fn toast(self, text: impl Into<String>) {
        let text = text.into();
        self.connection(|c| {
            c.view_changed(|model| {
                model.toast(text);
            });
        });
    }

    /// Reloads the canned replies (after an admin changed them).
    pub fn reload_canned(self) {
        spawn_local(async move {
            if let Ok(list) = api::canned().await {
                self.canned.set(list);
            }
        });
    }
}

/// Runs `task` for as long as the component that starts it is on screen.
/// Pages fetch and save into signals of their own; when the agent has moved
/// on before the answer comes, those signals are gone, and the task is
/// dropped with them instead of writing into freed memory (a panic in
/// wasm). Work whose result belongs to the whole console uses `spawn_local`.
pub fn spawn_while_shown(task: impl Future<Output = ()> + 'static) {
    leptos::task::spawn_local_scoped_with_cancellation(task);
}

/// The login screen, or the console once signed in. The session cookie is
/// checked first, so a reload stays signed in.
#[component]
pub fn App() -> impl IntoView {
    let me = RwSignal::new(None::<Me>);
    let checking = RwSignal::new(true);
    let notice = RwSignal::new(None::<&'static str>);
    spawn_local(async move {
        match api::me().await {
            Ok(found) => me.set(found),
            Err(error) if error.status == 0 => notice.set(Some("Cannot reach the relay. Check the connection.")),
            Err(_) => {}
        }
        checking.set(false);
    });
    let sign_out = move |why: Option<&'static str>| {
        notice.set(why);
        me.set(None);
        document().set_title(TITLE);
    };
    move || {
        if checking.get() {
            return view! { <div class="loading" aria-busy="true"><Logo /></div> }.into_any();
        }
        match me.get() {
            Some(current) => view! { <Console me=current.agent owner=current.owner sign_out /> }.into_any(),
            None => view! { <LoginScreen notice on_login=move |m| me.set(Some(m)) /> }.into_any(),
        }
    }
}

/// The signed-in console: header, banner, the inbox or an admin page.
#[component]
fn Console(
    me: AgentView,
    owner: bool,
    sign_out: impl Fn(Option<&'static str>) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let visible = document().visibility_state() == VisibilityState::Visible;
    let model = RwSignal::new(Model::new(me.id, visible));
    let status = stored_status();
    model.update(|m| m.set_status(status));
    let connection = Connection::start(model, status);
    let admin = me.admin;
    let hash = window().location().hash().unwrap_or_default();
    let page = match Page::from_hash(&hash) {
        Page::Sites if !owner => Page::Inbox,
        page if !admin && page != Page::Sites => Page::Inbox,
        page => page,
    };
    let ctx = Ctx {
        model,
        connection: StoredValue::new_local(Some(connection)),
        me: StoredValue::new(me.clone()),
        owner,
        page: RwSignal::new(page),
        canned: RwSignal::new(Vec::new()),
        drafts: StoredValue::new(BTreeMap::new()),
        now: RwSignal::new(wall_clock()),
    };
    provide_context(ctx);
    on_cleanup(move || ctx.connection(Connection::stop));
    listen(ctx);
    ctx.reload_canned();
    let ticker = set_interval_with_handle(move || ctx.now.set(wall_clock()), Duration::from_secs(15)).ok();
    on_cleanup(move || {
        if let Some(ticker) = ticker {
            ticker.clear();
        }
    });

    // The relay refused the session for good (expired, ended, deactivated).
    Effect::new(move |_| {
        if model.with(Model::signed_out) {
            ctx.connection(Connection::stop);
            sign_out(Some("You were signed out. Please log in again."));
        }
    });
    Effect::new(move |_| {
        let unread = model.with(Model::unread_total);
        let title = if unread > 0 { format!("({unread}) {TITLE}") } else { TITLE.to_owned() };
        document().set_title(&title);
    });
    Effect::new(move |_| {
        let hash = ctx.page.get().hash();
        let _ = window().history().and_then(|h| h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(hash)));
    });
    let banner = Memo::new(move |_| model.with(Model::banner));
    // A memo, so that only a change of page rebuilds what is on screen.
    let current = Memo::new(move |_| ctx.page.get());

    view! {
        <div class="app">
            <Topbar sign_out />
            {move || banner.get().map(|text| view! { <div class="banner" role="status">{text}</div> })}
            {move || match current.get() {
                Page::Inbox => view! {
                    <main class="columns">
                        <Sidebar />
                        <ConversationPane />
                        <VisitorPanel />
                    </main>
                }
                .into_any(),
                Page::Agents => view! { <AgentsPage /> }.into_any(),
                Page::Site => view! { <SitePage /> }.into_any(),
                Page::Canned => view! { <CannedPage /> }.into_any(),
                Page::Sites => view! { <SitesPage /> }.into_any(),
            }}
            <Toasts />
        </div>
    }
}

#[component]
fn Topbar(sign_out: impl Fn(Option<&'static str>) + Copy + Send + Sync + 'static) -> impl IntoView {
    let ctx = Ctx::get();
    let me = ctx.me.get_value();
    let mut pages = vec![Page::Inbox];
    if me.admin {
        pages.extend([Page::Agents, Page::Site, Page::Canned]);
    }
    if ctx.owner {
        pages.push(Page::Sites);
    }
    // Which site this tab works in: an owner moves between several.
    let site_name = RwSignal::new(String::new());
    spawn_while_shown(async move {
        if let Ok(site) = api::site().await {
            site_name.set(site.name);
        }
    });
    let status = Memo::new(move |_| ctx.model.with(Model::status));
    let unread = Memo::new(move |_| ctx.model.with(Model::unread_total));
    let permission = RwSignal::new(notify::permission());
    let set_status = move |status: AgentStatus| {
        store_status(status);
        ctx.connection(|c| c.set_status(status));
    };
    let logout = move |_| {
        ctx.connection(Connection::stop);
        spawn_local(async move {
            api::logout().await;
            sign_out(None);
        });
    };
    let initial = me.name.chars().next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    let name = if me.name.is_empty() { me.email.clone() } else { me.name.clone() };
    view! {
        <header class="topbar">
            <div class="brand"><Logo />"Kefu"<span class="site-name" title="The site you are working in">{move || site_name.get()}</span></div>
            <nav class="pages" aria-label="Console">
                {pages.into_iter().map(|page| view! {
                    <button type="button" class="page-link" class:active=move || ctx.page.get() == page
                        aria-current=move || (ctx.page.get() == page).then_some("page")
                        on:click=move |_| ctx.show(page)>
                        {page.label()}
                        {(page == Page::Inbox).then(|| view! {
                            {move || (unread.get() > 0).then(|| view! { <span class="badge small">{unread.get()}</span> })}
                        })}
                    </button>
                }).collect_view()}
            </nav>
            <div class="me">
                {move || (permission.get().is_none()).then(|| view! {
                    <button type="button" class="button ghost small" title="Get a desktop notification for new chats"
                        on:click=move |_| notify::ask(move |answer| permission.set(answer))>
                        <svg class="icon" viewBox="0 0 24 24" width="15" height="15" aria-hidden="true">
                            <path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6v-5a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z" />
                        </svg>
                        "Enable notifications"
                    </button>
                })}
                <div class="status-switch" role="group" aria-label="Your status">
                    <button type="button" class="status online" class:active=move || status.get() == AgentStatus::Online
                        aria-pressed=move || (status.get() == AgentStatus::Online).to_string()
                        on:click=move |_| set_status(AgentStatus::Online)>"Online"</button>
                    <button type="button" class="status away" class:active=move || status.get() == AgentStatus::Away
                        aria-pressed=move || (status.get() == AgentStatus::Away).to_string()
                        on:click=move |_| set_status(AgentStatus::Away)>"Away"</button>
                </div>
                <span class="avatar" aria-hidden="true">{initial}</span>
                <span class="me-name">{name}</span>
                <button type="button" class="button ghost small" on:click=logout>"Log out"</button>
            </div>
        </header>
    }
}

/// Short messages at the bottom right; each leaves after a few seconds.
#[component]
fn Toasts() -> impl IntoView {
    let ctx = Ctx::get();
    let toasts = Memo::new(move |_| ctx.model.with(|m| m.toasts().to_vec()));
    Effect::new(move |shown: Option<u64>| {
        let newest = toasts.with(|t| t.iter().map(|(id, _)| *id).max()).unwrap_or(0);
        for (id, _) in toasts.get_untracked() {
            if id > shown.unwrap_or(0) {
                set_timeout(move || ctx.connection(|c| c.view_changed(|m| m.dismiss(id))), TOAST_FOR);
            }
        }
        newest.max(shown.unwrap_or(0))
    });
    view! {
        <div class="toasts" role="status" aria-live="polite">
            <For each=move || toasts.get() key=|(id, _)| *id children=move |(id, text)| view! {
                <div class="toast">
                    <span>{text}</span>
                    <button type="button" class="toast-close" aria-label="Dismiss"
                        on:click=move |_| ctx.connection(|c| c.view_changed(|m| m.dismiss(id)))>"×"</button>
                </div>
            } />
        </div>
    }
}

/// The window's events: connectivity, visibility, and the first gesture
/// (which lets the console play sounds).
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
    let click = window_event_listener(ev::pointerdown, move |_| notify::prime());
    let key = window_event_listener(ev::keydown, move |_| notify::prime());
    on_cleanup(move || {
        online.remove();
        visibility.remove();
        click.remove();
        key.remove();
    });
}

fn stored_status() -> AgentStatus {
    let stored = window().local_storage().ok().flatten().and_then(|s| s.get_item(STATUS_KEY).ok().flatten());
    if stored.as_deref() == Some("away") { AgentStatus::Away } else { AgentStatus::Online }
}

fn store_status(status: AgentStatus) {
    if let Some(storage) = window().local_storage().ok().flatten() {
        let _ = storage.set_item(STATUS_KEY, if status == AgentStatus::Away { "away" } else { "online" });
    }
}

/// Kefu's mark: a speech bubble (drawn, so it needs no font).
#[component]
pub fn Logo() -> impl IntoView {
    view! {
        <span class="logo" aria-hidden="true">
            <svg viewBox="0 0 24 24" width="17" height="17">
                <path fill="currentColor" d="M5 4h14a3 3 0 0 1 3 3v8a3 3 0 0 1-3 3h-7l-5 4v-4H5a3 3 0 0 1-3-3V7a3 3 0 0 1 3-3Z" />
                <circle cx="8" cy="11" r="1.4" fill="#2563eb" /><circle cx="12" cy="11" r="1.4" fill="#2563eb" /><circle cx="16" cy="11" r="1.4" fill="#2563eb" />
            </svg>
        </span>
    }
}

/// A presence as a CSS class and a word.
pub fn presence(presence: Presence) -> (&'static str, &'static str) {
    match presence {
        Presence::Online => ("dot online", "Online"),
        Presence::Away => ("dot away", "Away"),
        Presence::Offline => ("dot offline", "Offline"),
    }
}

/// `HH:MM` in the agent's time zone, or the date for older days.
pub fn clock(at: Timestamp) -> String {
    #[allow(clippy::cast_precision_loss)]
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.0 as f64));
    let today = js_sys::Date::new_0();
    if date.to_date_string() == today.to_date_string() {
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    } else {
        format!("{}-{:02}-{:02}", date.get_full_year(), date.get_month() + 1, date.get_date())
    }
}

/// "<1 min", "3 min", "2 h", "4 d": how long ago `since` was.
pub fn ago(since: Timestamp, now: Timestamp) -> String {
    let minutes = now.0.saturating_sub(since.0) / 60_000;
    match minutes {
        0 => "<1 min".to_owned(),
        1..=59 => format!("{minutes} min"),
        60..=1439 => format!("{} h", minutes / 60),
        _ => format!("{} d", minutes / 1440),
    }
}
