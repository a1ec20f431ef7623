//! The middle column: the selected conversation's history and live
//! messages, the visitor's typing indicator with a preview of their draft,
//! and the composer. Messages are text nodes, never HTML.

use std::time::Duration;

use kefu_protocol::ids::ConversationId;
use leptos::html::{Div, Textarea};
use leptos::prelude::*;
use web_sys::KeyboardEvent;

use super::{Ctx, clock};
use crate::connection::now;
use crate::model::{LineKey, Sender};

/// Closer than this to the bottom counts as following the conversation:
/// new messages scroll into view.
const STICK_PX: i32 = 80;

/// "Typing" is repeated this often while the agent keeps typing, and ends
/// this long after the last keystroke.
const TYPING_REPEAT_MS: u64 = 3_000;
const TYPING_IDLE: Duration = Duration::from_millis(4_000);

#[component]
pub fn ConversationPane() -> impl IntoView {
    let ctx = Ctx::get();
    let selected = Memo::new(move |_| ctx.model.with(|m| m.selected()));
    view! {
        <section class="conversation" aria-label="Conversation">
            {move || match selected.get() {
                Some(id) => view! { <Conversation id /> }.into_any(),
                None => view! {
                    <div class="empty center">
                        <p class="empty-title">"No conversation selected"</p>
                        <p>"When a visitor writes, the chat opens here."</p>
                    </div>
                }
                .into_any(),
            }}
        </section>
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
    let log = NodeRef::<Div>::new();
    let stick = StoredValue::new(true);
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

    view! {
        <header class="conversation-head">
            <h2>{move || name.get()}</h2>
        </header>
        <div class="log" role="log" aria-live="polite" aria-label=move || format!("Messages with {}", name.get())
            node_ref=log on:scroll=on_scroll tabindex="0">
            <Show when=move || !keys.with(Vec::is_empty)>
                <For each=move || keys.get() key=|key| *key children=move |key| view! { <Row id key /> } />
            </Show>
            {move || keys.with(Vec::is_empty).then(|| view! { <p class="empty center">"No messages yet."</p> })}
        </div>
        <div class="typing" aria-live="polite">
            {move || typing.get().map(|draft| view! {
                <span class="dots" aria-hidden="true"><i></i><i></i><i></i></span>
                <span class="typing-who">{move || name.get()}" is typing"</span>
                {(!draft.is_empty()).then(|| view! { <span class="draft" title="What the visitor is typing, not sent yet">{draft}</span> })}
            })}
        </div>
        <Composer id />
    }
}

#[component]
fn Row(id: ConversationId, key: LineKey) -> impl IntoView {
    let ctx = Ctx::get();
    // Who wrote it and what it says never change; only its time and mark.
    let (sender, text) = ctx.model.with_untracked(|m| {
        m.conversation(id)?.lines().iter().find(|l| l.key == key).map(|l| (l.sender, l.text.clone()))
    })?;
    let state = Memo::new(move |_| {
        ctx.model.with(|m| {
            let conversation = m.conversation(id)?;
            let line = conversation.lines().iter().find(|l| l.key == key)?;
            let mark = match line.seq {
                None => "Sending…",
                Some(seq) if conversation.read_by_visitor(seq) => "Read",
                Some(_) => "Sent",
            };
            Some((clock(line.at), mark))
        })
    });
    let time = move || state.with(|s| s.as_ref().map(|s| s.0.clone()).unwrap_or_default());
    let mark = move || state.with(|s| s.as_ref().map_or("", |s| s.1));
    Some(match sender {
        Sender::System => view! { <div class="row system"><p>{text}</p></div> }.into_any(),
        Sender::Visitor => view! {
            <div class="row from-visitor">
                <p class="bubble">{text}</p>
                <p class="meta"><time>{time}</time></p>
            </div>
        }
        .into_any(),
        Sender::Agent => view! {
            <div class="row from-agent">
                <p class="bubble">{text}</p>
                <p class="meta"><time>{time}</time>" · "<span class="mark" class:read=move || mark() == "Read">{mark}</span></p>
            </div>
        }
        .into_any(),
    })
}

#[component]
fn Composer(id: ConversationId) -> impl IntoView {
    let ctx = Ctx::get();
    let input = NodeRef::<Textarea>::new();
    let draft = RwSignal::new(String::new());
    // When "typing" last went out, and a counter of keystrokes so the idle
    // timeout knows whether another came since.
    let typing_sent = StoredValue::new(None::<kefu_protocol::session::Millis>);
    let strokes = StoredValue::new(0_u64);
    let stop_typing = move || {
        if typing_sent.get_value().is_some() {
            typing_sent.set_value(None);
            ctx.connection(|c| c.typing(id, false));
        }
    };
    on_cleanup(stop_typing);
    request_animation_frame(move || {
        if let Some(input) = input.get_untracked() {
            let _ = input.focus();
        }
    });

    let submit = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        stop_typing();
        ctx.connection(|c| c.send(id, text));
        draft.set(String::new());
        if let Some(input) = input.get_untracked() {
            input.set_value("");
        }
    };
    let on_input = move |_| {
        let Some(input) = input.get_untracked() else {
            return;
        };
        draft.set(input.value());
        if input.value().is_empty() {
            stop_typing();
            return;
        }
        let now = now();
        if typing_sent.get_value().is_none_or(|at| now.since(at) >= TYPING_REPEAT_MS) {
            typing_sent.set_value(Some(now));
            ctx.connection(|c| c.typing(id, true));
        }
        strokes.update_value(|n| *n += 1);
        let stroke = strokes.get_value();
        set_timeout(
            move || {
                if strokes.try_get_value() == Some(stroke) {
                    stop_typing();
                }
            },
            TYPING_IDLE,
        );
    };
    let on_keydown = move |event: KeyboardEvent| {
        // Enter also confirms a character in a Chinese input method: that
        // one must not send.
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() && event.key_code() != 229 {
            event.prevent_default();
            submit();
        }
    };

    view! {
        <form class="composer" on:submit=move |event| { event.prevent_default(); submit(); }>
            <label class="sr" for="reply">"Reply"</label>
            <textarea id="reply" node_ref=input rows="3" maxlength="4000"
                placeholder="Write a reply — Enter to send, Shift+Enter for a new line"
                on:input=on_input on:keydown=on_keydown></textarea>
            <button type="submit" class="button primary" disabled=move || draft.with(|d| d.trim().is_empty())>"Send"</button>
        </form>
    }
}
