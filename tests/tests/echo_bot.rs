//! The echo bot example, run as a developer would run it, answers a
//! visitor, takes its password from the environment or a file (never the
//! command line), and stops for good when the relay signs it out.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result};
use kefu_protocol::frame::{Author, Body};
use kefu_sdk::Client;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay, collect, message, text};
use serde_json::{Value, json};

fn echo_bot_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|deps| deps.parent()).context("no target dir")?;
    let binary = dir.join("examples").join("echo_bot");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: `cargo build -p kefu-examples --examples` first",
        binary.display()
    );
    Ok(binary)
}

#[tokio::test]
async fn echo_bot_answers_a_visitor() -> Result<()> {
    let relay = Relay::start().await?;
    // The visitor writes before the bot is up: the bot must still answer.
    let (visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("anyone there?".into())).await?;

    let _bot = tokio::process::Command::new(echo_bot_binary()?)
        .args(["--url", &relay.http_url(), "--email", ADMIN_EMAIL])
        .env("KEFU_BOT_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let from_bot = |e| message(e).filter(|m| matches!(m.author, Author::Agent(_)));
    let first = collect(&mut events, 1, from_bot).await?;
    assert_eq!(text(&first[0]), "echo: anyone there?", "the waiting visitor is answered on start");

    visitor.send(conversation, Body::Text("hello bot".into())).await?;
    let second = collect(&mut events, 1, from_bot).await?;
    assert_eq!(text(&second[0]), "echo: hello bot", "live messages are answered");
    Ok(())
}

#[tokio::test]
async fn echo_bot_reads_its_password_from_a_file_and_stops_when_signed_out() -> Result<()> {
    let relay = Relay::start().await?;
    let http = reqwest::Client::new();
    let admin = kefu_sdk::login(&relay.http_url(), ADMIN_EMAIL, ADMIN_PASSWORD).await?.token;
    let bot_agent = json!({ "email": "bot@kefu.test", "name": "Echo", "password": "the bot's password" });
    let created: Value = http
        .post(format!("{}/api/agents", relay.http_url()))
        .bearer_auth(&admin)
        .json(&bot_agent)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bot_id = created["id"].as_u64().context("the bot's id")?;
    let dir = tempfile::tempdir()?;
    let password_file = dir.path().join("bot-password");
    std::fs::write(&password_file, "the bot's password\n")?;

    let (visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    let bot = tokio::process::Command::new(echo_bot_binary()?)
        .args(["--url", &relay.http_url(), "--email", "bot@kefu.test", "--password-file"])
        .arg(&password_file)
        .env_remove("KEFU_BOT_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    visitor.send(conversation, Body::Text("hello bot".into())).await?;
    let from_bot = |e| message(e).filter(|m| matches!(m.author, Author::Agent(_)));
    assert_eq!(text(&collect(&mut events, 1, from_bot).await?[0]), "echo: hello bot");

    http.patch(format!("{}/api/agents/{bot_id}", relay.http_url()))
        .bearer_auth(&admin)
        .json(&json!({ "active": false }))
        .send()
        .await?
        .error_for_status()?;
    let output = tokio::time::timeout(PATIENCE, bot.wait_with_output()).await.context("the bot did not stop")??;
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "signed out is a failure: {said}");
    assert!(said.contains("signed the bot out"), "{said}");
    Ok(())
}
