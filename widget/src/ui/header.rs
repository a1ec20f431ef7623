//! The top of the panel: who the visitor talks to, whether anyone can
//! answer now, and the link's trouble when there is any.

use std::time::Duration;

use js_sys::Date;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

use kefu_protocol::ids::Timestamp;

use super::Ctx;
use super::icons::{ChatIcon, CloseIcon};
use super::messages::clock;
use crate::i18n::Strings;

#[component]
pub fn Header() -> impl IntoView {
    let ctx = Ctx::get();
    let text = ctx.text;
    // Plain closures rather than memos here and in the banner: a memo of
    // a type no other memo has links its own copy of the memo code, and
    // these re-render only a text node, and only when it changed.
    // Out of hours the subtitle says when the site opens, until then: a
    // timer to that instant makes it look again, no polling.
    // Flipped by the timer: whatever reads the clock looks again.
    let tick = RwSignal::new(false);
    let after_hours = move || {
        tick.track();
        ctx.model.with(|m| m.after_hours(now_ms()))
    };
    let timer_for = StoredValue::new(0_u64);
    Effect::new(move || {
        let Some(Some(opens_at)) = after_hours() else { return };
        // Once per opening, however often the model changes meanwhile.
        if timer_for.get_value() != opens_at {
            timer_for.set_value(opens_at);
            let wait = opens_at.saturating_sub(now_ms()) + 1;
            set_timeout(move || tick.update(|t| *t = !*t), Duration::from_millis(wait));
        }
    });
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
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn opening(text: &Strings, opens_at: u64) -> String {
    // Days since 1970 in the browser's zone, each instant with its own
    // offset (daylight saving may differ between now and then).
    let local_day = |ms: u64| {
        let offset_minutes = Date::new(&JsValue::from_f64(ms as f64)).get_timezone_offset();
        ((ms as f64 - offset_minutes * 60_000.0) / 86_400_000.0).floor() as i64
    };
    let (day, today) = (local_day(opens_at), local_day(now_ms()));
    let name = match day - today {
        0 => text.today,
        1 => text.tomorrow,
        // 1970-01-01 was a Thursday; `weekdays` starts on Sunday.
        _ => text.weekdays[(day + 4).rem_euclid(7) as usize],
    };
    [name, " ", &clock(Timestamp(opens_at))].concat()
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn now_ms() -> u64 {
    Date::now() as u64
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
