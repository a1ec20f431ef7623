//! The echo bot example, run as a developer would run it, answers a
//! visitor.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result};
use kefu_protocol::frame::{Author, Body};
use kefu_sdk::Client;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Relay, collect, message, text};

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
        .args(["--url", &relay.http_url(), "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD])
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
