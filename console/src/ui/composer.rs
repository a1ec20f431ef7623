//! The composer: a reply to the visitor or a private note for the team,
//! with the agent's typing sent to the visitor (replies only) and canned
//! replies: `/shortcut` then Space, Tab or Enter puts the reply in, with a
//! popup of the matching ones.

use std::time::Duration;

use kefu_protocol::frame::Body;
use kefu_protocol::ids::ConversationId;
use kefu_webclient::limit;
use leptos::html::Textarea;
use leptos::prelude::*;
use web_sys::KeyboardEvent;

use super::Ctx;
use crate::api::Canned;
use crate::connection::now;

/// "Typing" is repeated this often while the agent keeps typing, and ends
/// this long after the last keystroke.
const TYPING_REPEAT_MS: u64 = 3_000;
const TYPING_IDLE: Duration = Duration::from_millis(4_000);

/// At most this many canned replies are suggested at once.
const SUGGESTIONS: usize = 6;

/// Reply to the visitor, or write a note only agents see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Reply,
    Note,
}

/// The `/shortcut` being typed at the end of `text`, without the slash.
fn shortcut_typed(text: &str) -> Option<&str> {
    let start = text.rfind(|c: char| c.is_whitespace()).map_or(0, |at| at + 1);
    let word = text[start..].strip_prefix('/')?;
    word.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_').then_some(word)
}

/// `text` with its trailing `/shortcut` replaced by the canned reply.
fn expand(text: &str, canned: &Canned) -> String {
    let start = text.rfind(|c: char| c.is_whitespace()).map_or(0, |at| at + 1);
    format!("{}{}", &text[..start], canned.text)
}

#[component]
pub fn Composer(id: ConversationId) -> impl IntoView {
    let ctx = Ctx::get();
    let input = NodeRef::<Textarea>::new();
    let draft = RwSignal::new(ctx.drafts.with_value(|d| d.get(&id).cloned()).unwrap_or_default());
    let mode = RwSignal::new(Mode::Reply);
    let highlight = RwSignal::new(0_usize);
    // Shows while the box holds a paste cut to the limit.
    let cut = RwSignal::new(false);
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
            input.set_value(&draft.get_untracked());
            let _ = input.focus();
        }
    });
    let suggestions = Memo::new(move |_| {
        let typed = draft.with(|d| shortcut_typed(d).map(str::to_lowercase))?;
        let list: Vec<Canned> = ctx.canned.with(|all| {
            all.iter().filter(|c| c.shortcut.to_lowercase().starts_with(&typed)).take(SUGGESTIONS).cloned().collect()
        });
        (!list.is_empty()).then_some(list)
    });
    let set_text = move |text: String| {
        if let Some(input) = input.get_untracked() {
            input.set_value(&text);
        }
        ctx.drafts.update_value(|d| {
            d.insert(id, text.clone());
        });
        draft.set(text);
    };
    let apply = move |canned: &Canned| {
        set_text(expand(&draft.get_untracked(), canned));
        highlight.set(0);
        if let Some(input) = input.get_untracked() {
            let _ = input.focus();
        }
    };

    let submit = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        let body = match mode.get_untracked() {
            Mode::Reply => {
                stop_typing();
                Body::Text(text)
            }
            Mode::Note => Body::Note(text),
        };
        ctx.connection(|c| c.send(id, body));
        set_text(String::new());
        cut.set(false);
    };
    let on_input = move |_| {
        let Some(input) = input.get_untracked() else {
            return;
        };
        let value = limit::take_edit(&input, |shown| cut.set(shown));
        ctx.drafts.update_value(|d| {
            d.insert(id, value.clone());
        });
        draft.set(value.clone());
        highlight.set(0);
        // Notes are not the visitor's business, not even that one is typed.
        if mode.get_untracked() == Mode::Note {
            return;
        }
        if value.is_empty() {
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
        if event.is_composing() || event.key_code() == 229 {
            return;
        }
        let key = event.key();
        if let Some(list) = suggestions.get_untracked() {
            let typed = draft.with_untracked(|d| shortcut_typed(d).map(str::to_lowercase)).unwrap_or_default();
            match key.as_str() {
                "ArrowDown" | "ArrowUp" => {
                    event.prevent_default();
                    let n = list.len();
                    highlight.update(|h| *h = if key == "ArrowDown" { (*h + 1) % n } else { (*h + n - 1) % n });
                    return;
                }
                "Tab" | "Enter" => {
                    event.prevent_default();
                    apply(&list[highlight.get_untracked().min(list.len() - 1)]);
                    return;
                }
                " " => {
                    if let Some(exact) = list.iter().find(|c| c.shortcut.to_lowercase() == typed) {
                        event.prevent_default();
                        apply(exact);
                        return;
                    }
                }
                "Escape" => {
                    set_text(draft.get_untracked() + " ");
                    return;
                }
                _ => {}
            }
        }
        if key == "Enter" && !event.shift_key() {
            event.prevent_default();
            submit();
        }
    };
    let count = move || draft.with(|d| limit::counter(d));
    let placeholder = move || match mode.get() {
        Mode::Reply => "Write a reply — Enter to send, Shift+Enter for a new line, / for canned replies",
        Mode::Note => "Write a private note — only agents see it",
    };

    view! {
        <form class="composer" class:note-mode=move || mode.get() == Mode::Note
            on:submit=move |event| { event.prevent_default(); submit(); }>
            <div class="composer-modes" role="group" aria-label="Message kind">
                <button type="button" class="mode" class:active=move || mode.get() == Mode::Reply
                    aria-pressed=move || (mode.get() == Mode::Reply).to_string()
                    on:click=move |_| mode.set(Mode::Reply)>"Reply"</button>
                <button type="button" class="mode note" class:active=move || mode.get() == Mode::Note
                    aria-pressed=move || (mode.get() == Mode::Note).to_string()
                    on:click=move |_| { stop_typing(); mode.set(Mode::Note); }>"Private note"</button>
            </div>
            {move || suggestions.get().map(|list| view! {
                <ul class="suggestions" role="listbox" aria-label="Canned replies">
                    {list.into_iter().enumerate().map(|(at, canned)| {
                        let shown = canned.clone();
                        view! {
                            <li role="option" class="suggestion" class:active=move || highlight.get() == at
                                aria-selected=move || (highlight.get() == at).to_string()
                                on:mousedown=move |event| { event.prevent_default(); apply(&canned); }>
                                <span class="shortcut">"/"{shown.shortcut}</span>
                                <span class="suggestion-text">{shown.text}</span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            })}
            <div class="limit" aria-live="polite">
                {move || cut.get().then(|| view! {
                    <span class="cut">"Too long: cut to 4,000 characters."</span>
                })}
                {move || count().map(|count| view! { <span class="count">{count}</span> })}
            </div>
            <div class="composer-row">
                <label class="sr" for="reply">{move || if mode.get() == Mode::Note { "Private note" } else { "Reply" }}</label>
                <textarea id="reply" node_ref=input rows="3" placeholder=placeholder
                    on:input=on_input on:keydown=on_keydown></textarea>
                <button type="submit" class="button primary" disabled=move || draft.with(|d| d.trim().is_empty())>
                    {move || if mode.get() == Mode::Note { "Add note" } else { "Send" }}
                </button>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortcut_is_the_last_word_after_a_slash() {
        assert_eq!(shortcut_typed("/he"), Some("he"));
        assert_eq!(shortcut_typed("Hi! /thanks"), Some("thanks"));
        assert_eq!(shortcut_typed("/"), Some(""));
        assert_eq!(shortcut_typed("and/or"), None);
        assert_eq!(shortcut_typed("/hello "), None);
        let canned = Canned { id: 1, shortcut: "thanks".into(), text: "Thank you for waiting!".into() };
        assert_eq!(expand("Hi! /tha", &canned), "Hi! Thank you for waiting!");
    }
}
