//! The top of the panel: who the visitor talks to, whether anyone can
//! answer now, and the link's trouble when there is any.

use std::time::Duration;

use js_sys::Date;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

use super::Ctx;
use crate::i18n::Strings;
use super::icons::{ChatIcon, CloseIcon};

#[component]
pub fn Header() -> impl IntoView {
    let ctx = Ctx::get();
    let text = ctx.text;
    // Plain closures rather than memos here and in the banner: a memo of
    // a type no other memo has links its own copy of the memo code, and
    // these re-render only a text node, and only when it changed.
    // Out of hours the subtitle says when the site opens, until then: a
    // timer to that instant makes it look again, no polling.
    let now = RwSignal::new(Date::now());
    let timer_for = StoredValue::new(0_u64);
    Effect::new(move || {
        let Some(Some(opens_at)) = ctx.model.with(|m| m.after_hours(now.get() as u64)) else { return };
        // Once per opening, however often the model changes meanwhile.
        if timer_for.get_value() != opens_at {
            timer_for.set_value(opens_at);
            let wait = (opens_at as f64 - Date::now()).max(0.0) as u64;
            set_timeout(move || now.set(Date::now()), Duration::from_millis(wait + 1));
        }
    });
    let after_hours = move || ctx.model.with(|m| m.after_hours(now.get() as u64));
    let subtitle = move || match after_hours() {
        Some(Some(opens_at)) => [text.back_at.0, &opening(text, opens_at), text.back_at.1].concat(),
        Some(None) => text.closed_now.to_owned(),
        None if ctx.model.with(|m| m.nobody_online()) => text.subtitle_offline.to_owned(),
        None => text.subtitle_online.to_owned(),
    };
    view! {
        <header class="kefu-header">
            <div class="kefu-avatar" aria-hidden="true">
                <ChatIcon />
            </div>
            <div class="kefu-titles">
                <h1 class="kefu-title">{text.title}</h1>
                <p class="kefu-subtitle" class:kefu-after-hours=move || after_hours().is_some()>{subtitle}</p>
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

/// When the site opens, as the visitor reads it in the browser's time
/// zone: "today 09:00", "tomorrow 09:00" or "Monday 09:00".
#[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
fn opening(text: &Strings, opens_at: u64) -> String {
    let at = Date::new(&JsValue::from_f64(opens_at as f64));
    let today = Date::new_0();
    let tomorrow =
        Date::new_with_year_month_day(today.get_full_year(), today.get_month() as i32, today.get_date() as i32 + 1);
    let day = |date: &Date| (date.get_full_year(), date.get_month(), date.get_date());
    let name = if day(&at) == day(&today) {
        text.today
    } else if day(&at) == day(&tomorrow) {
        text.tomorrow
    } else {
        text.weekdays[at.get_day() as usize % 7]
    };
    format!("{name} {:02}:{:02}", at.get_hours(), at.get_minutes())
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
