//! Talking to the page that embeds the widget, with `postMessage`. Every
//! message is a plain object with `kefu: 1` and a `type`.
//!
//! From the parent: `open`, `close`, `setUser`, `setAttributes`, `page`.
//! To the parent: `ready`, `close`, `unread`, `message`.

use js_sys::{Array, Object, Reflect};
use kefu_protocol::codec::clip;
use kefu_protocol::frame::{Attribute, Identify, Visit};
use wasm_bindgen::{JsCast, JsValue};

use crate::model::Arrived;

/// Longest user id, name, email or hash the widget passes on, in bytes.
const MAX_FIELD: usize = 256;
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
                let field = |name: &str| text(&get(&user, name)).map(|v| clip(v, MAX_FIELD)).filter(|v| !v.is_empty());
                Inbound::SetUser(Identify {
                    user_id: field("id")?,
                    name: field("name"),
                    email: field("email"),
                    hash: field("hash"),
                })
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
                        let key = clip(entry.get(0).as_string()?, MAX_FIELD);
                        let value = clip(text(&entry.get(1))?, MAX_TEXT);
                        Some(Attribute { key, value })
                    })
                    .take(MAX_ATTRIBUTES)
                    .collect();
                Inbound::SetAttributes(set)
            }
            "page" => Inbound::Page(Visit {
                url: clip(text(&get(data, "url"))?, MAX_TEXT),
                title: text(&get(data, "title")).map(|t| clip(t, MAX_TEXT)).unwrap_or_default(),
                referrer: text(&get(data, "referrer")).map(|r| clip(r, MAX_TEXT)).filter(|r| !r.is_empty()),
            }),
            _ => return None,
        })
    }
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
        let Some(origin) = &self.origin else {
            return;
        };
        let Some(parent) = web_sys::window().and_then(|window| window.parent().ok().flatten()) else {
            return;
        };
        let message = Object::new();
        set(&message, "kefu", &JsValue::from(1));
        set(&message, "type", &JsValue::from_str(kind));
        fill(&message);
        let _ = parent.post_message(&message, origin);
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
