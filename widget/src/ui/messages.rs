//! The conversation: the team's greeting, every message with its time and
//! mark, and the agent's typing indicator. Messages are text nodes, never
//! HTML.

use kefu_protocol::ids::Timestamp;
use leptos::html::Div;
use leptos::prelude::*;

use super::Ctx;
use super::icons::{ClockIcon, TicksIcon};
use crate::model::{Mark, Model, Refusal, RowKey, Sender};

/// Closer than this to the bottom counts as reading the latest messages:
/// new ones scroll into view. Further up, the visitor is reading history
/// and the list stays put.
const STICK_PX: i32 = 80;

#[component]
pub fn MessageList() -> impl IntoView {
    let ctx = Ctx::get();
    let text = ctx.text;
    let list = NodeRef::<Div>::new();
    let stick = StoredValue::new(true);
    let keys = Memo::new(move |_| ctx.model.with(Model::keys));
    let typing = Memo::new(move |_| ctx.model.with(Model::agent_typing));

    // Follow new messages (and the visitor's own, always) to the bottom.
    Effect::new(move |previous: Option<usize>| {
        let count = keys.with(Vec::len);
        let _ = typing.get();
        let own_new = keys.with(|keys| matches!(keys.last(), Some(RowKey::Own(_))));
        if stick.get_value() || (own_new && previous.is_some_and(|p| count > p)) {
            request_animation_frame(move || {
                if let Some(list) = list.get_untracked() {
                    list.set_scroll_top(list.scroll_height());
                }
            });
        }
        count
    });
    let on_scroll = move |_| {
        if let Some(list) = list.get_untracked() {
            stick.set_value(list.scroll_height() - list.scroll_top() - list.client_height() < STICK_PX);
        }
    };

    view! {
        <div class="kefu-log" role="log" aria-live="polite" aria-label=text.messages node_ref=list on:scroll=on_scroll>
            <div class="kefu-row kefu-from-agent">
                <span class="kefu-sr">{text.team}": "</span>
                <p class="kefu-bubble">{text.greeting}</p>
            </div>
            <For each=move || keys.get() key=|key| *key children=move |key| view! { <MessageRow id=key /> } />
        </div>
        <div class="kefu-typing" aria-hidden="true">
            {move || typing.get().then(|| view! {
                <span class="kefu-dots"><i></i><i></i><i></i></span>
                <span>{text.typing}</span>
            })}
        </div>
    }
}

#[component]
pub fn MessageRow(id: RowKey) -> impl IntoView {
    let ctx = Ctx::get();
    let text = ctx.text;
    // Who wrote it and what it says never change; only its time and mark.
    let (sender, body) = ctx.model.with_untracked(|m| m.row(id).map(|row| (row.sender, row.text.clone())))?;
    let at = Memo::new(move |_| ctx.model.with(|m| m.row(id).map(|row| row.at)));
    let time = move || at.get().map(clock).unwrap_or_default();
    if sender == Sender::System {
        return Some(
            view! {
                <div class="kefu-row kefu-from-system">
                    <p class="kefu-system">{body}</p>
                </div>
            }
            .into_any(),
        );
    }
    let mark = Memo::new(move |_| ctx.model.with(|m| m.mark(id)));
    let (class, who) = match sender {
        Sender::Visitor => ("kefu-row kefu-from-visitor", text.you),
        _ => ("kefu-row kefu-from-agent", text.team),
    };
    Some(
        view! {
            <div class=class>
                <span class="kefu-sr">{who}": "</span>
                <p class="kefu-bubble">{body}</p>
                <p class="kefu-meta">
                    <time>{time}</time>
                    {move || mark.get().map(|mark| view! { <MarkView mark /> })}
                </p>
            </div>
        }
        .into_any(),
    )
}

#[component]
pub fn MarkView(mark: Mark) -> impl IntoView {
    let text = Ctx::get().text;
    match mark {
        Mark::Sending => view! {
            <span class="kefu-mark kefu-mark-sending"><ClockIcon />{text.sending}</span>
        }
        .into_any(),
        Mark::Failed(refusal) => {
            let why = match refusal {
                Refusal::TooLong => text.failed_too_long,
                Refusal::NotAllowed => text.failed_not_allowed,
                Refusal::Other => text.failed,
            };
            view! { <span class="kefu-mark kefu-mark-failed">{why}</span> }.into_any()
        }
        Mark::Sent => view! {
            <span class="kefu-mark" title=text.sent><TicksIcon double=false /><span class="kefu-sr">{text.sent}</span></span>
        }
        .into_any(),
        Mark::Delivered => view! {
            <span class="kefu-mark" title=text.delivered>
                <TicksIcon double=true /><span class="kefu-sr">{text.delivered}</span>
            </span>
        }
        .into_any(),
        Mark::Read => view! { <span class="kefu-mark kefu-mark-read">{text.read}</span> }.into_any(),
    }
}

/// `HH:MM` in the visitor's time zone.
pub(super) fn clock(at: Timestamp) -> String {
    #[allow(clippy::cast_precision_loss)]
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.0 as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}
