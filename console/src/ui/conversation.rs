//! The middle column: tabs of the conversations open at once, and the one
//! on screen: who handles it with the take / transfer / close / reopen
//! buttons and the transcript by email, its history (paged back), live messages, private notes and
//! system lines, the visitor's typing indicator with a preview of their
//! draft, and the [composer](super::composer). Messages are text nodes,
//! never HTML.

use kefu_protocol::frame::Change;
use kefu_protocol::ids::{AgentId, ConversationId};
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::composer::Composer;
use super::{Ctx, ago, clock};
use crate::api;
use crate::model::{Kind, LineKey, Sender};

/// Closer than this to the bottom counts as following the conversation:
/// new messages scroll into view.
const STICK_PX: i32 = 80;

/// History comes in pages of this many messages.
const PAGE: u32 = 50;

#[component]
pub fn ConversationPane() -> impl IntoView {
    let ctx = Ctx::get();
    let selected = Memo::new(move |_| ctx.model.with(|m| m.selected()));
    view! {
        <section class="conversation" aria-label="Conversation">
            <Tabs />
            {move || match selected.get() {
                Some(id) => view! { <Conversation id /> }.into_any(),
                None => view! {
                    <div class="empty-state center">
                        <svg class="empty-art" viewBox="0 0 48 48" width="56" height="56" aria-hidden="true">
                            <rect x="4" y="8" width="30" height="22" rx="6" fill="#dbe4ff" />
                            <path d="M10 30v8l8-8z" fill="#dbe4ff" />
                            <rect x="16" y="18" width="28" height="20" rx="6" fill="#2563eb" />
                            <path d="M38 38v6l-7-6z" fill="#2563eb" />
                            <circle cx="24" cy="28" r="2" fill="#fff" /><circle cx="30" cy="28" r="2" fill="#fff" /><circle cx="36" cy="28" r="2" fill="#fff" />
                        </svg>
                        <p class="empty-title">"No conversation open"</p>
                        <p>"Pick one on the left. Chats assigned to you open here by themselves."</p>
                    </div>
                }
                .into_any(),
            }}
        </section>
    }
}

/// The conversations open at once; the selected one is on screen.
#[component]
fn Tabs() -> impl IntoView {
    let ctx = Ctx::get();
    let tabs = Memo::new(move |_| ctx.model.with(|m| m.tabs().to_vec()));
    view! {
        <Show when=move || !tabs.with(Vec::is_empty)>
            <div class="tabs" role="tablist" aria-label="Open conversations">
                <For each=move || tabs.get() key=|id| *id children=move |id| {
                    let state = Memo::new(move |_| ctx.model.with(|m| {
                        let c = m.conversation(id)?;
                        Some((m.visitor_name(c.visitor), c.unread(), m.selected() == Some(id), c.is_open()))
                    }));
                    let name = move || state.with(|s| s.as_ref().map(|s| s.0.clone()).unwrap_or_default());
                    let unread = move || state.with(|s| s.as_ref().map_or(0, |s| s.1));
                    let active = move || state.with(|s| s.as_ref().is_some_and(|s| s.2));
                    let closed = move || state.with(|s| s.as_ref().is_some_and(|s| !s.3));
                    view! {
                        <div class="tab" class:active=active class:closed=closed>
                            <button type="button" role="tab" class="tab-name" aria-selected=move || active().to_string()
                                on:click=move |_| ctx.select(id)>
                                {name}
                                {move || (unread() > 0).then(|| view! { <span class="badge small">{unread()}</span> })}
                            </button>
                            <button type="button" class="tab-close" aria-label=move || format!("Close tab {}", name())
                                on:click=move |_| ctx.connection(|c| c.view_changed(|m| m.close_tab(id)))>"×"</button>
                        </div>
                    }
                } />
            </div>
        </Show>
    }
}

#[component]
fn Conversation(id: ConversationId) -> impl IntoView {
    let ctx = Ctx::get();
    let name = Memo::new(move |_| {
        ctx.model.with(|m| m.conversation(id).map(|c| m.visitor_name(c.visitor)).unwrap_or_default())
    });
    let keys = Memo::new(move |_| {
        ctx.model
            .with(|m| m.conversation(id).map(|c| c.lines().iter().map(|l| l.key).collect::<Vec<_>>()))
            .unwrap_or_default()
    });
    let typing = Memo::new(move |_| {
        ctx.model.with(|m| m.conversation(id).and_then(|c| c.typing().map(|t| t.draft.clone().unwrap_or_default())))
    });
    let earlier = Memo::new(move |_| ctx.model.with(|m| m.conversation(id).is_some_and(|c| c.has_earlier())));
    let open = Memo::new(move |_| ctx.model.with(|m| m.conversation(id).is_some_and(|c| c.is_open())));
    let log = NodeRef::<Div>::new();
    let stick = StoredValue::new(true);
    let loading = RwSignal::new(false);
    Effect::new(move |_| {
        keys.track();
        typing.track();
        if stick.get_value() {
            request_animation_frame(move || {
                if let Some(log) = log.get_untracked() {
                    log.set_scroll_top(log.scroll_height());
                }
            });
        }
    });
    let on_scroll = move |_| {
        if let Some(log) = log.get_untracked() {
            stick.set_value(log.scroll_height() - log.scroll_top() - log.client_height() < STICK_PX);
        }
    };
    // A page back in history; the view stays on what the agent was reading.
    let load_earlier = move || {
        if loading.get_untracked() {
            return;
        }
        loading.set(true);
        let before = ctx.model.with_untracked(|m| m.conversation(id).and_then(|c| c.first_seq()));
        spawn_local(async move {
            // The pane may be gone by the time this runs or the page
            // comes: every read after this point tolerates that.
            let height = log.try_get_untracked().flatten().map(|l| l.scroll_height());
            match api::messages(id, before, PAGE).await {
                Ok(page) => {
                    ctx.connection(|c| c.view_changed(|m| m.history(id, &page)));
                    request_animation_frame(move || {
                        if let (Some(log), Some(height), Some(_)) = (log.try_get_untracked().flatten(), height, before)
                        {
                            log.set_scroll_top(log.scroll_top() + log.scroll_height() - height);
                        }
                    });
                }
                Err(error) => ctx.toast(error.message),
            }
            loading.try_set(false);
        });
    };
    // A conversation known only from a list (closed ones): its newest page.
    if ctx.model.with_untracked(|m| m.conversation(id).is_some_and(|c| c.lines().is_empty() && c.has_earlier())) {
        load_earlier();
    }

    view! {
        <Head id />
        <div class="log" role="log" aria-live="polite" aria-label=move || format!("Messages with {}", name.get())
            node_ref=log on:scroll=on_scroll tabindex="0">
            {move || earlier.get().then(|| view! {
                <button type="button" class="load-earlier" disabled=move || loading.get() on:click=move |_| load_earlier()>
                    {move || if loading.get() { "Loading…" } else { "Load earlier messages" }}
                </button>
            })}
            <For each=move || keys.get() key=|key| *key children=move |key| view! { <Row id key /> } />
            {move || (keys.with(Vec::is_empty) && !earlier.get()).then(|| view! { <p class="empty center">"No messages yet."</p> })}
        </div>
        <div class="typing" aria-live="polite">
            {move || typing.get().map(|draft| view! {
                <span class="dots" aria-hidden="true"><i></i><i></i><i></i></span>
                <span class="typing-who">{move || name.get()}" is typing"</span>
                {(!draft.is_empty()).then(|| view! { <span class="draft" title="What the visitor is typing, not sent yet">{draft}</span> })}
            })}
        </div>
        {move || if open.get() {
            view! { <Composer id /> }.into_any()
        } else {
            view! {
                <div class="composer closed-note">
                    <p>"This conversation is closed."</p>
                    <button type="button" class="button primary"
                        on:click=move |_| ctx.connection(|c| c.update(id, Change::Reopen))>"Reopen"</button>
                </div>
            }.into_any()
        }}
    }
}

/// Who the visitor is, who handles the chat, and what can be done to it.
#[component]
fn Head(id: ConversationId) -> impl IntoView {
    let ctx = Ctx::get();
    let me = ctx.me.get_value().id;
    let state = Memo::new(move |_| {
        let now = ctx.now.get();
        ctx.model.with(|m| {
            let c = m.conversation(id)?;
            let who = match c.assignee {
                _ if !c.is_open() => String::new(),
                Some(agent) if agent == m.me() => "Assigned to you".to_owned(),
                Some(agent) => format!("Assigned to {}", m.agent_name(agent)),
                None => "Unassigned".to_owned(),
            };
            let waiting = c.waiting_since.filter(|_| c.is_open()).map(|since| format!("waiting {}", ago(since, now)));
            Some((m.visitor_name(c.visitor), c.is_open(), c.assignee, who, waiting))
        })
    });
    let transfer = RwSignal::new(false);
    let is_open = move || state.with(|s| s.as_ref().is_some_and(|s| s.1));
    let assignee = move || state.with(|s| s.as_ref().and_then(|s| s.2));
    let act = move |change: Change| ctx.connection(|c| c.update(id, change));
    let email_transcript = move |_| {
        spawn_local(async move {
            match api::email_transcript(id).await {
                Ok(queued) => ctx.toast(format!("The transcript is on its way to {}.", queued.to)),
                Err(error) => ctx.toast(error.message),
            }
        });
    };
    view! {
        <header class="conversation-head">
            <div class="head-text">
                <h2>{move || state.with(|s| s.as_ref().map(|s| s.0.clone()).unwrap_or_default())}</h2>
                <p class="head-state">
                    {move || if is_open() {
                        view! { <span class="pill open">"Open"</span> }.into_any()
                    } else {
                        view! { <span class="pill closed">"Closed"</span> }.into_any()
                    }}
                    <span class="assignee">{move || state.with(|s| s.as_ref().map(|s| s.3.clone()).unwrap_or_default())}</span>
                    {move || state.with(|s| s.as_ref().and_then(|s| s.4.clone())).map(|w| view! { <span class="waiting">" · "{w}</span> })}
                </p>
            </div>
            <div class="actions">
                {move || (is_open() && assignee().is_none()).then(|| view! {
                    <button type="button" class="button primary" on:click=move |_| act(Change::Take)>"Take"</button>
                })}
                <button type="button" class="button ghost" title="Email the whole conversation to the visitor"
                    on:click=email_transcript>"Email transcript"</button>
                {move || is_open().then(|| view! {
                    <button type="button" class="button ghost" on:click=move |_| transfer.set(true)>"Transfer"</button>
                    <button type="button" class="button ghost" on:click=move |_| act(Change::Close)>"Close"</button>
                })}
            </div>
        </header>
        {move || transfer.get().then(|| view! { <TransferDialog id me current=assignee() on_done=move || transfer.set(false) /> })}
    }
}

/// Picks a colleague and writes them a note.
#[component]
fn TransferDialog(
    id: ConversationId,
    me: AgentId,
    current: Option<AgentId>,
    on_done: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let ctx = Ctx::get();
    let team = Memo::new(move |_| {
        ctx.model.with(|m| {
            m.team()
                .iter()
                .filter(|member| member.agent != me && Some(member.agent) != current)
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    let to = RwSignal::new(None::<AgentId>);
    let note = RwSignal::new(String::new());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(agent) = to.get_untracked() else {
            return;
        };
        ctx.connection(|c| c.update(id, Change::Transfer { to: agent, note: note.get_untracked().trim().to_owned() }));
        on_done();
    };
    view! {
        <div class="overlay" on:click=move |_| on_done()
            on:keydown=move |event: leptos::ev::KeyboardEvent| if event.key() == "Escape" { on_done() }>
            <form class="dialog" role="dialog" aria-modal="true" aria-labelledby="transfer-title"
                on:click=|event| event.stop_propagation() on:submit=submit>
                <h3 id="transfer-title">"Transfer this chat"</h3>
                <p class="muted">"The colleague sees the whole history and your note; the visitor sees who joined."</p>
                <fieldset class="pick">
                    <legend class="sr">"Colleague"</legend>
                    <For each=move || team.get() key=|member| member.agent children=move |member| {
                        let (class, word) = super::presence(member.presence);
                        let agent = member.agent;
                        view! {
                            <label class="pick-agent" class:chosen=move || to.get() == Some(agent)>
                                <input type="radio" name="to" value=agent.to_string() on:change=move |_| to.set(Some(agent)) />
                                <span class=class title=word></span>
                                <span class="member-name">{member.name.clone()}</span>
                                <span class="member-load">{format!("{} · {}/{}", word, member.open, member.capacity)}</span>
                            </label>
                        }
                    } />
                    {move || team.with(Vec::is_empty).then(|| view! { <p class="muted">"No colleague to hand it to."</p> })}
                </fieldset>
                <label for="transfer-note">"Note for them (only agents see it)"</label>
                <textarea id="transfer-note" rows="3" maxlength="2000" placeholder="What they should know…"
                    prop:value=move || note.get() on:input=move |e| note.set(event_target_value(&e))></textarea>
                <div class="dialog-actions">
                    <button type="button" class="button ghost" on:click=move |_| on_done()>"Cancel"</button>
                    <button type="submit" class="button primary" disabled=move || to.get().is_none()>"Transfer"</button>
                </div>
            </form>
        </div>
    }
}

#[component]
fn Row(id: ConversationId, key: LineKey) -> impl IntoView {
    let ctx = Ctx::get();
    let me = ctx.me.get_value().id;
    // Who wrote it and what it says never change; only its time and mark.
    let line = ctx.model.with_untracked(|m| m.conversation(id)?.line(key).cloned())?;
    let state = Memo::new(move |_| {
        ctx.model.with(|m| {
            let conversation = m.conversation(id)?;
            let line = conversation.line(key)?;
            let mark = match line.seq {
                None => "Sending…",
                Some(seq) if conversation.read_by_visitor(seq) => "Read",
                Some(_) => "Sent",
            };
            Some((clock(line.at), mark, conversation.continued(key)))
        })
    });
    let time = move || state.with(|s| s.as_ref().map(|s| s.0.clone()).unwrap_or_default());
    let mark = move || state.with(|s| s.as_ref().map_or("", |s| s.1));
    let continued = move || state.with(|s| s.as_ref().is_some_and(|s| s.2));
    let author = match line.sender {
        Sender::Agent(agent) if agent == me => "You".to_owned(),
        Sender::Agent(agent) => ctx.model.with_untracked(|m| m.agent_name(agent)),
        _ => String::new(),
    };
    let text = line.text;
    Some(match (line.kind, line.sender) {
        (Kind::System, _) => view! { <div class="row system"><p>{text}<span class="system-time">{time}</span></p></div> }.into_any(),
        (Kind::Note, _) => view! {
            <div class="row note">
                <p class="note-label">"Private note · "{author}</p>
                <p class="note-text">{text}</p>
                <p class="meta"><time>{time}</time>{move || (mark() == "Sending…").then_some(" · Sending…")}</p>
            </div>
        }
        .into_any(),
        (_, Sender::Visitor) => view! {
            <div class="row from-visitor" class:continued=continued>
                <p class="bubble">{text}</p>
                <p class="meta"><time>{time}</time></p>
            </div>
        }
        .into_any(),
        (_, Sender::Agent(agent)) => view! {
            <div class="row from-agent" class:colleague=agent != me class:continued=continued>
                {(agent != me).then(|| view! { <p class="author">{author}</p> })}
                <p class="bubble">{text}</p>
                <p class="meta"><time>{time}</time>" · "<span class="mark" class:read=move || mark() == "Read">{mark}</span></p>
            </div>
        }
        .into_any(),
        (_, Sender::System) => view! { <div class="row system"><p>{text}</p></div> }.into_any(),
    })
}
