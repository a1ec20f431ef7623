//! Inline SVG icons: no icon font and no image request on a customer's
//! page. Drawn on a 24-unit grid with the current text colour.

use leptos::prelude::*;

#[component]
pub fn CloseIcon() -> impl IntoView {
    view! {
        <svg class="kefu-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M6 6l12 12M18 6L6 18" />
        </svg>
    }
}

#[component]
pub fn SendIcon() -> impl IntoView {
    view! {
        <svg class="kefu-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M4.5 11.5L20 4l-5.5 16-3-6.5z" />
            <path d="M11.5 13.5L20 4" />
        </svg>
    }
}

#[component]
pub fn EmojiIcon() -> impl IntoView {
    view! {
        <svg class="kefu-icon" viewBox="0 0 24 24" aria-hidden="true">
            <circle cx="12" cy="12" r="9" />
            <path d="M8.5 14.5c.9 1.3 2.1 2 3.5 2s2.6-.7 3.5-2" />
            <path d="M9 9.5v.5M15 9.5v.5" />
        </svg>
    }
}

#[component]
pub fn ChatIcon() -> impl IntoView {
    view! {
        <svg class="kefu-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M5 5.5h14a1 1 0 0 1 1 1V16a1 1 0 0 1-1 1H10l-4.5 3.5V17H5a1 1 0 0 1-1-1V6.5a1 1 0 0 1 1-1z" />
        </svg>
    }
}

#[component]
pub fn ClockIcon() -> impl IntoView {
    view! {
        <svg class="kefu-icon kefu-icon-small" viewBox="0 0 24 24" aria-hidden="true">
            <circle cx="12" cy="12" r="8" />
            <path d="M12 8v4.5l3 2" />
        </svg>
    }
}

/// One tick for "sent", two for "delivered".
#[component]
pub fn TicksIcon(double: bool) -> impl IntoView {
    view! {
        <svg class="kefu-icon kefu-icon-small" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M3 12.5l4.5 4.5L17 7.5" />
            {double.then(|| view! { <path d="M12.5 16.5l.5.5L22 7.5" /> })}
        </svg>
    }
}
