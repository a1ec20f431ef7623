//! An agent bot that answers every new visitor message by echoing it.
//!
//! ```sh
//! cargo run -p kefu-examples --example echo_bot -- --email admin@example.com --password ...
//! ```
//!
//! It logs in over HTTP, connects with the SDK, follows every conversation
//! of its site, and replies to each visitor message it has not answered.
//! Reconnects, replay and resends are the SDK's job: a bot only reacts.

use std::collections::{HashMap, HashSet};

use clap::Parser;
use kefu_protocol::frame::{Author, Body, Message};
use kefu_protocol::ids::ConversationId;
use kefu_sdk::{Client, Event};

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// The relay's HTTP address.
    #[arg(long, env = "KEFU_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The bot's agent email.
    #[arg(long, env = "KEFU_BOT_EMAIL", default_value = "admin@example.com")]
    email: String,
    /// The bot's agent password.
    #[arg(long, env = "KEFU_BOT_PASSWORD")]
    password: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args = Args::parse();
    let login = kefu_sdk::login(&args.url, &args.email, &args.password).await?;
    let ws_url = format!("{}/ws", args.url.replacen("http", "ws", 1));
    let (bot, mut events) = Client::agent(ws_url, &login.token)?;
    println!("echo bot connected to {}; waiting for visitors", args.url);

    // Replay of a conversation the bot has just joined is history, except
    // that a visitor whose last message has no answer is still waiting.
    let mut replaying: HashMap<ConversationId, Option<Message>> = HashMap::new();
    let mut live: HashSet<ConversationId> = HashSet::new();
    while let Some(event) = events.next().await {
        match event {
            Event::Message(message) if live.contains(&message.conversation) => {
                if matches!(message.author, Author::Visitor(_)) {
                    answer(&bot, &message);
                }
            }
            Event::Message(message) => {
                replaying.insert(message.conversation, Some(message));
            }
            Event::ReplayComplete(done) => {
                live.insert(done.conversation);
                if let Some(Some(last)) = replaying.remove(&done.conversation)
                    && matches!(last.author, Author::Visitor(_))
                {
                    answer(&bot, &last);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn answer(bot: &Client, message: &Message) {
    // Visitors only write text; notes and system lines are not theirs.
    let Body::Text(text) = &message.body else { return };
    let reply = Body::Text(format!("echo: {text}"));
    let (bot, conversation) = (bot.clone(), message.conversation);
    // Sending waits for the relay's acknowledgement; do not hold up events.
    tokio::spawn(async move {
        if let Err(error) = bot.send(conversation, reply).await {
            eprintln!("could not answer in conversation {conversation}: {error}");
        }
    });
}
