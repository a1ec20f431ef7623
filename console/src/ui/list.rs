//! The left column: open conversations, newest activity first, each with
//! the visitor's name, the last message, its time and the unread count.

use kefu_protocol::ids::ConversationId;
use leptos::prelude::*;

use super::{Ctx, clock};
use crate::model::Sender;

#[component]
pub fn ConversationList() -> impl IntoView {
    let ctx = Ctx::get();
    let ids = Memo::new(move |_| ctx.model.with(|m| m.open_ids()));
    view! {
        <nav class="list" aria-label="Open conversations">
            <h2 class="column-title">"Open conversations"</h2>
            <Show
                when=move || !ids.with(Vec::is_empty)
                fallback=|| view! {
                    <p class="empty">"No open conversations — new chats appear here."</p>
                }
            >
                <ul class="items">
                    <For each=move || ids.get() key=|id| *id children=move |id| view! { <Item id /> } />
                </ul>
            </Show>
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
}

#[component]
fn Item(id: ConversationId) -> impl IntoView {
    let ctx = Ctx::get();
    let summary = Memo::new(move |_| {
        ctx.model.with(|m| {
            let conversation = m.conversation(id)?;
            let preview = match conversation.last_line() {
                Some(line) if line.sender == Sender::Agent => format!("You: {}", line.text),
                Some(line) => line.text.clone(),
                None => "No messages yet".to_owned(),
            };
            Some(Summary {
                name: m.visitor_name(conversation.visitor),
                preview,
                time: clock(conversation.updated_at),
                unread: conversation.unread(),
                typing: conversation.typing().is_some(),
            })
        })
    });
    let selected = Memo::new(move |_| ctx.model.with(|m| m.selected() == Some(id)));
    let field = move |pick: fn(&Summary) -> String| move || summary.with(|s| s.as_ref().map(pick).unwrap_or_default());
    let unread = Memo::new(move |_| summary.with(|s| s.as_ref().map_or(0, |s| s.unread)));
    let typing = Memo::new(move |_| summary.with(|s| s.as_ref().is_some_and(|s| s.typing)));

    view! {
        <li>
            <button
                type="button"
                class=move || match (selected.get(), unread.get() > 0) {
                    (true, _) => "item selected",
                    (false, true) => "item unread",
                    (false, false) => "item",
                }
                aria-current=move || selected.get().then_some("true")
                on:click=move |_| ctx.select(id)
            >
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
            </button>
        </li>
    }
}
