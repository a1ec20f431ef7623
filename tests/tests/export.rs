//! `kefu-relay export` and `kefu-relay import`, run as an operator moving
//! a site to a server of its own runs them: exported from a running relay
//! where a visitor and an agent talked over WebSockets, imported into a
//! fresh data folder, served by a second relay where the admin logs in
//! with the same password and the visitor comes back with the identity
//! its browser kept. And the files it must refuse.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{Identity, Message};
use kefu_protocol::ids::ConversationId;
use kefu_sdk::{Body, Client, SessionConfig};
use kefu_tests::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Relay, collect, message, relay_binary, relay_command, run_subcommand, said,
    spawn_relay, text,
};

/// A relay serving the store in `data_dir`, with no admin flags: the
/// admin is the imported one.
async fn serve(data_dir: &Path) -> Result<(tokio::process::Child, String, String)> {
    let mut command = relay_command(&relay_binary()?);
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
    let (child, addr) = spawn_relay(command).await?;
    Ok((child, format!("http://{addr}"), format!("ws://{addr}/ws")))
}

/// The admin's token at `http`, by email and password over HTTP.
async fn login(http: &str) -> Result<String> {
    Ok(kefu_sdk::login(http, ADMIN_EMAIL, ADMIN_PASSWORD).await?.token)
}

/// Every conversation id the admin at `http` sees, and each one's messages
/// as (seq, author kind, text, client id).
async fn history(http: &str) -> Result<Vec<(ConversationId, Vec<(u64, String, String, Option<u128>)>)>> {
    let token = login(http).await?;
    let http_client = reqwest::Client::new();
    let list: Vec<serde_json::Value> = http_client
        .get(format!("{http}/api/conversations?limit=100"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut all = Vec::new();
    for conversation in list {
        let id = ConversationId(conversation["id"].as_u64().context("a conversation id")?);
        let url = format!("{http}/api/conversations/{}/messages?limit=100", id.0);
        let messages: Vec<Message> =
            http_client.get(url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
        let lines = messages
            .iter()
            .map(|m| {
                let kind = match m.author {
                    kefu_protocol::frame::Author::Visitor(_) => "visitor",
                    kefu_protocol::frame::Author::Agent(_) => "agent",
                    kefu_protocol::frame::Author::System => "system",
                };
                let body = match &m.body {
                    Body::Text(text) => text.clone(),
                    other => format!("{other:?}"),
                };
                (m.seq.0, kind.to_owned(), body, m.client_id.map(|id| id.0))
            })
            .collect();
        all.push((id, lines));
    }
    Ok(all)
}

fn texts(lines: &[(u64, String, String, Option<u128>)]) -> Vec<&str> {
    lines.iter().filter(|line| line.1 != "system").map(|line| line.2.as_str()).collect()
}

#[tokio::test]
async fn a_site_moves_to_a_new_server_and_its_admin_and_visitor_carry_on() -> Result<()> {
    let relay = Relay::start().await?;
    let (visitor, _visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    let kept = visitor.returning_credentials().await?;
    let (agent, _agent_events) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    visitor.send(conversation, Body::Text("my parcel never came".into())).await?;
    agent.send(conversation, Body::Text("sorry! sending another today".into())).await?;
    visitor.send(conversation, Body::Text("thanks".into())).await?;
    visitor.stop();
    agent.stop();
    let before = history(&relay.http_url()).await?;
    ensure!(before.len() == 1, "one conversation on the old server: {before:?}");

    // Exported while the old relay runs.
    let folder = tempfile::tempdir()?;
    let file = folder.path().join("demo.kefu");
    let (file_arg, old_dir) = (file.display().to_string(), relay.data_dir().display().to_string());
    let exported = run_subcommand(&["export", "--site", "demo", "--out", &file_arg, "--data-dir", &old_dir]).await?;
    ensure!(exported.status.success(), "export failed: {}", said(&exported));
    ensure!(
        said(&exported).contains("1 conversations, 3 messages"),
        "the export says what it holds: {}",
        said(&exported)
    );
    let again = run_subcommand(&["export", "--site", "demo", "--out", &file_arg, "--data-dir", &old_dir]).await?;
    ensure!(!again.status.success() && said(&again).contains("exists already"), "{}", said(&again));

    // Imported into the new server's empty data folder, then served.
    let new_dir = folder.path().join("new");
    let new_arg = new_dir.display().to_string();
    let imported = run_subcommand(&["import", "--from", &file_arg, "--data-dir", &new_arg]).await?;
    ensure!(imported.status.success(), "import failed: {}", said(&imported));
    ensure!(said(&imported).contains("site `demo`"), "{}", said(&imported));
    let twice = run_subcommand(&["import", "--from", &file_arg, "--data-dir", &new_arg]).await?;
    ensure!(
        !twice.status.success() && said(&twice).contains("site key \"demo\" is taken here"),
        "a second import: {}",
        said(&twice)
    );
    let (_new_relay, http, ws) = serve(&new_dir).await?;
    let after = history(&http).await?;
    ensure!(after.len() == 1, "one conversation on the new server: {after:?}");
    assert_eq!(after[0].1, before[0].1, "the same messages, seqs and idempotency keys");
    assert_eq!(texts(&after[0].1), ["my parcel never came", "sorry! sending another today", "thanks"]);

    // The visitor's browser comes back with what it kept: its conversation
    // and history are there, and it is told its new identity.
    let (back, mut events) = Client::connect(ws.clone(), kept, SessionConfig::default());
    let identity = back.identity().await?;
    let Identity::Visitor { conversation: now, .. } = &identity else { bail!("not a visitor: {identity:?}") };
    assert_eq!(*now, after[0].0, "the returning visitor got another conversation");
    let replayed = collect(&mut events, 3, |event| message(event).filter(|m| m.conversation == *now)).await?;
    let replayed: Vec<&str> = replayed.iter().map(text).collect();
    assert_eq!(replayed, ["my parcel never came", "sorry! sending another today", "thanks"]);
    back.send(*now, Body::Text("it came, thank you".into())).await?;
    let renewed = back.returning_credentials().await?;
    back.stop();
    // And from then on it comes back as itself here.
    let (native, _) = Client::connect(ws, renewed, SessionConfig::default());
    let Identity::Visitor { conversation: same, .. } = native.identity().await? else { bail!("not a visitor") };
    assert_eq!(same, *now);
    native.stop();
    let last = history(&http).await?;
    assert_eq!(texts(&last[0].1).last(), Some(&"it came, thank you"));
    Ok(())
}

#[tokio::test]
async fn a_damaged_cut_short_or_future_file_is_refused_and_writes_nothing() -> Result<()> {
    let relay = Relay::start().await?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    for n in 0..20 {
        visitor.send(conversation, Body::Text(format!("line {n}"))).await?;
    }
    visitor.stop();
    let folder = tempfile::tempdir()?;
    let file = folder.path().join("demo.kefu");
    let old_dir = relay.data_dir().display().to_string();
    let exported =
        run_subcommand(&["export", "--site", "demo", "--out", &file.display().to_string(), "--data-dir", &old_dir])
            .await?;
    ensure!(exported.status.success(), "export failed: {}", said(&exported));

    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(&file)?), &mut text)?;
    let gzip = |name: &str, text: &str| -> Result<PathBuf> {
        let path = folder.path().join(name);
        let mut out = flate2::write::GzEncoder::new(std::fs::File::create(&path)?, flate2::Compression::default());
        out.write_all(text.as_bytes())?;
        out.finish()?;
        Ok(path)
    };
    let future = gzip("future.kefu", &text.replacen("\"kefu_export\":2", "\"kefu_export\":7", 1))?;
    let without_end: String = text.lines().take(text.lines().count() - 1).map(|line| format!("{line}\n")).collect();
    let without_end = gzip("without-end.kefu", &without_end)?;
    let damaged = gzip("damaged.kefu", &text.replacen("\"table\":\"messages\"", "\"table\":\"mesages\"", 1))?;
    let bytes = std::fs::read(&file)?;
    let cut = folder.path().join("cut.kefu");
    std::fs::write(&cut, &bytes[..bytes.len() / 2])?;
    let plain = gzip("plain.txt", "")?;
    std::fs::write(&plain, "not an export at all\n")?;

    let target = folder.path().join("target");
    let target_arg = target.display().to_string();
    for (path, expected) in [
        (&future, "is export format version 7; this kefu-relay reads versions 1 to 2"),
        (&without_end, "end line is missing"),
        (&damaged, "is damaged at line"),
        (&cut, "cut short"),
        (&plain, "is not a Kefu export: it is not gzip-compressed"),
    ] {
        let output =
            run_subcommand(&["import", "--from", &path.display().to_string(), "--data-dir", &target_arg]).await?;
        ensure!(!output.status.success(), "{} was imported: {}", path.display(), said(&output));
        ensure!(said(&output).contains(expected), "{}: {}", path.display(), said(&output));
        let sites = run_subcommand(&["site", "list", "--data-dir", &target_arg]).await?;
        ensure!(
            sites.status.success() && sites.stdout.is_empty(),
            "a site came of {}: {}",
            path.display(),
            said(&sites)
        );
    }
    // The good file still goes in.
    let good = run_subcommand(&["import", "--from", &file.display().to_string(), "--data-dir", &target_arg]).await?;
    ensure!(good.status.success() && said(&good).contains("20 messages"), "{}", said(&good));
    Ok(())
}
