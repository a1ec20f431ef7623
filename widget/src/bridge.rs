//! Talking to the page that embeds the widget, with `postMessage`, and to
//! a native app that shows the full page (`/c/KEY`) in a webview. Every
//! message is a plain object with `kefu: 1` and a `type`.
//!
//! From the parent: `open`, `close`, `setUser`, `setAttributes`, `page`.
//! To the parent: `ready`, `close`, `unread`, `message`.
//!
//! # The native bridge
//!
//! A mobile app has no loader to call `setUser`. It can instead:
//!
//! - open `/c/KEY#kefu_user=TOKEN` with a signed identity token from its
//!   backend (`config::identity_from_fragment`): the fragment never
//!   reaches a server log or a `Referer`, and the widget removes it from
//!   the address at once;
//! - send the same messages as a parent page by dispatching a `kefu`
//!   event on the page's window from its own injected script:
//!   `window.dispatchEvent(new CustomEvent("kefu", {detail: {kefu: 1,
//!   type: "setUser", user: {token}}}))` (or `setAttributes`, `page`). Only
//!   scripts running in the page itself can dispatch it, never another
//!   frame;
//! - hear every message to the parent, plus `openLink` (`url`) when the
//!   visitor follows a link, on whichever handler the webview installed:
//!   `window.webkit.messageHandlers.kefu.postMessage(object)` (iOS
//!   WKWebView), `window.KefuAndroid.postMessage(json)` (an Android
//!   `addJavascriptInterface` named `KefuAndroid`) or
//!   `window.ReactNativeWebView.postMessage(json)`. With a handler
//!   installed, links open through the app (outside the webview).

use js_sys::{Array, Object, Reflect};
use kefu_protocol::codec::clip_bytes;
use kefu_protocol::frame::{Attribute, Identify, Visit};
use wasm_bindgen::{JsCast, JsValue};

use crate::model::Arrived;

/// Longest user id, name, email or hash the widget passes on, in bytes.
const MAX_FIELD: usize = 256;
/// Longest signed identity token passed on, in bytes (the relay reads no
/// longer one).
pub const MAX_TOKEN: usize = 2_048;
/// Longest URL, title or attribute value passed on, in bytes.
const MAX_TEXT: usize = 2_048;
/// Most attributes taken from one `setAttributes`.
const MAX_ATTRIBUTES: usize = 50;

/// What the parent page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Open,
    Close,
    SetUser(Identify),
    SetAttributes(Vec<Attribute>),
    Page(Visit),
}

impl Inbound {
    /// Reads a `postMessage` payload; anything else is `None`. Values are
    /// clipped so that no page can make a frame the relay would refuse:
    /// the session repeats these after every reconnect.
    pub fn parse(data: &JsValue) -> Option<Inbound> {
        if !data.is_object() || get(data, "kefu").as_f64() != Some(1.0) {
            return None;
        }
        Some(match get(data, "type").as_string()?.as_str() {
            "open" => Inbound::Open,
            "close" => Inbound::Close,
            "setUser" => {
                let user = get(data, "user");
                let field =
                    |name: &str| text(&get(&user, name)).map(|v| clip_bytes(v, MAX_FIELD)).filter(|v| !v.is_empty());
                match text(&get(&user, "token")).filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN) {
                    // A signed token carries the user id, name and email;
                    // the relay reads them from it.
                    Some(token) => signed_user(token),
                    None => Inbound::SetUser(Identify {
                        user_id: field("id")?,
                        name: field("name"),
                        email: field("email"),
                        hash: field("hash"),
                    }),
                }
            }
            "setAttributes" => {
                let attributes = get(data, "attributes");
                if !attributes.is_object() {
                    return None;
                }
                let set = Object::entries(attributes.unchecked_ref())
                    .iter()
                    .filter_map(|entry| {
                        let entry: Array = entry.dyn_into().ok()?;
                        let key = clip_bytes(entry.get(0).as_string()?, MAX_FIELD);
                        let value = clip_bytes(text(&entry.get(1))?, MAX_TEXT);
                        Some(Attribute { key, value })
                    })
                    .take(MAX_ATTRIBUTES)
                    .collect();
                Inbound::SetAttributes(set)
            }
            "page" => Inbound::Page(Visit {
                url: clip_bytes(text(&get(data, "url"))?, MAX_TEXT),
                title: text(&get(data, "title")).map(|t| clip_bytes(t, MAX_TEXT)).unwrap_or_default(),
                referrer: text(&get(data, "referrer")).map(|r| clip_bytes(r, MAX_TEXT)).filter(|r| !r.is_empty()),
            }),
            _ => return None,
        })
    }
}

/// `setUser` with a signed identity token (from the parent, the native
/// bridge or the page's fragment).
pub fn signed_user(token: String) -> Inbound {
    Inbound::SetUser(Identify { user_id: String::new(), name: None, email: None, hash: Some(token) })
}

/// The page that embeds the widget, if any, and the origin it must have.
#[derive(Debug, Clone)]
pub struct Parent {
    origin: Option<String>,
}

impl Parent {
    /// Posts go to `origin` only, the origin the relay vouched for;
    /// `None` (full page, or nobody vouched) posts nothing.
    pub fn new(origin: Option<String>) -> Parent {
        Parent { origin }
    }

    /// The widget is mounted and listens.
    pub fn ready(&self) {
        self.post("ready", |_| {});
    }

    /// The origin posts go to, if any.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The visitor closed the panel.
    pub fn close(&self) {
        self.post("close", |_| {});
    }

    pub fn unread(&self, count: u32) {
        self.post("unread", |message| set(message, "count", &JsValue::from(count)));
    }

    pub fn message(&self, arrived: &Arrived) {
        self.post("message", |message| {
            let inner = Object::new();
            set(&inner, "text", &JsValue::from_str(&arrived.text));
            set(&inner, "from", &JsValue::from_str(arrived.sender.as_str()));
            // f64 holds every millisecond timestamp until the year 287396.
            #[allow(clippy::cast_precision_loss)]
            set(&inner, "at", &JsValue::from_f64(arrived.at.0 as f64));
            set(message, "message", &inner);
        });
    }

    /// Whether `event` came from the parent page, the only sender the
    /// widget obeys: not another frame, not the host page's other windows,
    /// and from the origin the loader named when it did name one.
    pub fn sent(&self, event: &web_sys::MessageEvent) -> bool {
        let Some(window) = web_sys::window() else {
            return false;
        };
        let from_parent = match (event.source(), window.parent().ok().flatten()) {
            (Some(source), Some(parent)) => Object::is(&source, &parent) && !Object::is(&source, &window),
            _ => false,
        };
        from_parent && self.origin.as_ref().is_none_or(|origin| event.origin() == *origin)
    }

    fn post(&self, kind: &str, fill: impl FnOnce(&Object)) {
        let message = Object::new();
        set(&message, "kefu", &JsValue::from(1));
        set(&message, "type", &JsValue::from_str(kind));
        fill(&message);
        native::post(&message);
        let Some(origin) = &self.origin else {
            return;
        };
        let Some(parent) = web_sys::window().and_then(|window| window.parent().ok().flatten()) else {
            return;
        };
        let _ = parent.post_message(&message, origin);
    }
}

/// The native app around the full-page widget, if it installed a handler.
pub mod native {
    use js_sys::{Function, JSON, Object};
    use wasm_bindgen::{JsCast, JsValue};

    use super::{get, set};

    /// Where a message for the app goes, and in which shape.
    enum Handler {
        /// iOS: `webkit.messageHandlers.kefu`, takes the object.
        Object(JsValue),
        /// Android and React Native: take a JSON string.
        Json(JsValue),
    }

    fn handler() -> Option<Handler> {
        let window: JsValue = web_sys::window()?.into();
        let ios = get(&get(&get(&window, "webkit"), "messageHandlers"), "kefu");
        if ios.is_object() {
            return Some(Handler::Object(ios));
        }
        ["KefuAndroid", "ReactNativeWebView"]
            .into_iter()
            .map(|name| get(&window, name))
            .find(|bridge| get(bridge, "postMessage").is_function())
            .map(Handler::Json)
    }

    /// Whether an app listens (links then open through it).
    pub fn present() -> bool {
        handler().is_some()
    }

    /// Hands `message` to the app, if one listens.
    pub fn post(message: &Object) {
        let (target, argument) = match handler() {
            Some(Handler::Object(target)) => (target, JsValue::from(message)),
            Some(Handler::Json(target)) => match JSON::stringify(message) {
                Ok(json) => (target, json.into()),
                Err(_) => return,
            },
            None => return,
        };
        if let Ok(post) = get(&target, "postMessage").dyn_into::<Function>() {
            let _ = post.call1(&target, &argument);
        }
    }

    /// Asks the app to open `url` outside the webview; false when no app
    /// listens, and the link should open as usual.
    pub fn open_link(url: &str) -> bool {
        if !present() {
            return false;
        }
        let message = Object::new();
        set(&message, "kefu", &JsValue::from(1));
        set(&message, "type", &JsValue::from_str("openLink"));
        set(&message, "url", &JsValue::from_str(url));
        post(&message);
        true
    }
}

fn get(target: &JsValue, key: &str) -> JsValue {
    if !target.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn set(target: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// Strings as they are; numbers and booleans as JavaScript prints them
/// (`setAttributes({ seats: 5, trial: true })`); anything else is no
/// text. JavaScript does the printing, so the widget carries no float
/// formatting code.
fn text(value: &JsValue) -> Option<String> {
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    if value.as_f64().is_some() {
        let number: &js_sys::Number = value.unchecked_ref();
        return number.to_string_with_radix(10).ok().map(String::from);
    }
    value.as_bool().map(|b| if b { "true" } else { "false" }.to_owned())
}
