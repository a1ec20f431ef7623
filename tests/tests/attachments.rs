//! Files in the chat, end to end: uploads over HTTP to a real relay,
//! messages naming them over real WebSockets, downloads with the headers
//! a browser obeys, and everyone who must not see a file getting 404.

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{Body, Credentials, FileRef, Files, Hello, Identity, ImageSize, Send, Welcome};
use kefu_protocol::ids::{ClientMessageId, ConversationId, SiteKey};
use kefu_protocol::{ClientFrame, ServerFrame};
use kefu_sdk::{Client, Error, Message, Uploader, upload};
use kefu_tests::postgres::Backend;
use kefu_tests::raw::{Next, Raw};
use kefu_tests::{Relay, collect, message};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RANGE};
use serde_json::json;

/// A 3 x 2 red PNG.
const PNG: [u8; 73] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0x12, 0x16, 0xf1, 0x4d, 0x00, 0x00, 0x00, 0x10, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x41, 0x0c, 0x70, 0x16, 0x00, 0x41, 0xd2, 0x05, 0xfb,
    0x87, 0xf0, 0xb9, 0x48, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn files(caption: &str, uploaded: &[&FileRef]) -> Body {
    Body::Files(Files { caption: caption.into(), files: uploaded.iter().map(|file| FileRef::by_id(file.id)).collect() })
}

fn files_of(message: &Message) -> Option<&Files> {
    match &message.body {
        Body::Files(files) => Some(files),
        _ => None,
    }
}

/// A GET of a file as `who`: its status, headers and bytes.
async fn fetch(
    relay: &Relay,
    who: &Uploader,
    file: &FileRef,
    range: Option<&str>,
) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/attachments/{}", relay.http_url(), file.id);
    let mut request = match who {
        Uploader::Agent(token) => client.get(url).bearer_auth(token),
        Uploader::Visitor { site, visitor, token } => client
            .get(url)
            .query(&[("site", site.as_str())])
            .header("authorization", format!("Visitor {visitor} {}", token.as_str())),
    };
    if let Some(range) = range {
        request = request.header(RANGE, range);
    }
    let response = request.send().await?;
    let (status, headers) = (response.status(), response.headers().clone());
    Ok((status, headers, response.bytes().await?.to_vec()))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn a_visitor_sends_a_screenshot_and_the_agent_downloads_it_whole_and_in_part() -> Result<()> {
    screenshot(Backend::Sqlite).await
}

#[tokio::test]
async fn a_screenshot_on_postgres() -> Result<()> {
    screenshot(Backend::Postgres).await
}

async fn screenshot(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    let token = relay.admin_token().await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let (visitor, mut visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    let as_visitor = visitor.uploader().await?;

    // The name says PDF, the bytes say PNG: the bytes win.
    let shot = upload(&relay.http_url(), &as_visitor, "C:\\Users\\ann\\error.pdf", PNG.to_vec()).await?;
    assert_eq!((shot.name.as_str(), shot.mime.as_str(), shot.size), ("error.pdf", "image/png", 73));
    assert_eq!(shot.image, Some(ImageSize { width: 3, height: 2 }));
    // A sender's claims about a file are replaced by what the relay found.
    let mut claimed = FileRef::by_id(shot.id);
    claimed.name = "lies.exe".into();
    claimed.size = 1;
    let body = Body::Files(Files { caption: "this is what I see".into(), files: vec![claimed] });
    let accepted = visitor.send(conversation, body).await?;

    let got = collect(&mut agent_events, 1, |event| message(event).filter(|m| m.conversation == conversation)).await?;
    let sent = files_of(&got[0]).context("a message with files")?;
    assert_eq!(sent.caption, "this is what I see");
    assert_eq!(sent.files, std::slice::from_ref(&shot), "as stored, not as claimed");
    assert_eq!(got[0].seq, accepted.seq);
    let echoed = collect(&mut visitor_events, 1, |event| message(event).filter(|m| m.seq == accepted.seq)).await?;
    assert_eq!(files_of(&echoed[0]).map(|f| f.files.clone()), Some(vec![shot.clone()]), "the visitor's own copy");

    let as_agent = Uploader::Agent(token.clone());
    let (status, headers, bytes) = fetch(&relay, &as_agent, &shot, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, PNG);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(header(&headers, "content-disposition").starts_with("inline; filename=\"error.pdf\""));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(header(&headers, "content-security-policy").starts_with("sandbox"));
    assert_eq!(header(&headers, "accept-ranges"), "bytes");

    let (status, headers, bytes) = fetch(&relay, &as_agent, &shot, Some("bytes=8-15")).await?;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, PNG[8..=15]);
    assert_eq!(header(&headers, "content-range"), "bytes 8-15/73");
    let (status, headers, _) = fetch(&relay, &as_agent, &shot, Some("bytes=100-")).await?;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&headers, "content-range"), "bytes */73");

    let (status, _, bytes) = fetch(&relay, &as_visitor, &shot, None).await?;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 73), "the visitor who sent it");
    Ok(())
}

#[tokio::test]
async fn only_the_conversation_s_parties_and_the_site_s_agents_get_a_file() -> Result<()> {
    let relay = Relay::start().await?;
    let token = relay.admin_token().await?;
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    let (stranger, mut stranger_events) = Client::visitor(relay.ws_url(), "demo")?;
    let strangers_conversation = stranger.conversation().await?;
    let as_stranger = stranger.uploader().await?;

    // The agent sends the visitor a manual.
    let manual =
        upload(&relay.http_url(), &Uploader::Agent(token.clone()), "manual.pdf", b"%PDF-1.7\n...".to_vec()).await?;
    assert_eq!(manual.mime, "application/pdf");
    visitor.send(conversation, Body::Text("do you have the manual?".into())).await?;
    collect(&mut agent_events, 1, |event| message(event).filter(|m| m.conversation == conversation)).await?;
    agent.send(conversation, files("", &[&manual])).await?;
    let (status, headers, bytes) = fetch(&relay, &visitor.uploader().await?, &manual, None).await?;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, b"%PDF-1.7\n...".as_slice()), "the visitor it was sent to");
    assert_eq!(header(&headers, "content-type"), "application/octet-stream", "a download, not a page");
    assert!(header(&headers, "content-disposition").starts_with("attachment; filename=\"manual.pdf\""));

    // Another visitor of the same site: not found, and may not name it.
    let (status, _, _) = fetch(&relay, &as_stranger, &manual, None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let refused = stranger.send(strangers_conversation, files("mine now", &[&manual])).await;
    let Err(Error::Rejected(rejected)) = refused else { bail!("naming another's file must be refused: {refused:?}") };
    ensure!(rejected.text.contains("someone else"), "{}", rejected.text);
    // A file id nobody uploaded.
    let mut unknown = manual.clone();
    unknown.id = kefu_protocol::ids::AttachmentId(manual.id.0 ^ 1);
    let refused = stranger.send(strangers_conversation, files("", &[&unknown])).await;
    ensure!(matches!(refused, Err(Error::Rejected(_))), "{refused:?}");
    // Nothing of either refusal reached the stranger's conversation: the
    // marker is the first message there.
    stranger.send(strangers_conversation, Body::Text("marker".into())).await?;
    let seen = collect(&mut stranger_events, 1, message).await?;
    assert_eq!(kefu_tests::text(&seen[0]), "marker");

    // An agent of another site: not found.
    let created = reqwest::Client::new()
        .post(format!("{}/api/owner/sites", relay.http_url()))
        .bearer_auth(&token)
        .json(&json!({ "key": "acme", "name": "Acme", "admin_email": "boss@acme.test" }))
        .send()
        .await?
        .error_for_status()?
        .json::<serde_json::Value>()
        .await?;
    let password = created["admin_password"].as_str().context("a password")?;
    let other = kefu_sdk::login(&relay.http_url(), "boss@acme.test", password).await?.token;
    let (status, _, _) = fetch(&relay, &Uploader::Agent(other), &manual, None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nobody at all; a wrong visitor token.
    let anonymous = reqwest::get(format!("{}/api/attachments/{}", relay.http_url(), manual.id)).await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let Uploader::Visitor { site, visitor: id, .. } = as_stranger else { bail!("a visitor") };
    let forged = Uploader::Visitor { site, visitor: id, token: kefu_protocol::ids::VisitorToken::new("k1-1-00")? };
    assert_eq!(fetch(&relay, &forged, &manual, None).await?.0, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn html_and_svg_are_kept_as_downloads_that_cannot_run_and_programs_are_refused() -> Result<()> {
    let relay = Relay::start().await?;
    let token = relay.admin_token().await?;
    let as_agent = Uploader::Agent(token);
    let pages: [(&str, &[u8]); 2] = [
        ("page.html", b"<!doctype html><script>document.title='ran'</script>"),
        ("logo.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>"),
    ];
    for (name, bytes) in pages {
        let file = upload(&relay.http_url(), &as_agent, name, bytes.to_vec()).await?;
        // Kept under its type, for the icon; served as nothing a browser runs.
        ensure!(!file.mime.starts_with("image/"), "{name}: {}", file.mime);
        let (status, headers, got) = fetch(&relay, &as_agent, &file, None).await?;
        assert_eq!((status, got.as_slice()), (StatusCode::OK, bytes), "{name}");
        assert_eq!(header(&headers, "content-type"), "application/octet-stream", "{name}");
        assert!(header(&headers, "content-disposition").starts_with("attachment;"), "{name}");
        assert!(header(&headers, "content-security-policy").starts_with("sandbox"), "{name}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff", "{name}");
    }
    let program =
        upload(&relay.http_url(), &as_agent, "invoice.pdf", b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff".to_vec()).await;
    let Err(Error::Upload(415, why)) = program else { bail!("a program must be refused: {program:?}") };
    ensure!(why.contains("not accepted"), "{why}");
    let empty = upload(&relay.http_url(), &as_agent, "empty.txt", Vec::new()).await;
    ensure!(matches!(empty, Err(Error::Upload(400, _))), "{empty:?}");
    Ok(())
}

/// Files in the relay's attachment folder, uploads in progress included.
fn kept_files(relay: &Relay) -> Result<usize> {
    fn count(dir: &std::path::Path) -> Result<usize> {
        let mut found = 0;
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
        for entry in entries {
            let entry = entry?;
            found += if entry.file_type()?.is_dir() { count(&entry.path())? } else { 1 };
        }
        Ok(found)
    }
    count(&relay.data_dir().join("attachments"))
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_with_the_limit_and_nothing_is_kept() -> Result<()> {
    let relay = Relay::start_with(&["--attachment-limit-mb", "1"]).await?;
    let token = relay.admin_token().await?;
    let as_agent = Uploader::Agent(token.clone());
    let big = vec![b'x'; 1_500_000];
    let refused = upload(&relay.http_url(), &as_agent, "big.log", big.clone()).await;
    let Err(Error::Upload(413, why)) = refused else { bail!("over the limit must be refused: {refused:?}") };
    assert_eq!(why, "files are limited to 1.0 MB here");

    // Without a length up front the relay counts while it streams.
    assert_eq!(chunked_upload(&relay, &token, &big).await?, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(kept_files(&relay)?, 0, "nothing of a refused upload stays on disk");

    let fits = upload(&relay.http_url(), &as_agent, "fits.log", vec![b'y'; 1_000_000]).await?;
    assert_eq!(fits.size, 1_000_000);
    assert_eq!(kept_files(&relay)?, 1);

    // The site's admin sets a lower limit, never one over the ceiling.
    let site = |change: serde_json::Value| {
        reqwest::Client::new().put(format!("{}/api/site", relay.http_url())).bearer_auth(&token).json(&change).send()
    };
    let over = site(json!({ "max_file_bytes": 1_000_001 })).await?;
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    let set = site(json!({ "max_file_bytes": 100 })).await?.error_for_status()?.json::<serde_json::Value>().await?;
    assert_eq!((set["max_file_bytes"].as_u64(), set["max_file_bytes_ceiling"].as_u64()), (Some(100), Some(1_000_000)));
    let refused = upload(&relay.http_url(), &as_agent, "small.log", vec![b'z'; 101]).await;
    let Err(Error::Upload(413, why)) = refused else { bail!("over the site's limit must be refused: {refused:?}") };
    assert_eq!(why, "files are limited to 100 B here");
    upload(&relay.http_url(), &as_agent, "small.log", vec![b'z'; 100]).await?;
    Ok(())
}

/// Uploads `bytes` with `Transfer-Encoding: chunked`, saying no length
/// up front; the status line of the answer.
async fn chunked_upload(relay: &Relay, token: &str, bytes: &[u8]) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = relay.http_url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await?;
    let head = format!(
        "POST /api/attachments?name=big.log HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    for chunk in bytes.chunks(64 * 1024) {
        // The relay may answer and close before the last chunk.
        if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(kefu_tests::PATIENCE, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

/// A raw visitor connection speaking protocol `version`.
async fn raw_visitor(relay: &Relay, version: u16) -> Result<(Raw, Welcome)> {
    let mut raw = Raw::connect(&relay.ws_url()).await?;
    let credentials = Credentials::Visitor { site: SiteKey::new("demo")?, returning: None };
    raw.send(&ClientFrame::Hello(Hello { version, credentials, resume: Vec::new() })).await?;
    match raw.next().await? {
        Next::Frame(ServerFrame::Welcome(welcome)) => Ok((raw, welcome)),
        other => bail!("expected a welcome, got {other:?}"),
    }
}

fn visitor_of(welcome: &Welcome) -> Result<(Uploader, ConversationId)> {
    let Identity::Visitor { visitor, token, conversation, .. } = welcome.identity.clone() else { bail!("a visitor") };
    Ok((Uploader::Visitor { site: SiteKey::new("demo")?, visitor, token }, conversation))
}

#[tokio::test]
async fn a_resent_message_with_files_is_stored_once_and_an_older_client_reads_it_as_text() -> Result<()> {
    let relay = Relay::start().await?;
    let (mut visitor, welcome) = raw_visitor(&relay, kefu_protocol::PROTOCOL_VERSION).await?;
    let (as_visitor, conversation) = visitor_of(&welcome)?;
    let shot = upload(&relay.http_url(), &as_visitor, "shot.png", PNG.to_vec()).await?;
    let send = ClientFrame::Send(Send { conversation, client_id: ClientMessageId(7), body: files("look", &[&shot]) });
    visitor.send(&send).await?;
    visitor.send(&send).await?;
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        if let Some(seq) = visitor
            .until(|frame| match frame {
                ServerFrame::Accepted(accepted) => Some(Some(accepted.seq)),
                ServerFrame::Rejected(rejected) => Some(None).filter(|_| panic!("refused: {rejected:?}")),
                _ => None,
            })
            .await?
        {
            seqs.push(seq);
        }
    }
    assert_eq!(seqs[0], seqs[1], "the resend is the same message");

    // A client of protocol version 1 knows no files: it is told their
    // names in a text, and the relay still takes it.
    let token = relay.admin_token().await?;
    let stored = reqwest::Client::new()
        .get(format!("{}/api/conversations/{conversation}/messages", relay.http_url()))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json::<serde_json::Value>()
        .await?;
    let messages = stored.as_array().context("messages")?;
    assert_eq!(messages.len(), 1, "stored once: {stored}");

    // The same visitor, back with protocol version 1, which knows no
    // files: it is replayed the message as a text naming them.
    drop(visitor);
    let Uploader::Visitor { visitor: id, token: visitor_token, .. } = as_visitor else { bail!("a visitor") };
    let mut old = Raw::connect(&relay.ws_url()).await?;
    let returning = Some(kefu_protocol::frame::ReturningVisitor { visitor: id, token: visitor_token });
    let credentials = Credentials::Visitor { site: SiteKey::new("demo")?, returning };
    old.send(&ClientFrame::Hello(Hello { version: 1, credentials, resume: Vec::new() })).await?;
    let text = old
        .until(|frame| match frame {
            ServerFrame::Message(message) => Some(message.body.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(text, Body::Text("look\n[file: shot.png, 73 B]".into()));
    Ok(())
}
