//! `kefu-relay backup` and `kefu-relay restore`, run as the operator runs
//! them: a snapshot taken while visitors write, restored into a new data
//! folder under a new relay; and the refusals that keep a store safe.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, ensure};
use kefu_protocol::frame::{Body, Message};
use kefu_protocol::ids::ConversationId;
use kefu_sdk::Client;
use kefu_tests::postgres::Database;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Relay, relay_binary, relay_command, run_subcommand, said, spawn_relay};

/// A relay serving the store in `data_dir` (no admin flags: the store has
/// its admin already).
async fn serve(data_dir: &Path) -> Result<(tokio::process::Child, String)> {
    let mut command = relay_command(&relay_binary()?);
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
    let (child, addr) = spawn_relay(command).await?;
    Ok((child, format!("http://{addr}")))
}

/// Every message of `conversation` the relay at `http` has stored, by the
/// admin's eyes.
async fn stored(http: &str, conversation: ConversationId) -> Result<Vec<Message>> {
    let token = kefu_sdk::login(http, ADMIN_EMAIL, ADMIN_PASSWORD).await?.token;
    // Pages go back in time: the newest first, each oldest first.
    let mut all: Vec<Message> = Vec::new();
    loop {
        let before = all.first().map(|m| format!("&before={}", m.seq.0)).unwrap_or_default();
        let url = format!("{http}/api/conversations/{}/messages?limit=100{before}", conversation.0);
        let mut page: Vec<Message> =
            reqwest::Client::new().get(url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
        if page.is_empty() {
            return Ok(all);
        }
        page.append(&mut all);
        all = page;
    }
}

fn text(message: &Message) -> String {
    match &message.body {
        Body::Text(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_backup_taken_while_a_visitor_writes_restores_every_message_stored_before_it() -> Result<()> {
    let relay = Relay::start().await?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let visitor = Arc::new(visitor);
    let conversation = visitor.conversation().await?;
    for n in 0..50 {
        visitor.send(conversation, Body::Text(format!("before {n}"))).await?;
    }

    // The visitor goes on writing, one acknowledged message after another,
    // all through the backup.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let (visitor, writing) = (visitor.clone(), writing.clone());
        async move {
            let mut sent = 0;
            while writing.load(Ordering::Relaxed) {
                visitor.send(conversation, Body::Text(format!("during {sent}"))).await?;
                sent += 1;
            }
            anyhow::Ok(sent)
        }
    });
    let folder = tempfile::tempdir()?;
    let snapshot = folder.path().join("kefu-backup.db");
    let data_dir = relay.data_dir().display().to_string();
    let made = run_subcommand(&["backup", "--out", &snapshot.display().to_string(), "--data-dir", &data_dir]).await?;
    writing.store(false, Ordering::Relaxed);
    let sent_during = writer.await??;
    ensure!(made.status.success(), "backup failed: {}", said(&made));
    ensure!(said(&made).contains("1 sites"), "the backup says what it holds: {}", said(&made));

    // A second backup to the same file is refused; the first is intact.
    let again = run_subcommand(&["backup", "--out", &snapshot.display().to_string(), "--data-dir", &data_dir]).await?;
    ensure!(!again.status.success() && said(&again).contains("exists already"), "{}", said(&again));

    // Restored into a new folder, under a new relay.
    let restored_dir = folder.path().join("restored");
    let restore = run_subcommand(&[
        "restore",
        "--from",
        &snapshot.display().to_string(),
        "--data-dir",
        &restored_dir.display().to_string(),
    ])
    .await?;
    ensure!(restore.status.success(), "restore failed: {}", said(&restore));
    let (_restored, http) = serve(&restored_dir).await?;
    let messages = stored(&http, conversation).await?;
    let texts: Vec<String> = messages.iter().map(text).collect();

    // Everything acknowledged before the backup began is there, in order;
    // of what came during it, a prefix (one moment's view of the store:
    // no message without those before it).
    let before: Vec<String> = (0..50).map(|n| format!("before {n}")).collect();
    ensure!(
        texts.len() >= 50 && texts[..50] == before[..],
        "the restored history starts {:?}",
        &texts[..texts.len().min(5)]
    );
    let during: Vec<String> = (0..texts.len() - 50).map(|n| format!("during {n}")).collect();
    assert_eq!(texts[50..], during[..], "a prefix of what was written during the backup");
    assert!(texts.len() - 50 <= sent_during, "no more than was sent");
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq.0).collect();
    let contiguous: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, contiguous, "no gap in the conversation's numbering");
    println!("{} messages restored; {sent_during} were sent during the backup", texts.len());
    Ok(())
}

#[tokio::test]
async fn restoring_over_a_store_keeps_it_and_is_refused_while_a_relay_runs_on_it() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let snapshot = folder.path().join("snapshot.db");
    let snapshot_arg = snapshot.display().to_string();
    let mut relay = Relay::start().await?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("in the snapshot".into())).await?;
    let data_dir = relay.data_dir().to_owned();
    let data_dir_arg = data_dir.display().to_string();
    let made = run_subcommand(&["backup", "--out", &snapshot_arg, "--data-dir", &data_dir_arg]).await?;
    ensure!(made.status.success(), "{}", said(&made));
    visitor.send(conversation, Body::Text("after the snapshot".into())).await?;

    // Not under a running relay: the store stays as it was.
    let refused = run_subcommand(&["restore", "--from", &snapshot_arg, "--data-dir", &data_dir_arg]).await?;
    ensure!(!refused.status.success(), "a restore under a running relay was allowed: {}", said(&refused));
    ensure!(said(&refused).contains("stop it before restoring"), "{}", said(&refused));
    let texts: Vec<String> = stored(&relay.http_url(), conversation).await?.iter().map(text).collect();
    assert_eq!(texts, ["in the snapshot", "after the snapshot"], "the running store is untouched");

    // Nor from a file that is no Kefu store.
    let junk = folder.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database")?;
    let refused =
        run_subcommand(&["restore", "--from", &junk.display().to_string(), "--data-dir", &data_dir_arg]).await?;
    ensure!(!refused.status.success() && said(&refused).contains("is not a Kefu store"), "{}", said(&refused));
    let missing = run_subcommand(&["restore", "--from", "/nonexistent/kefu.db", "--data-dir", &data_dir_arg]).await?;
    ensure!(!missing.status.success() && said(&missing).contains("no such file"), "{}", said(&missing));

    // Once the relay is stopped it goes through, and the replaced store is
    // kept beside the restored one, whole.
    relay.signal("TERM")?;
    relay.wait_exit().await?;
    let restore = run_subcommand(&["restore", "--from", &snapshot_arg, "--data-dir", &data_dir_arg]).await?;
    ensure!(restore.status.success(), "{}", said(&restore));
    let kept: Vec<PathBuf> = std::fs::read_dir(&data_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<PathBuf>>>()?
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("kefu-before-restore-") && n.to_string_lossy().ends_with(".db")
            })
        })
        .collect();
    ensure!(kept.len() == 1, "the replaced store is kept: {kept:?} ({})", said(&restore));

    let (_restored, http) = serve(&data_dir).await?;
    let texts: Vec<String> = stored(&http, conversation).await?.iter().map(text).collect();
    assert_eq!(texts, ["in the snapshot"], "the store is the snapshot's");
    // The kept store, restored in turn, is the one that ran.
    let other = folder.path().join("other");
    let back = run_subcommand(&[
        "restore",
        "--from",
        &kept[0].display().to_string(),
        "--data-dir",
        &other.display().to_string(),
    ])
    .await?;
    ensure!(back.status.success(), "{}", said(&back));
    let (_old, http) = serve(&other).await?;
    let texts: Vec<String> = stored(&http, conversation).await?.iter().map(text).collect();
    assert_eq!(texts, ["in the snapshot", "after the snapshot"], "the replaced store was kept whole");
    Ok(())
}

#[tokio::test]
async fn a_backup_of_a_postgresql_store_points_to_pg_dump() -> Result<()> {
    let database = Database::create().await?;
    let made = run_subcommand(&["backup", "--out", "/tmp/never-written.db", "--database-url", database.url()]).await?;
    ensure!(!made.status.success(), "{}", said(&made));
    ensure!(said(&made).contains("pg_dump"), "{}", said(&made));
    ensure!(!Path::new("/tmp/never-written.db").exists(), "nothing was written");
    Ok(())
}
