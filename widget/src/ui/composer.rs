//! Writing: the text box (Enter sends, Shift+Enter breaks the line), the
//! emoji grid and the send button, and telling agents the visitor types.

use std::time::Duration;

use leptos::ev;
use leptos::prelude::*;
use web_sys::KeyboardEvent;

use super::Ctx;
use super::icons::{EmojiIcon, SendIcon};
use kefu_webclient::limit;

use crate::connection::{Connection, now};
use crate::typing::{Step, Throttle};

/// Common enough to want without a keyboard that has them.
const EMOJI: [&str; 24] = [
    "😀", "😂", "😊", "😍", "🤔", "😅", "😢", "😮", "😎", "🙏", "👍", "👎", "👋", "👏", "🙌", "💪", "🎉", "❤️", "🔥",
    "✅", "❌", "⭐", "💡", "☕",
];

/// The text box grows with its text up to this height, then scrolls.
const MAX_HEIGHT_PX: i32 = 132;

#[component]
pub fn Composer() -> impl IntoView {
    let ctx = Ctx::get();
    let forms = super::form::Forms::get();
    let text = ctx.text;
    let draft = RwSignal::new(String::new());
    // Shows while the box holds a paste cut to the limit.
    let cut = RwSignal::new(false);
    let input = ctx.composer;
    let typist = Typist::new(ctx, draft);
    let take = move |input: &web_sys::HtmlTextAreaElement| {
        draft.set(limit::take_edit(input, |shown| cut.set(shown)));
        fit(input);
        typist.changed();
    };

    let submit = move || {
        let message = draft.get_untracked();
        if message.trim().is_empty() || !forms.before_send(ctx) {
            return;
        }
        typist.stop();
        ctx.connection(|c| c.send(message));
        draft.set(String::new());
        cut.set(false);
        if let Some(input) = input.get_untracked() {
            input.set_value("");
            fit(&input);
            let _ = input.focus();
        }
    };
    let on_input = move |_| {
        if let Some(input) = input.get_untracked() {
            take(&input);
        }
    };
    let on_keydown = move |event: KeyboardEvent| {
        // Enter also confirms a character in a Chinese input method: that
        // one must not send.
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() && event.key_code() != 229 {
            event.prevent_default();
            submit();
        }
    };
    let insert = move |emoji: &'static str| {
        let Some(input) = input.get_untracked() else {
            return;
        };
        let length = u32::try_from(input.value().encode_utf16().count()).unwrap_or(u32::MAX);
        let start = input.selection_start().ok().flatten().unwrap_or(length);
        let end = input.selection_end().ok().flatten().unwrap_or(start);
        let _ = input.set_range_text_with_start_and_end_and_mode(emoji, start, end, "end");
        take(&input);
        ctx.emoji_open.set(false);
        let _ = input.focus();
    };
    let can_send = Memo::new(move |_| draft.with(|d| !d.trim().is_empty()));
    let count = move || draft.with(|d| limit::counter(d));

    view! {
        <form class="kefu-composer" on:submit=move |event: ev::SubmitEvent| {
            event.prevent_default();
            submit();
        }>
            {move || ctx.emoji_open.get().then(|| view! {
                <div class="kefu-emoji-grid" role="group" aria-label=text.emoji>
                    {EMOJI.iter().map(|&emoji| view! {
                        <button type="button" class="kefu-emoji" on:click=move |_| insert(emoji)>{emoji}</button>
                    }).collect_view()}
                </div>
            })}
            <button type="button" class="kefu-icon-button kefu-emoji-toggle" aria-label=text.emoji title=text.emoji
                aria-expanded=move || ctx.emoji_open.get().to_string()
                on:click=move |_| ctx.emoji_open.update(|open| *open = !*open)>
                <EmojiIcon />
            </button>
            <div class="kefu-limit" aria-live="polite">
                {move || cut.get().then(|| view! { <p class="kefu-cut">{text.cut}</p> })}
                {move || count().map(|count| view! { <span class="kefu-count">{count}</span> })}
            </div>
            <textarea class="kefu-input" rows="1" node_ref=input
                placeholder=text.placeholder aria-label=text.placeholder
                on:input=on_input on:keydown=on_keydown></textarea>
            <button type="submit" class="kefu-send" aria-label=text.send title=text.send
                disabled=move || !can_send.get()>
                <SendIcon />
            </button>
        </form>
    }
}

/// Grows the text box with its content up to `MAX_HEIGHT_PX`, and only
/// then lets it scroll.
fn fit(input: &web_sys::HtmlTextAreaElement) {
    let style = web_sys::HtmlElement::style(input);
    let _ = style.set_property("height", "auto");
    let borders = input.offset_height() - input.client_height();
    let wanted = input.scroll_height() + borders;
    let _ = style.set_property("height", &format!("{}px", wanted.min(MAX_HEIGHT_PX)));
    let _ = style.set_property("overflow-y", if wanted > MAX_HEIGHT_PX { "auto" } else { "hidden" });
}

/// Sends the typing indicator as [`Throttle`] decides, with at most one
/// retry and one idle check waiting at a time.
#[derive(Debug, Clone, Copy)]
struct Typist {
    ctx: Ctx,
    draft: RwSignal<String>,
    throttle: StoredValue<Throttle>,
    retry_waiting: StoredValue<bool>,
    idle_waiting: StoredValue<bool>,
}

impl Typist {
    fn new(ctx: Ctx, draft: RwSignal<String>) -> Typist {
        Typist {
            ctx,
            draft,
            throttle: StoredValue::new(Throttle::default()),
            retry_waiting: StoredValue::new(false),
            idle_waiting: StoredValue::new(false),
        }
    }

    fn changed(self) {
        let draft = self.draft.get_untracked();
        let step = self.throttle.try_update_value(|t| t.changed(now(), draft.trim().is_empty()));
        match step {
            Some(Step::Send) => {
                self.ctx.connection(|c| c.typing(true, Some(draft)));
                self.wait_idle(crate::typing::IDLE_AFTER_MS);
            }
            Some(Step::RetryAt(at)) if !self.retry_waiting.get_value() => {
                self.retry_waiting.set_value(true);
                set_timeout(
                    move || {
                        self.retry_waiting.set_value(false);
                        self.changed();
                    },
                    Duration::from_millis(at.since(now())),
                );
            }
            Some(Step::Stop) => self.ctx.connection(|c| c.typing(false, None)),
            _ => {}
        }
    }

    fn wait_idle(self, ms: u64) {
        if self.idle_waiting.get_value() {
            return;
        }
        self.idle_waiting.set_value(true);
        set_timeout(
            move || {
                self.idle_waiting.set_value(false);
                match self.throttle.try_update_value(|t| t.idle(now())) {
                    Some(Ok(true)) => self.ctx.connection(|c| c.typing(false, None)),
                    Some(Err(at)) => self.wait_idle(at.since(now())),
                    _ => {}
                }
            },
            Duration::from_millis(ms),
        );
    }

    /// The message went out: the visitor is not typing any more.
    fn stop(self) {
        if self.throttle.try_update_value(Throttle::stop).unwrap_or(false) {
            self.ctx.connection(|c: &Connection| c.typing(false, None));
        }
    }
}
