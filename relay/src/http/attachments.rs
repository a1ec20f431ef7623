//! `POST /api/attachments` takes an upload; `GET /api/attachments/{id}`
//! hands it back. Both for a site's agents (bearer token or the console's
//! cookie) and for visitors, who show their id and token:
//! `Authorization: Visitor {visitor id} {token}` with `?site={key}`.
//!
//! What is served can never run in the relay's origin: only PNG, JPEG,
//! GIF and WebP (sniffed when uploaded) are shown inline, everything else
//! is `application/octet-stream` with `Content-Disposition: attachment`,
//! and every answer is `nosniff` with a `sandbox` CSP. A file of another
//! site or another visitor's conversation answers 404, as a missing one.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, RANGE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kefu_protocol::frame::{Author, FileRef};
use kefu_protocol::ids::{AttachmentId, SiteId, SiteKey, VisitorId, VisitorToken};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::extract::{CurrentAgent, Path, Query};
use crate::attachments::{self, Refused};
use crate::auth::{self, visitor_token};
use crate::error::Error;
use crate::state::AppState;

/// Who uploads or fetches: an agent of a site, or a visitor of one.
#[derive(Debug, Clone, Copy)]
pub struct Party {
    pub site: SiteId,
    pub author: Author,
}

/// `?site=` for visitors; agents' site is their own.
#[derive(Debug, Deserialize)]
struct SiteQuery {
    site: Option<String>,
}

impl FromRequestParts<AppState> for Party {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Party, Error> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
        let Some(proof) = header.and_then(|value| value.strip_prefix("Visitor ")).map(str::to_owned) else {
            let agent = CurrentAgent::from_request_parts(parts, state).await?;
            return Ok(Party { site: agent.agent.site, author: Author::Agent(agent.agent.id) });
        };
        let Query(SiteQuery { site }) = Query::<SiteQuery>::from_request_parts(parts, state).await?;
        let key = site.and_then(|key| SiteKey::new(key).ok()).ok_or(Error::Unauthenticated)?;
        let site = state.store.site_by_key(&key).await?.ok_or(Error::Unauthenticated)?.id;
        let (visitor, token) = proof.trim().split_once(' ').ok_or(Error::Unauthenticated)?;
        let visitor = VisitorId(visitor.parse().map_err(|_| Error::Unauthenticated)?);
        let token = VisitorToken::new(token.trim()).map_err(|_| Error::Unauthenticated)?;
        let proven = if visitor_token::is_signed(&token) {
            let key = state.visitor_keys.get(&state.store, site).await?;
            visitor_token::verify(&key, site, visitor, &token).is_some()
        } else {
            let stored = state.store.visitor_token_hash(site, visitor).await?;
            stored.is_some_and(|hash| auth::secrets_equal(&hash, &auth::token_hash(token.as_str())))
        };
        if !proven {
            return Err(Error::Unauthenticated);
        }
        Ok(Party { site, author: Author::Visitor(visitor) })
    }
}

/// `?name=` of an upload: the file's name as the sender has it.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    name: String,
}

/// `POST /api/attachments?name=`: the body is the file's bytes. Answers
/// 201 with the stored [`FileRef`] (its id, the cleaned name, the
/// sniffed type, the size); 413 over the site's limit, 415 for a
/// program, 400 for an empty file.
pub async fn upload(
    State(state): State<AppState>,
    party: Party,
    Query(UploadQuery { name }): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<FileRef>), Response> {
    // Refused before a byte is read when the client says how many.
    let limit = attachments::file_limit(&state, party.site).await.map_err(|e| Error::Store(e).into_response())?;
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(refusal(&Refused::TooLarge { limit }));
    }
    match attachments::upload(&state, party.site, party.author, &name, body.into_data_stream()).await {
        Ok(file) => Ok((StatusCode::CREATED, axum::Json(file))),
        Err(refused) => Err(refusal(&refused)),
    }
}

fn refusal(refused: &Refused) -> Response {
    let status = match refused {
        Refused::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Refused::Type(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Refused::Empty | Refused::CutShort => StatusCode::BAD_REQUEST,
        Refused::Io(_) | Refused::Store(_) => {
            tracing::error!(error = %refused, "upload failed");
            return Error::Internal(refused.to_string()).into_response();
        }
    };
    (status, axum::Json(serde_json::json!({ "error": refused.to_string() }))).into_response()
}

/// `GET /api/attachments/{id}`: the file, to its uploader, to the site's
/// agents, and to the visitor of the conversation it was sent in. One
/// `Range: bytes=` range is honoured.
pub async fn download(
    State(state): State<AppState>,
    party: Party,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let id: AttachmentId = id.parse().map_err(|_| Error::NotFound)?;
    let found = state.store.attachment(party.site, id).await?.ok_or(Error::NotFound)?;
    let allowed = match party.author {
        Author::Agent(_) => true,
        visitor => found.uploader == visitor || found.visitor.map(Author::Visitor) == Some(visitor),
    };
    if !allowed {
        return Err(Error::NotFound);
    }
    let (mut file, len) = state.storage().open(party.site, id).await.map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound,
        _ => Error::Io(error),
    })?;
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(asked) => match byte_range(asked, len) {
            Some(range) => Some(range),
            None => {
                let mut refused = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                refused.headers_mut().insert(CONTENT_RANGE, header(&format!("bytes */{len}")));
                return Ok(refused);
            }
        },
    };
    let (status, start, end) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let body = Body::from_stream(ReaderStream::new(file.take(count)));
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    let inline = attachments::is_plain_image(&found.file.mime);
    let mime = if inline { found.file.mime.as_str() } else { "application/octet-stream" };
    out.insert(CONTENT_TYPE, header(mime));
    out.insert(CONTENT_LENGTH, header(&count.to_string()));
    out.insert(CONTENT_DISPOSITION, header(&disposition(inline, &found.file.name)));
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        out.insert(CONTENT_RANGE, header(&format!("bytes {start}-{end}/{len}")));
    }
    Ok(response)
}

/// The first range of a `Range: bytes=a-b` header, clamped to `len`, as
/// inclusive offsets; `None` if it cannot be satisfied.
fn byte_range(asked: &str, len: u64) -> Option<(u64, u64)> {
    let first = asked.strip_prefix("bytes=")?.split(',').next()?.trim();
    let (start, end) = first.split_once('-')?;
    let last = len.checked_sub(1)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let suffix: u64 = suffix.parse().ok()?;
            (len.saturating_sub(suffix), last)
        }
        (start, "") => (start.parse().ok()?, last),
        (start, end) => (start.parse().ok()?, end.parse::<u64>().ok()?.min(last)),
    };
    (start <= end && start <= last).then_some((start, end))
}

/// `inline` or `attachment`, with the name plain (ASCII, quotes and
/// backslashes replaced) and in full (RFC 5987 percent-encoding).
fn disposition(inline: bool, name: &str) -> String {
    let how = if inline { "inline" } else { "attachment" };
    let plain: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{how}; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_and_impossible_ones_refused() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=0-5000", 1000), Some((0, 999)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=5-1", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
    }

    #[test]
    fn names_in_the_disposition_cannot_break_out_of_it() {
        assert_eq!(
            disposition(false, "a\"b;c.pdf"),
            "attachment; filename=\"a_b;c.pdf\"; filename*=UTF-8''a%22b%3Bc.pdf"
        );
        assert_eq!(
            disposition(true, "发票.png"),
            "inline; filename=\"__.png\"; filename*=UTF-8''%E5%8F%91%E7%A5%A8.png"
        );
    }
}
