//! The HTTP side: `POST /api/login`, and where the token is kept.
//!
//! The token lives in `sessionStorage` for now: it survives a reload of the
//! tab and ends with it. An HttpOnly cookie with CSRF protection replaces
//! it in a later step.

use js_sys::{JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response, Storage};

const TOKEN_KEY: &str = "kefu-console-token";
const NAME_KEY: &str = "kefu-console-name";

/// A signed-in agent, as this tab keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub token: String,
    /// The agent's display name, for the header.
    pub name: String,
}

/// Asks the relay for a token. The error is a sentence for the login
/// screen.
pub async fn login(email: &str, password: &str) -> Result<Login, String> {
    let body = js_sys::Object::new();
    let _ = Reflect::set(&body, &"email".into(), &email.into());
    let _ = Reflect::set(&body, &"password".into(), &password.into());
    let body = JSON::stringify(&body).map_err(|_| "Could not prepare the request.".to_owned())?;

    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.into());
    let request = Request::new_with_str_and_init("/api/login", &init).map_err(|_| unreachable_relay())?;
    let _ = request.headers().set("content-type", "application/json");
    let window = web_sys::window().ok_or_else(unreachable_relay)?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| unreachable_relay())?
        .dyn_into()
        .map_err(|_| unreachable_relay())?;
    let json = match response.json() {
        Ok(promise) => JsFuture::from(promise).await.unwrap_or(JsValue::NULL),
        Err(_) => JsValue::NULL,
    };
    let field = |value: &JsValue, name: &str| {
        Reflect::get(value, &name.into()).ok().and_then(|v| v.as_string()).filter(|s| !s.is_empty())
    };
    match response.status() {
        200 => {
            let token = field(&json, "token").ok_or_else(|| "The relay sent no token.".to_owned())?;
            let agent = Reflect::get(&json, &"agent".into()).unwrap_or(JsValue::NULL);
            let name = field(&agent, "name").or_else(|| field(&agent, "email")).unwrap_or_default();
            let login = Login { token, name };
            store(Some(&login));
            Ok(login)
        }
        401 => Err("Wrong email or password.".to_owned()),
        429 => Err("Too many attempts. Wait a minute and try again.".to_owned()),
        status => Err(field(&json, "error")
            .map_or_else(|| format!("The relay answered {status}. Try again."), |e| format!("The relay says: {e}."))),
    }
}

fn unreachable_relay() -> String {
    "Cannot reach the relay. Check the connection and try again.".to_owned()
}

/// The login this tab kept, if any.
pub fn stored() -> Option<Login> {
    let storage = storage()?;
    let token = storage.get_item(TOKEN_KEY).ok().flatten().filter(|t| !t.is_empty())?;
    let name = storage.get_item(NAME_KEY).ok().flatten().unwrap_or_default();
    Some(Login { token, name })
}

/// Keeps `login` for this tab, or forgets it (logout, expired token).
pub fn store(login: Option<&Login>) {
    let Some(storage) = storage() else {
        return;
    };
    match login {
        Some(login) => {
            let _ = storage.set_item(TOKEN_KEY, &login.token);
            let _ = storage.set_item(NAME_KEY, &login.name);
        }
        None => {
            let _ = storage.remove_item(TOKEN_KEY);
            let _ = storage.remove_item(NAME_KEY);
        }
    }
}

fn storage() -> Option<Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}
