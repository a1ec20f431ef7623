//! The top of the panel: who the visitor talks to, whether anyone can
//! answer now, and the link's trouble when there is any.

use leptos::prelude::*;

use super::Ctx;
use super::icons::{ChatIcon, CloseIcon};

#[component]
pub fn Header() -> impl IntoView {
    let ctx = Ctx::get();
    let text = ctx.text;
    // Plain closures rather than memos here and in the banner: a memo of
    // a type no other memo has links its own copy of the memo code, and
    // these re-render only a text node, and only when it changed.
    let subtitle =
        move || if ctx.model.with(|m| m.nobody_online()) { text.subtitle_offline } else { text.subtitle_online };
    view! {
        <header class="kefu-header">
            <div class="kefu-avatar" aria-hidden="true">
                <ChatIcon />
            </div>
            <div class="kefu-titles">
                <h1 class="kefu-title">{text.title}</h1>
                <p class="kefu-subtitle">{subtitle}</p>
            </div>
            {ctx.embed.then(|| view! {
                <button type="button" class="kefu-icon-button" aria-label=text.close title=text.close
                    on:click=move |_| ctx.close()>
                    <CloseIcon />
                </button>
            })}
        </header>
    }
}

/// "Reconnecting…" while the link is down after having been up. The live
/// region is always in the page, so screen readers announce its changes.
#[component]
pub fn Banner() -> impl IntoView {
    let ctx = Ctx::get();
    let text = ctx.text;
    let message = move || {
        ctx.model.with(|m| {
            if m.unavailable() {
                Some(text.unavailable)
            } else if m.reconnecting() {
                Some(text.reconnecting)
            } else if ctx.resume_refused {
                Some(text.resume_failed)
            } else {
                None
            }
        })
    };
    view! {
        <div role="status" class="kefu-status">
            {move || message().map(|message| view! { <p class="kefu-banner">{message}</p> })}
        </div>
    }
}
