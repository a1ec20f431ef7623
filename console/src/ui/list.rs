//! The left column: the folders (mine, the queue, all open, closed), the
//! conversations of the chosen one, and the team with their presence.

use kefu_protocol::ids::ConversationId;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{Ctx, ago, clock, presence};
use crate::api;
use crate::model::{Folder, Kind, Sender};

/// Closed conversations come in pages of this many.
const CLOSED_PAGE: u32 = 30;

/// Older open conversations come in pages of this many (the HTTP API's
/// most).
const OPEN_PAGE: u32 = 100;

#[component]
pub fn Sidebar() -> impl IntoView {
    let ctx = Ctx::get();
    let folder = Memo::new(move |_| ctx.model.with(|m| m.folder()));
    let ids = Memo::new(move |_| ctx.model.with(|m| m.list(m.folder())));
    let loading = RwSignal::new(false);
    // The Closed folder pages closed conversations; the open folders share
    // the pages of open ones.
    let load_older = move |open: bool| {
        if loading.get_untracked() {
            return;
        }
        loading.set(true);
        let (status, before, limit) = ctx.model.with_untracked(|m| {
            if open { ("open", m.open_before(), OPEN_PAGE) } else { ("closed", m.closed_before(), CLOSED_PAGE) }
        });
        spawn_local(async move {
            match api::conversations(status, before, limit).await {
                Ok(page) => ctx.connection(|c| {
                    c.view_changed(|m| {
                        if open {
                            m.open_page(&page, limit as usize);
                        } else {
                            m.closed_page(&page, limit as usize);
                        }
                    });
                }),
                Err(error) => ctx.toast(error.message),
            }
            // The page lands in the model either way; the sidebar may be gone.
            loading.try_set(false);
        });
    };
    let choose = move |chosen: Folder| {
        ctx.connection(|c| c.view_changed(|m| m.set_folder(chosen)));
        if chosen == Folder::Closed && !ctx.model.with_untracked(|m| m.closed_fetched()) {
            load_older(false);
        }
    };
    let more = move || {
        let folder = folder.get();
        if folder.is_open() {
            ctx.model.with(|m| m.open_more())
        } else {
            ctx.model.with(|m| m.closed_more()) && !ids.with(Vec::is_empty)
        }
    };
    let empty = move || match folder.get() {
        Folder::Mine => ("Nothing assigned to you", "Chats you take or are given show up here."),
        Folder::Unassigned => ("The queue is empty", "Visitors waiting for an agent show up here."),
        Folder::All => ("No open conversations", "New chats appear here as soon as a visitor writes."),
        Folder::Closed => ("No closed conversations", "Conversations end up here once closed."),
    };
    view! {
        <nav class="sidebar" aria-label="Conversations">
            <div class="folders" role="tablist">
                {Folder::ALL.into_iter().map(|f| {
                    let count = Memo::new(move |_| ctx.model.with(|m| m.count(f)));
                    view! {
                        <button type="button" role="tab" class="folder" data-folder=f.label()
                            class:active=move || folder.get() == f
                            aria-selected=move || (folder.get() == f).to_string()
                            on:click=move |_| choose(f)>
                            <span>{f.label()}</span>
                            {move || count.get().map(|n| view! { <span class="count">{n}</span> })}
                        </button>
                    }
                }).collect_view()}
            </div>
            <div class="list">
                <Show
                    when=move || !ids.with(Vec::is_empty)
                    fallback=move || view! {
                        <div class="empty-state">
                            <p class="empty-title">{move || empty().0}</p>
                            <p>{move || empty().1}</p>
                        </div>
                    }
                >
                    <ul class="items">
                        <For each=move || ids.get() key=|id| *id children=move |id| view! { <Item id /> } />
                    </ul>
                </Show>
                {move || more().then(|| view! {
                    <button type="button" class="button ghost wide-soft load-older" disabled=move || loading.get()
                        on:click=move |_| load_older(folder.get_untracked().is_open())>
                        {move || if loading.get() { "Loading…" } else { "Load older" }}
                    </button>
                })}
            </div>
            <Team />
        </nav>
    }
}

/// What one entry of the list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    name: String,
    preview: String,
    time: String,
    unread: u32,
    typing: bool,
    /// "Waiting 3 min" or who has it.
    state: String,
    waiting: bool,
}

#[component]
fn Item(id: ConversationId) -> impl IntoView {
    let ctx = Ctx::get();
    let summary = Memo::new(move |_| {
        let now = ctx.now.get();
        ctx.model.with(|m| {
            let conversation = m.conversation(id)?;
            let preview = match conversation.last_message() {
                Some(line) if line.kind == Kind::Note => format!("Note: {}", line.text),
                Some(line) if line.sender == Sender::Agent(m.me()) => format!("You: {}", line.text),
                Some(line) => line.text.clone(),
                None if conversation.is_open() => "No messages yet".to_owned(),
                None => "Closed".to_owned(),
            };
            let (state, waiting) = match (conversation.is_open(), conversation.waiting_since, conversation.assignee) {
                (false, _, _) => ("Closed".to_owned(), false),
                (true, Some(since), _) => (format!("Waiting {}", ago(since, now)), true),
                (true, None, Some(agent)) if agent == m.me() => ("Yours".to_owned(), false),
                (true, None, Some(agent)) => (m.agent_name(agent), false),
                (true, None, None) => ("Unassigned".to_owned(), false),
            };
            Some(Summary {
                name: m.visitor_name(conversation.visitor),
                preview,
                time: clock(conversation.updated_at),
                unread: conversation.unread(),
                typing: conversation.typing().is_some(),
                state,
                waiting,
            })
        })
    });
    let selected = Memo::new(move |_| ctx.model.with(|m| m.selected() == Some(id)));
    let field = move |pick: fn(&Summary) -> String| move || summary.with(|s| s.as_ref().map(pick).unwrap_or_default());
    let unread = Memo::new(move |_| summary.with(|s| s.as_ref().map_or(0, |s| s.unread)));
    let typing = Memo::new(move |_| summary.with(|s| s.as_ref().is_some_and(|s| s.typing)));
    let waiting = Memo::new(move |_| summary.with(|s| s.as_ref().is_some_and(|s| s.waiting)));
    let initial = move || summary.with(|s| s.as_ref().and_then(|s| s.name.chars().next()).unwrap_or('?').to_string());

    view! {
        <li>
            <button
                type="button"
                class="item"
                class:selected=move || selected.get()
                class:unread=move || { !selected.get() && unread.get() > 0 }
                aria-current=move || selected.get().then_some("true")
                on:click=move |_| ctx.select(id)
            >
                <span class="avatar visitor-avatar" aria-hidden="true">{initial}</span>
                <span class="item-body">
                    <span class="item-top">
                        <span class="item-name">{field(|s| s.name.clone())}</span>
                        <time class="item-time">{field(|s| s.time.clone())}</time>
                    </span>
                    <span class="item-bottom">
                        <span class="item-preview">
                            {move || if typing.get() { "typing…".to_owned() } else { field(|s| s.preview.clone())() }}
                        </span>
                        {move || {
                            let count = unread.get();
                            (count > 0).then(|| view! {
                                <span class="badge" aria-label=format!("{count} unread")>{count}</span>
                            })
                        }}
                    </span>
                    <span class="item-state" class:waiting=move || waiting.get()>{field(|s| s.state.clone())}</span>
                </span>
            </button>
        </li>
    }
}

/// The site's agents: presence and load.
#[component]
fn Team() -> impl IntoView {
    let ctx = Ctx::get();
    let team = Memo::new(move |_| ctx.model.with(|m| m.team().to_vec()));
    view! {
        <section class="team" aria-label="Team">
            <h2 class="column-title">"Team"</h2>
            <ul class="team-list">
                <For each=move || team.get() key=|member| (member.agent, member.presence, member.open, member.capacity, member.name.clone())
                    children=move |member| {
                        let (class, word) = presence(member.presence);
                        let me = member.agent == ctx.me.get_value().id;
                        view! {
                            <li class="member">
                                <span class=class title=word></span>
                                <span class="member-name">{member.name.clone()}{me.then_some(" (you)")}</span>
                                <span class="member-load" title="Open chats / capacity">{format!("{}/{}", member.open, member.capacity)}</span>
                                <span class="sr">{word}</span>
                            </li>
                        }
                    } />
            </ul>
            {move || team.with(Vec::is_empty).then(|| view! { <p class="muted pad">"Connecting…"</p> })}
        </section>
    }
}
