//! An agent bot that answers every new visitor message by echoing it.
//!
//! ```sh
//! read -rs KEFU_BOT_PASSWORD && export KEFU_BOT_PASSWORD   # typed, not echoed
//! cargo run -p kefu-examples --example echo_bot -- --email admin@example.com
//! # or: ... -- --password-file /run/secrets/kefu-bot
//! ```
//!
//! The password is never a command-line argument: every user of the
//! machine can read those (`ps`), and shells keep them in their history.
//!
//! It logs in over HTTP, connects with the SDK, follows every conversation
//! of its site, and replies to each visitor message it has not answered.
//! Reconnects, replay and resends are the SDK's job: a bot only reacts.
//! When the relay signs it out (its agent deactivated, its password
//! changed), the SDK stops and the bot exits with a message.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use kefu_protocol::frame::{Author, Body, CloseReason, Closing, Message};
use kefu_protocol::ids::ConversationId;
use kefu_sdk::{Client, Event};

/// The environment variable that holds the password, unless
/// `--password-file` names a file.
const PASSWORD_VARIABLE: &str = "KEFU_BOT_PASSWORD";

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// The relay's HTTP address.
    #[arg(long, env = "KEFU_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The bot's agent email.
    #[arg(long, env = "KEFU_BOT_EMAIL", default_value = "admin@example.com")]
    email: String,
    /// A file holding the bot's agent password (its first line). Without
    /// it the password is read from the `KEFU_BOT_PASSWORD` environment
    /// variable.
    #[arg(long, env = "KEFU_BOT_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
}

impl Args {
    fn password(&self) -> anyhow::Result<String> {
        let Some(path) = &self.password_file else {
            return std::env::var(PASSWORD_VARIABLE)
                .with_context(|| format!("set {PASSWORD_VARIABLE} or give --password-file with the bot's password"));
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let password = text.lines().next().unwrap_or_default().to_owned();
        if password.is_empty() {
            bail!("{} is empty", path.display());
        }
        Ok(password)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args = Args::parse();
    let login = kefu_sdk::login(&args.url, &args.email, &args.password()?).await?;
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
            // The SDK does not reconnect after this; neither does the bot.
            Event::Closing(Closing { reason: CloseReason::SignedOut, .. }) => {
                bail!("the relay signed the bot out (deactivated, or its password changed); log in again");
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
