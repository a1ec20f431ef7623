//! The store against a real SQLite file in a temporary folder.

use kefu_protocol::frame::{Author, Body, ConversationStatus, ReceiptKind};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, Seq, SiteId, SiteKey, Timestamp, VisitorId};
use tempfile::TempDir;

use super::{Conversation, Error, NewMessage, Role, Site, Store};

struct Fixture {
    dir: TempDir,
    store: Store,
    site: Site,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let site = store.create_site(&key("demo"), "Demo").await.unwrap();
        Fixture { dir, store, site }
    }

    async fn visitor(&self) -> VisitorId {
        self.store.create_visitor(self.site.id, "hash").await.unwrap()
    }

    async fn conversation(&self) -> Conversation {
        let visitor = self.visitor().await;
        self.store.open_conversation(self.site.id, visitor).await.unwrap()
    }

    async fn agent(&self, email: &str) -> AgentId {
        let agent = self.store.create_agent(self.site.id, email, "Ann", "hash", Role::Agent);
        agent.await.unwrap().id
    }
}

fn key(value: &str) -> SiteKey {
    SiteKey::new(value).unwrap()
}

fn text(conversation: &Conversation, client_id: u128, body: &str) -> NewMessage {
    NewMessage {
        conversation: conversation.id,
        client_id: Some(ClientMessageId(client_id)),
        author: Author::Visitor(conversation.visitor),
        body: Body::Text(body.to_owned()),
    }
}

fn seqs(messages: &[kefu_protocol::frame::Message]) -> Vec<u64> {
    messages.iter().map(|message| message.seq.0).collect()
}

#[tokio::test]
async fn the_file_is_durable_by_configuration() {
    let f = Fixture::new().await;
    let pool = f.store.pool();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(pool).await.unwrap();
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(pool).await.unwrap();
    assert_eq!((mode.as_str(), synchronous, foreign_keys), ("wal", 2, 1), "WAL, FULL, on");
    assert!(f.dir.path().join("kefu.db").exists());
    f.store.health().await.unwrap();
}

#[tokio::test]
async fn append_numbers_each_conversation_from_one() {
    let f = Fixture::new().await;
    let (a, b) = (f.conversation().await, f.conversation().await);
    for i in 0..5 {
        let first = f.store.append(text(&a, i, "to a")).await.unwrap();
        let second = f.store.append(text(&b, i, "to b")).await.unwrap();
        assert!(first.fresh && second.fresh);
        assert_eq!(first.message.seq, Seq(i as u64 + 1));
        assert_eq!(second.message.seq, Seq(i as u64 + 1));
    }
    let stored = f.store.messages_after(a.id, Seq::ZERO, 100).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2, 3, 4, 5]);
    assert_eq!(stored[0].body, Body::Text("to a".into()));
    assert_eq!(stored[0].client_id, Some(ClientMessageId(0)));
    assert_eq!(stored[0].author, Author::Visitor(a.visitor));

    let a = f.store.conversation(a.id).await.unwrap().unwrap();
    assert_eq!(a.last_seq, Seq(5));
    assert_eq!(a.updated_at, stored[4].sent_at);
}

#[tokio::test]
async fn a_resend_returns_the_original_and_is_stored_once() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let original = f.store.append(text(&c, 7, "hello")).await.unwrap();
    f.store.append(text(&c, 8, "second")).await.unwrap();

    // Even with another body: the id, not the content, names the message.
    let resent = f.store.append(text(&c, 7, "hello again")).await.unwrap();
    assert!(!resent.fresh);
    assert_eq!(resent.message, original.message);

    let stored = f.store.messages_after(c.id, Seq::ZERO, 100).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2]);
    assert_eq!(f.store.conversation(c.id).await.unwrap().unwrap().last_seq, Seq(2));
}

#[tokio::test]
async fn a_duplicate_queued_in_the_same_batch_is_stored_once() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let first = f.store.submit(text(&c, 1, "once")).await.unwrap();
    let second = f.store.submit(text(&c, 1, "once")).await.unwrap();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert!(first.fresh);
    assert!(!second.fresh);
    assert_eq!(first.message, second.message);
    assert_eq!(f.store.messages_after(c.id, Seq::ZERO, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_client_id_from_another_author_is_another_message() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let agent = f.agent("ann@example.com").await;
    let from_visitor = f.store.append(text(&c, 42, "hi")).await.unwrap();
    let from_agent = NewMessage { author: Author::Agent(agent), ..text(&c, 42, "hello, how can I help?") };
    let from_agent = f.store.append(from_agent).await.unwrap();
    assert!(from_visitor.fresh && from_agent.fresh);
    assert_eq!(from_agent.message.seq, Seq(2));
    assert_eq!(from_agent.message.author, Author::Agent(agent));

    let system = |body: &str| NewMessage { client_id: None, author: Author::System, ..text(&c, 0, body) };
    // Without a client id nothing is deduplicated.
    f.store.append(system("Ann joined")).await.unwrap();
    let again = f.store.append(system("Ann joined")).await.unwrap();
    assert!(again.fresh);
    assert_eq!(again.message.client_id, None);
    let stored = f.store.messages_after(c.id, Seq::ZERO, 10).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2, 3, 4]);
    assert_eq!(stored[3].author, Author::System);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_give_gapless_seqs_in_each_senders_order() {
    const TASKS: u128 = 50;
    const PER_TASK: u128 = 40;
    const CONVERSATIONS: usize = 5;
    let f = Fixture::new().await;
    let mut conversations = Vec::new();
    for _ in 0..CONVERSATIONS {
        conversations.push(f.conversation().await);
    }

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = f.store.clone();
        let c = conversations[task as usize % CONVERSATIONS].clone();
        tasks.push(tokio::spawn(async move {
            // Half the tasks pipeline (queue all, then wait in order), half
            // wait for each: both must see their own seqs ascending.
            let mut seqs = Vec::new();
            if task % 2 == 0 {
                let mut tickets = Vec::new();
                for i in 0..PER_TASK {
                    tickets.push(store.submit(text(&c, task << 32 | i, "x")).await.unwrap());
                }
                for ticket in tickets {
                    seqs.push(ticket.await.unwrap().message.seq);
                }
            } else {
                for i in 0..PER_TASK {
                    seqs.push(store.append(text(&c, task << 32 | i, "x")).await.unwrap().message.seq);
                }
            }
            seqs
        }));
    }
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    }

    let per_conversation = (TASKS * PER_TASK) as u64 / CONVERSATIONS as u64;
    let expected: Vec<u64> = (1..=per_conversation).collect();
    for c in &conversations {
        let stored = f.store.messages_after(c.id, Seq::ZERO, 10_000).await.unwrap();
        assert_eq!(seqs(&stored), expected);
        assert_eq!(f.store.conversation(c.id).await.unwrap().unwrap().last_seq, Seq(per_conversation));
    }
    let stats = f.store.writer_stats();
    assert_eq!(stats.messages, (TASKS * PER_TASK) as u64);
    assert!(stats.batches < stats.messages, "no batching happened: {stats:?}");
}

#[tokio::test]
async fn a_bad_request_fails_alone_and_the_batch_goes_on() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let other = f.conversation().await;
    let unknown = NewMessage { conversation: ConversationId(999), ..text(&c, 1, "lost?") };
    // A visitor writing into another visitor's conversation.
    let intruder = NewMessage { author: Author::Visitor(other.visitor), ..text(&c, 2, "let me in") };
    let tickets = [
        f.store.submit(text(&c, 3, "before")).await.unwrap(),
        f.store.submit(unknown).await.unwrap(),
        f.store.submit(intruder).await.unwrap(),
        f.store.submit(text(&c, 4, "after")).await.unwrap(),
    ];
    let [before, unknown, intruder, after] = tickets;
    assert_eq!(before.await.unwrap().message.seq, Seq(1));
    assert!(matches!(unknown.await, Err(Error::NotFound)));
    assert!(matches!(intruder.await, Err(Error::NotFound)));
    assert_eq!(after.await.unwrap().message.seq, Seq(2));

    let huge = NewMessage { conversation: ConversationId(u64::MAX), ..text(&c, 5, "overflow") };
    assert!(matches!(f.store.append(huge).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn a_failed_batch_stores_nothing_and_the_writer_recovers() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    // A statement failing midway through a batch, after other messages of
    // the batch were inserted, as a full disk would.
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.body = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(f.store.pool())
    .await
    .unwrap();
    let tickets = [
        f.store.submit(text(&c, 1, "fine")).await.unwrap(),
        f.store.submit(text(&c, 2, "poison")).await.unwrap(),
        f.store.submit(text(&c, 3, "fine too")).await.unwrap(),
    ];
    for ticket in tickets {
        assert!(matches!(ticket.await, Err(Error::Database(_))));
    }
    assert!(f.store.messages_after(c.id, Seq::ZERO, 10).await.unwrap().is_empty());
    assert_eq!(f.store.conversation(c.id).await.unwrap().unwrap().last_seq, Seq::ZERO);

    sqlx::query("DROP TRIGGER poison").execute(f.store.pool()).await.unwrap();
    let retried = f.store.append(text(&c, 1, "fine")).await.unwrap();
    assert!(retried.fresh);
    assert_eq!(retried.message.seq, Seq(1));
}

#[tokio::test]
async fn agents_write_only_in_their_own_sites_conversations() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let elsewhere = f.store.create_site(&key("other"), "Other").await.unwrap();
    let stranger = f.store.create_agent(elsewhere.id, "eve@example.com", "Eve", "hash", Role::Agent);
    let stranger = stranger.await.unwrap().id;
    let local = f.agent("ann@example.com").await;
    let by = |agent| NewMessage { author: Author::Agent(agent), ..text(&c, 1, "hello") };
    assert!(matches!(f.store.append(by(stranger)).await, Err(Error::NotFound)));
    assert_eq!(f.store.append(by(local)).await.unwrap().message.seq, Seq(1));
}

#[tokio::test]
async fn messages_survive_close_and_reopen() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let tickets =
        [f.store.submit(text(&c, 1, "one")).await.unwrap(), f.store.submit(text(&c, 2, "two")).await.unwrap()];
    // Closing stores what is queued before it stops.
    f.store.close().await;
    for ticket in tickets {
        assert!(ticket.await.unwrap().fresh);
    }
    assert!(matches!(f.store.append(text(&c, 3, "late")).await, Err(Error::Closed)));
    assert!(matches!(f.store.health().await, Err(Error::Closed)));
    f.store.close().await;

    let store = Store::open(f.dir.path()).await.unwrap();
    let stored = store.messages_after(c.id, Seq::ZERO, 10).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2]);
    assert_eq!(stored[1].body, Body::Text("two".into()));
    let resent = store.append(text(&c, 2, "two")).await.unwrap();
    assert!(!resent.fresh);
    assert_eq!(resent.message, stored[1]);
    assert_eq!(store.append(text(&c, 3, "three")).await.unwrap().message.seq, Seq(3));
    assert_eq!(store.site_by_key(&key("demo")).await.unwrap(), Some(f.site));
    store.close().await;
}

#[tokio::test]
async fn a_visitor_keeps_one_conversation_through_close_and_reopen() {
    let f = Fixture::new().await;
    let visitor = f.visitor().await;
    let first = f.store.open_conversation(f.site.id, visitor).await.unwrap();
    assert_eq!(first.status, ConversationStatus::Open);
    assert_eq!(first.last_seq, Seq::ZERO);
    assert_eq!(first.visitor, visitor);
    assert_eq!(f.store.open_conversation(f.site.id, visitor).await.unwrap(), first);

    let closed = f.store.close_conversation(first.id).await.unwrap().unwrap();
    assert_eq!(closed.status, ConversationStatus::Closed);
    assert_eq!(closed.update().status, ConversationStatus::Closed);
    assert_eq!(f.store.close_conversation(first.id).await.unwrap(), None, "closed once");
    assert_eq!(f.store.close_conversation(ConversationId(999)).await.unwrap(), None);

    // A returning visitor comes back to its closed conversation, history and all.
    let again = f.store.open_conversation(f.site.id, visitor).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.status, ConversationStatus::Closed);

    // A send that was in flight when the conversation closed is kept.
    let late = NewMessage { conversation: first.id, ..text(&first, 1, "wait") };
    assert!(f.store.append(late).await.unwrap().fresh);

    let reopened = f.store.reopen_conversation(first.id, None).await.unwrap().unwrap();
    assert_eq!((reopened.status, reopened.assignee), (ConversationStatus::Open, None));
    assert_eq!(f.store.reopen_conversation(first.id, None).await.unwrap(), None, "reopened once");
}

#[tokio::test]
async fn assignment_is_compare_and_set() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let ann = f.agent("ann@example.com").await;
    let bob = f.agent("bob@example.com").await;
    let taken = f.store.assign_conversation(c.id, None, ann).await.unwrap().unwrap();
    assert_eq!(taken.assignee, Some(ann));
    assert_eq!(f.store.assign_conversation(c.id, None, bob).await.unwrap(), None, "already taken");
    assert_eq!(f.store.assign_conversation(c.id, Some(bob), ann).await.unwrap(), None, "not bob's to give");
    let moved = f.store.assign_conversation(c.id, Some(ann), bob).await.unwrap().unwrap();
    assert_eq!(moved.assignee, Some(bob));
    let team = f.store.team(f.site.id).await.unwrap();
    let open: Vec<_> = team.iter().map(|m| (m.id, m.open)).collect();
    assert!(open.contains(&(bob, 1)) && open.contains(&(ann, 0)), "{open:?}");
}

#[tokio::test]
async fn the_queue_holds_unassigned_conversations_whose_visitor_waits_oldest_first() {
    let f = Fixture::new().await;
    let quiet = f.conversation().await;
    let first = f.conversation().await;
    let second = f.conversation().await;
    assert_eq!(f.store.next_in_queue(f.site.id).await.unwrap(), None, "nobody wrote yet");
    let from_visitor = |c: &Conversation, id| NewMessage { author: Author::Visitor(c.visitor), ..text(c, id, "hi") };
    f.store.append(from_visitor(&first, 1)).await.unwrap();
    f.store.append(from_visitor(&second, 2)).await.unwrap();
    let head = f.store.next_in_queue(f.site.id).await.unwrap().unwrap();
    assert_eq!(head.id, first.id);
    assert!(head.waiting_since.is_some());
    let ann = f.agent("ann@example.com").await;
    // A private note does not answer the visitor; a reply does.
    let note = NewMessage { author: Author::Agent(ann), body: Body::Note("hm".into()), ..text(&first, 3, "") };
    let after_note = f.store.append(note).await.unwrap().conversation.unwrap();
    assert_eq!(after_note.waiting_since, head.waiting_since);
    let reply = NewMessage { author: Author::Agent(ann), ..text(&first, 4, "hello") };
    assert_eq!(f.store.append(reply).await.unwrap().conversation.unwrap().waiting_since, None);
    assert_eq!(f.store.next_in_queue(f.site.id).await.unwrap().unwrap().id, second.id);
    f.store.assign_conversation(second.id, None, ann).await.unwrap().unwrap();
    assert_eq!(f.store.next_in_queue(f.site.id).await.unwrap(), None);
    let _ = quiet;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_opens_agree_on_one_conversation() {
    let f = Fixture::new().await;
    let visitor = f.visitor().await;
    let opens: Vec<_> = (0..10)
        .map(|_| {
            let store = f.store.clone();
            let site = f.site.id;
            tokio::spawn(async move { store.open_conversation(site, visitor).await.unwrap().id })
        })
        .collect();
    let mut ids = Vec::new();
    for open in opens {
        ids.push(open.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn a_visitor_is_known_only_to_its_own_site() {
    let f = Fixture::new().await;
    let other = f.store.create_site(&key("other"), "Other").await.unwrap();
    let visitor = f.store.create_visitor(f.site.id, "abc").await.unwrap();
    assert_eq!(f.store.visitor_token_hash(f.site.id, visitor).await.unwrap().as_deref(), Some("abc"));
    assert_eq!(f.store.visitor_token_hash(other.id, visitor).await.unwrap(), None);
    assert_eq!(f.store.visitor_token_hash(f.site.id, VisitorId(999)).await.unwrap(), None);
    assert!(matches!(f.store.open_conversation(other.id, visitor).await, Err(Error::NotFound)));
    assert!(matches!(f.store.create_visitor(SiteId(999), "x").await, Err(Error::NotFound)));
    f.store.touch_visitor(visitor).await.unwrap();
    assert!(matches!(f.store.touch_visitor(VisitorId(999)).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn open_conversations_lists_the_sites_open_ones_oldest_first() {
    let f = Fixture::new().await;
    let (a, b, c) = (f.conversation().await, f.conversation().await, f.conversation().await);
    let other = f.store.create_site(&key("other"), "Other").await.unwrap();
    let stranger = f.store.create_visitor(other.id, "x").await.unwrap();
    f.store.open_conversation(other.id, stranger).await.unwrap();
    f.store.close_conversation(b.id).await.unwrap().unwrap();
    f.store.append(text(&c, 1, "newer activity")).await.unwrap();

    let open = f.store.open_conversations(f.site.id).await.unwrap();
    let ids: Vec<_> = open.iter().map(|conversation| conversation.id).collect();
    assert_eq!(ids, [a.id, c.id]);
    assert_eq!(open[1].last_seq, Seq(1));
}

#[tokio::test]
async fn messages_after_pages_through_a_conversation() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    for i in 0..25 {
        f.store.append(text(&c, i, &format!("m{i}"))).await.unwrap();
    }
    let mut after = Seq::ZERO;
    let mut pages = Vec::new();
    loop {
        let page = f.store.messages_after(c.id, after, 10).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        pages.push(seqs(&page));
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(pages.concat(), (1..=25).collect::<Vec<_>>());
    assert!(f.store.messages_after(c.id, Seq(u64::MAX), 10).await.unwrap().is_empty());
    assert!(f.store.messages_after(ConversationId(999), Seq::ZERO, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn receipt_marks_only_grow_and_stop_at_the_last_message() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    let agent = f.agent("ann@example.com").await;
    for i in 0..5 {
        f.store.append(text(&c, i, "x")).await.unwrap();
    }
    let visitor = Author::Visitor(c.visitor);
    let receipt = |by, kind, up_to| f.store.record_receipt(c.id, by, kind, Seq(up_to));

    assert_eq!(receipt(visitor, ReceiptKind::Read, 3).await.unwrap(), Some(Seq(3)));
    assert_eq!(receipt(visitor, ReceiptKind::Read, 3).await.unwrap(), None);
    assert_eq!(receipt(visitor, ReceiptKind::Read, 2).await.unwrap(), None);
    assert_eq!(receipt(visitor, ReceiptKind::Read, 99).await.unwrap(), Some(Seq(5)));
    assert_eq!(receipt(visitor, ReceiptKind::Read, u64::MAX).await.unwrap(), None);
    // Each side and kind has its own mark.
    assert_eq!(receipt(visitor, ReceiptKind::Delivered, 4).await.unwrap(), Some(Seq(4)));
    assert_eq!(receipt(Author::Agent(agent), ReceiptKind::Read, 1).await.unwrap(), Some(Seq(1)));
    assert_eq!(receipt(Author::System, ReceiptKind::Read, 1).await.unwrap(), None);

    let stranger = Author::Visitor(f.visitor().await);
    assert!(matches!(receipt(stranger, ReceiptKind::Read, 1).await, Err(Error::NotFound)));
    let nowhere = f.store.record_receipt(ConversationId(999), visitor, ReceiptKind::Read, Seq(1));
    assert!(matches!(nowhere.await, Err(Error::NotFound)));
}

#[tokio::test]
async fn sessions_are_rejected_when_unknown_or_expired() {
    let f = Fixture::new().await;
    let agent = f.agent("ann@example.com").await;
    f.store.create_agent_session(agent, "live", Timestamp(u64::from(u32::MAX) * 1000)).await.unwrap();
    f.store.create_agent_session(agent, "stale", Timestamp(1_000)).await.unwrap();

    let now = Timestamp(2_000);
    let found = f.store.agent_by_session("live", now).await.unwrap().unwrap();
    assert_eq!((found.id, found.site, found.role), (agent, f.site.id, Role::Agent));
    assert_eq!(f.store.agent_by_session("stale", now).await.unwrap(), None);
    assert_eq!(f.store.agent_by_session("unknown", now).await.unwrap(), None);
    assert!(matches!(
        f.store.create_agent_session(AgentId(999), "orphan", Timestamp(u64::MAX)).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn sites_and_agents_are_unique_and_logins_ignore_case() {
    let f = Fixture::new().await;
    assert_eq!(f.store.site_count().await.unwrap(), 1);
    assert!(matches!(f.store.create_site(&key("demo"), "Again").await, Err(Error::Conflict(_))));
    assert_eq!(f.store.site_by_key(&key("nope")).await.unwrap(), None);

    let admin = f.store.create_agent(f.site.id, "Boss@Example.com", "Boss", "phc", Role::Admin);
    let admin = admin.await.unwrap();
    let twin = f.store.create_agent(f.site.id, "boss@example.com", "Twin", "phc", Role::Agent);
    assert!(matches!(twin.await, Err(Error::Conflict(_))));
    let nowhere = f.store.create_agent(SiteId(999), "x@example.com", "X", "phc", Role::Agent);
    assert!(matches!(nowhere.await, Err(Error::NotFound)));

    let (found, hash) = f.store.agent_login("BOSS@example.COM").await.unwrap().unwrap();
    assert_eq!((found, hash.as_str()), (admin, "phc"));
    assert_eq!(f.store.agent_login("nobody@example.com").await.unwrap(), None);
}

#[tokio::test]
async fn the_first_site_is_created_once() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let (demo, other) = (key("demo"), key("other"));
    let first = store.create_first_site(&demo, "Demo", "a@example.com", "A", "phc");
    let (site, admin) = first.await.unwrap().unwrap();
    assert_eq!((admin.site, admin.role), (site.id, Role::Admin));
    let again = store.create_first_site(&other, "Other", "b@example.com", "B", "phc");
    assert_eq!(again.await.unwrap(), None);
    assert_eq!(store.site_count().await.unwrap(), 1);
}

#[tokio::test]
async fn times_never_go_backwards_along_seqs() {
    let f = Fixture::new().await;
    let c = f.conversation().await;
    for i in 0..20 {
        f.store.append(text(&c, i, "t")).await.unwrap();
    }
    let stored = f.store.messages_after(c.id, Seq::ZERO, 100).await.unwrap();
    assert!(stored.windows(2).all(|pair| pair[0].sent_at <= pair[1].sent_at));
    assert!(stored[0].sent_at > Timestamp(1_600_000_000_000), "a real clock");
}

/// Set in the child process of the kill -9 test: the data folder to write.
const CHILD_DIR: &str = "KEFU_STORE_TEST_CHILD_DIR";

/// The promise at the store's level: a message acknowledged before the
/// process is killed with SIGKILL is there when the store is opened again.
/// The test runs itself again as a child that appends in a loop and prints
/// each acknowledgement, kills it mid-stream, then checks the file.
#[test]
fn acknowledged_messages_survive_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        append_until_killed(std::path::Path::new(&dir));
        return;
    }
    let dir = TempDir::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "store::tests::acknowledged_messages_survive_kill_9", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(ack) = line.unwrap().strip_prefix("acked ") {
            let (conversation, seq) = ack.split_once(' ').unwrap();
            acknowledged.push((ConversationId(conversation.parse().unwrap()), Seq(seq.parse().unwrap())));
            if acknowledged.len() == 500 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(acknowledged.len(), 500, "the child stopped early");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(dir.path()).await.unwrap();
        for (conversation, seq) in acknowledged {
            let stored = store.messages_after(conversation, Seq::ZERO, u32::MAX).await.unwrap();
            assert!(stored.len() as u64 >= seq.0, "{conversation:?} lost {seq:?}");
            assert_eq!(seqs(&stored), (1..=stored.len() as u64).collect::<Vec<_>>());
        }
        store.close().await;
    });
}

fn append_until_killed(dir: &std::path::Path) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(dir).await.unwrap();
        let site = store.create_site(&key("demo"), "Demo").await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let visitor = store.create_visitor(site.id, "hash").await.unwrap();
            let c = store.open_conversation(site.id, visitor).await.unwrap();
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let appended = store.append(text(&c, i, "durable")).await.unwrap();
                    println!("acked {} {}", c.id.0, appended.message.seq.0);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}
