//! How much group commit buys: message appends per second through the
//! store's writer, on a real file with `synchronous = FULL` (or a real
//! PostgreSQL database), with many concurrent senders and with one sender
//! waiting for each append.
//!
//! Run with `cargo run --release -p kefu-relay --example store_bench`, or
//! `... -- postgres://USER@127.0.0.1:5432/DB` to measure PostgreSQL: each
//! run then creates a database of its own next to `DB` and drops it after.
//! Figures depend on the disk's fsync speed; nothing here asserts on them.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kefu_protocol::frame::{Author, Body};
use kefu_protocol::ids::{ClientMessageId, SiteKey};
use kefu_relay::store::{Conversation, NewMessage, Store, WriterStats};
use sqlx::Connection as _;

const CONCURRENT_MESSAGES: usize = 20_000;
const TASKS: usize = 200;
const CONVERSATIONS: usize = 1_000;
/// Fewer for the serial run: at one fsync per message it would otherwise
/// take minutes on a slow disk.
const SERIAL_MESSAGES: usize = 2_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let postgres = std::env::args().nth(1);
    match &postgres {
        None => println!("store_bench: SQLite in WAL mode, synchronous = FULL (one fsync per commit)"),
        Some(url) => println!("store_bench: PostgreSQL next to {url}"),
    }
    let setup = || setup(postgres.as_deref());

    let concurrent = {
        let (place, store, conversations) = setup().await?;
        let per_task = CONCURRENT_MESSAGES / TASKS;
        let started = Instant::now();
        let before = store.writer_stats();
        let mut tasks = Vec::with_capacity(TASKS);
        for task in 0..TASKS {
            let store = store.clone();
            let conversations = conversations.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_task {
                    // Spread each task over many conversations, as many
                    // connections would.
                    let conversation = &conversations[(task * per_task + i) % CONVERSATIONS];
                    store.append(message(conversation, task * per_task + i)).await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let run = Run::new(TASKS * per_task, started.elapsed(), before, store.writer_stats());
        check_gapless(&store, &conversations, TASKS * per_task).await?;
        store.close().await;
        place.remove().await?;
        run.print(&format!("{TASKS} tasks, each awaiting its appends, {CONVERSATIONS} conversations"));
        run
    };

    let pipelined = {
        let (place, store, conversations) = setup().await?;
        let started = Instant::now();
        let before = store.writer_stats();
        let mut tickets = Vec::with_capacity(CONCURRENT_MESSAGES);
        for i in 0..CONCURRENT_MESSAGES {
            tickets.push(store.submit(message(&conversations[i % CONVERSATIONS], i)).await?);
        }
        for ticket in tickets {
            ticket.await?;
        }
        let run = Run::new(CONCURRENT_MESSAGES, started.elapsed(), before, store.writer_stats());
        check_gapless(&store, &conversations, CONCURRENT_MESSAGES).await?;
        store.close().await;
        place.remove().await?;
        run.print("1 task submitting all, then awaiting the tickets in order");
        run
    };

    let serial = {
        let (place, store, conversations) = setup().await?;
        let started = Instant::now();
        let before = store.writer_stats();
        for i in 0..SERIAL_MESSAGES {
            store.append(message(&conversations[i % CONVERSATIONS], i)).await?;
        }
        let run = Run::new(SERIAL_MESSAGES, started.elapsed(), before, store.writer_stats());
        store.close().await;
        place.remove().await?;
        run.print("1 task awaiting each append (batching effectively off)");
        run
    };

    println!(
        "group commit: {:.1}x (concurrent / serial), {:.1}x (pipelined / serial)",
        concurrent.per_second() / serial.per_second(),
        pipelined.per_second() / serial.per_second(),
    );
    Ok(())
}

/// Where a run's store lives; dropped after the store is closed.
enum Place {
    File(#[allow(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Database { admin: String, name: String },
}

impl Place {
    async fn remove(self) -> anyhow::Result<()> {
        if let Place::Database { admin, name } = self {
            let mut connection = sqlx::AnyConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut connection).await?;
        }
        Ok(())
    }
}

/// A fresh store with one site and `CONVERSATIONS` open conversations: a
/// SQLite file, or a new database on the PostgreSQL server `admin` is on.
async fn setup(admin: Option<&str>) -> anyhow::Result<(Place, Store, Vec<Conversation>)> {
    let (place, store) = match admin {
        None => {
            let dir = tempfile::TempDir::new()?;
            let store = Store::open(dir.path()).await?;
            (Place::File(dir), store)
        }
        Some(admin) => {
            sqlx::any::install_default_drivers();
            let name = format!("kefu_store_bench_{}_{}", std::process::id(), rand_suffix());
            let mut connection = sqlx::AnyConnection::connect(admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await?;
            let (server, _) = admin
                .split_once('?')
                .map_or(admin, |(base, _)| base)
                .rsplit_once('/')
                .context("no database in the URL")?;
            let store = Store::open_postgres(&format!("{server}/{name}")).await?;
            (Place::Database { admin: admin.to_owned(), name }, store)
        }
    };
    let site = store.create_site(&SiteKey::new("bench")?, "Bench").await?;
    let mut conversations = Vec::with_capacity(CONVERSATIONS);
    for _ in 0..CONVERSATIONS {
        let visitor = store.create_visitor(site.id, "token-hash").await?;
        conversations.push(store.open_conversation(site.id, visitor).await?);
    }
    Ok((place, store, conversations))
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn message(conversation: &Conversation, n: usize) -> NewMessage {
    NewMessage {
        site: conversation.site,
        conversation: conversation.id,
        client_id: Some(ClientMessageId(n as u128)),
        author: Author::Visitor(conversation.visitor),
        body: Body::Text(format!("message {n}: a line of chat about the size people type")),
        with: None,
    }
}

/// Every conversation's seqs are 1..=last_seq and they add up to `total`.
async fn check_gapless(store: &Store, conversations: &[Conversation], total: usize) -> anyhow::Result<()> {
    let mut sum = 0;
    for conversation in conversations {
        let last =
            store.conversation(conversation.site, conversation.id).await?.context("conversation vanished")?.last_seq;
        let stored =
            store.messages_after(conversation.site, conversation.id, kefu_protocol::ids::Seq::ZERO, u32::MAX).await?;
        let seqs: Vec<u64> = stored.iter().map(|message| message.seq.0).collect();
        anyhow::ensure!(seqs == (1..=last.0).collect::<Vec<_>>(), "gap in {}", conversation.id);
        sum += seqs.len();
    }
    anyhow::ensure!(sum == total, "stored {sum} messages, expected {total}");
    Ok(())
}

struct Run {
    messages: usize,
    elapsed: Duration,
    stats: WriterStats,
}

impl Run {
    fn new(messages: usize, elapsed: Duration, before: WriterStats, after: WriterStats) -> Run {
        let stats = WriterStats { batches: after.batches - before.batches, messages: after.messages - before.messages };
        Run { messages, elapsed, stats }
    }

    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, what: &str) {
        println!(
            "{what}:\n  {} messages in {:.2} s = {:.0} messages/s; {} commits, {:.1} messages per commit on average",
            self.messages,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.stats.batches,
            self.stats.average_batch(),
        );
    }
}
