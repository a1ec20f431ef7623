//! Telling the agent about news while they look elsewhere: a short beep
//! (WebAudio, no sound file) and a browser notification.
//!
//! Browsers allow both only after the user did something on the page: the
//! audio context is made on the first click or key press ([`prime`]), and
//! notification permission is asked when the agent clicks the bell.

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{AudioContext, Notification, NotificationOptions, NotificationPermission};

use crate::model::News;

thread_local! {
    static AUDIO: RefCell<Option<AudioContext>> = const { RefCell::new(None) };
    /// Every notification's click handler: bring the console forward.
    static FOCUS: Closure<dyn FnMut()> = Closure::new(|| {
        if let Some(window) = web_sys::window() {
            let _ = window.focus();
        }
    });
}

/// Makes the audio context, inside a user gesture so it may play.
pub fn prime() {
    AUDIO.with(|audio| {
        let mut audio = audio.borrow_mut();
        if audio.is_none() {
            *audio = AudioContext::new().ok();
        }
        if let Some(context) = audio.as_ref() {
            let _ = context.resume();
        }
    });
}

/// Whether the browser shows notifications from this page: `Some(true)`
/// granted, `Some(false)` denied, `None` not asked yet (or unsupported).
pub fn permission() -> Option<bool> {
    if !supported() {
        return Some(false);
    }
    match Notification::permission() {
        NotificationPermission::Granted => Some(true),
        NotificationPermission::Denied => Some(false),
        _ => None,
    }
}

fn supported() -> bool {
    web_sys::window().is_some_and(|w| js_sys::Reflect::has(&w, &"Notification".into()).unwrap_or(false))
}

/// Asks for permission (call from a click); `done` runs with the answer.
pub fn ask(done: impl Fn(Option<bool>) + 'static) {
    if !supported() {
        return;
    }
    prime();
    if let Ok(promise) = Notification::request_permission() {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            done(permission());
        });
    }
}

/// A beep, and a notification when the page is not on screen or the
/// conversation is not open.
pub fn alert(news: &News) {
    beep();
    if permission() != Some(true) {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(&news.body);
    options.set_tag(&format!("kefu-{}", news.conversation));
    if let Ok(notification) = Notification::new_with_options(&news.title, &options) {
        FOCUS.with(|focus| notification.set_onclick(Some(focus.as_ref().unchecked_ref())));
    }
}

/// Two short rising tones.
fn beep() {
    AUDIO.with(|audio| {
        let audio = audio.borrow();
        let Some(context) = audio.as_ref() else {
            return;
        };
        let start = context.current_time();
        for (offset, frequency) in [(0.0, 660.0), (0.12, 880.0)] {
            let (Ok(oscillator), Ok(gain)) = (context.create_oscillator(), context.create_gain()) else {
                return;
            };
            oscillator.frequency().set_value(frequency);
            let at = start + offset;
            let volume = gain.gain();
            let _ = volume.set_value_at_time(0.0001, at);
            let _ = volume.exponential_ramp_to_value_at_time(0.15, at + 0.02);
            let _ = volume.exponential_ramp_to_value_at_time(0.0001, at + 0.11);
            let _ = oscillator.connect_with_audio_node(&gain);
            let _ = gain.connect_with_audio_node(&context.destination());
            let _ = oscillator.start_with_when(at);
            let _ = oscillator.stop_with_when(at + 0.12);
        }
    });
}
