//! What a handler takes from a request: who it is from ([`CurrentAgent`],
//! [`Admin`], [`Owner`]), and axum's `Json`, `Query` and `Path`, answering a
//! rejection with the API's `{"error": ...}` body instead of plain text.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use crate::auth::{self, cookie};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{self, Role};

/// The header a cookie-authenticated request that changes something must
/// carry, with the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request proved who it is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// The `kefu_session` cookie.
    Cookie(String),
}

impl Credential {
    /// The request's credential: the bearer token if there is an
    /// `Authorization` header, else the session cookie.
    pub fn from_headers(headers: &HeaderMap) -> Option<Credential> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
            return Some(Credential::Bearer(token.to_owned()));
        }
        cookie::session_token(headers).map(|token| Credential::Cookie(token.to_owned()))
    }

    /// The session token.
    pub fn token(&self) -> &str {
        match self {
            Credential::Bearer(token) | Credential::Cookie(token) => token,
        }
    }
}

/// The agent a request is made by, from a bearer token or the session
/// cookie; a cookie request other than GET must also pass the CSRF and
/// origin checks.
#[derive(Debug, Clone)]
pub struct CurrentAgent {
    pub agent: store::Agent,
    pub credential: Credential,
    /// Names the session: `auth::token_hash` of its token.
    pub token_hash: String,
}

impl CurrentAgent {
    /// The CSRF token to send back, for a cookie session.
    pub fn csrf(&self) -> Option<String> {
        match &self.credential {
            Credential::Cookie(token) => Some(auth::csrf_token(token)),
            Credential::Bearer(_) => None,
        }
    }

    /// The agent if it is an admin; 403 for anyone else.
    pub fn admin(&self) -> Result<&store::Agent, Error> {
        match self.agent.role {
            Role::Admin => Ok(&self.agent),
            Role::Agent => Err(Error::Forbidden("only admins may do this")),
        }
    }
}

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<CurrentAgent, Error> {
        let credential = Credential::from_headers(&parts.headers).ok_or(Error::Unauthenticated)?;
        let signed_in = auth::signed_in(&state.store, credential.token()).await?.ok_or(Error::Unauthenticated)?;
        if let Credential::Cookie(token) = &credential
            && !matches!(parts.method, Method::GET | Method::HEAD)
        {
            // A browser sends the cookie wherever the request comes from;
            // only the relay's own pages can read and send the CSRF token.
            if !cookie::same_origin(&parts.headers, state.config.public_url.as_ref()) {
                return Err(Error::Forbidden("cross-origin requests may not use the session cookie"));
            }
            let sent = parts.headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
            if !auth::secrets_equal(sent, &auth::csrf_token(token)) {
                return Err(Error::Forbidden("missing or wrong X-CSRF-Token header"));
            }
        }
        let auth::SignedIn { agent, token_hash } = signed_in;
        Ok(CurrentAgent { agent, credential, token_hash })
    }
}

/// An admin making the request; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Admin(pub store::Agent);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, Error> {
        let current = CurrentAgent::from_request_parts(parts, state).await?;
        current.admin()?;
        Ok(Admin(current.agent))
    }
}

/// An owner of the deployment making the request (see `http::owner`);
/// anyone else gets 403. Owners are people, by login email, so this holds
/// on whichever site's agent row they are signed in as.
#[derive(Debug, Clone)]
pub struct Owner(pub CurrentAgent);

impl FromRequestParts<AppState> for Owner {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Owner, Error> {
        let current = CurrentAgent::from_request_parts(parts, state).await?;
        if !state.store.is_owner(&current.agent.email).await? {
            return Err(Error::Forbidden("only the deployment's owners may do this"));
        }
        Ok(Owner(current))
    }
}

/// A JSON request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Json<T>, Error> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(Error::BadRequest(rejection.body_text())),
        }
    }
}

/// The query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Query<T>, Error> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(Error::BadRequest(rejection.body_text())),
        }
    }
}

/// Path parameters. An id that does not parse names nothing: 404.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(_) => Err(Error::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_tokens_win_over_cookies() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, HeaderValue::from_static(value));
            }
            headers
        };
        let both = headers(&[("authorization", "Bearer tok"), ("cookie", "kefu_session=cook")]);
        assert_eq!(Credential::from_headers(&both), Some(Credential::Bearer("tok".into())));
        let cookie = headers(&[("cookie", "kefu_session=cook")]);
        assert_eq!(Credential::from_headers(&cookie), Some(Credential::Cookie("cook".into())));
        assert_eq!(Credential::from_headers(&headers(&[("authorization", "Basic x")])), None);
    }
}
