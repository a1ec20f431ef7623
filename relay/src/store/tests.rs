//! The store against both backends: a real SQLite file in a temporary
//! folder, and a fresh database on a real PostgreSQL server. Each test body
//! is written once, as `async fn name(db: TestDb)`, and
//! [`on_both_backends!`] makes a `sqlite::name` and a `postgres::name` test
//! of it.
//!
//! PostgreSQL is looked for at `KEFU_TEST_POSTGRES_URL` (an admin
//! connection, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), else at
//! 127.0.0.1:5432 as the OS user, `postgres` or `root` on database `test`
//! or `postgres`. Each test creates `kefu_t_<random>` and drops it after.

use kefu_protocol::frame::{Author, Body, ConversationStatus, ReceiptKind};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, Seq, SiteId, SiteKey, Timestamp, VisitorId};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

use super::{Backend, Conversation, Error, NewMessage, Role, Site, Store};

/// Turns test bodies `async fn name(db: TestDb)` into one test per
/// backend. `name [flavor = "multi_thread", ...]` passes arguments to
/// `#[tokio::test]`.
macro_rules! on_both_backends {
    ($($name:ident $([$($args:tt)*])?),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test$(($($args)*))?]
                async fn $name() {
                    super::$name($crate::store::tests::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test$(($($args)*))?]
                async fn $name() {
                    super::$name($crate::store::tests::TestDb::postgres().await).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// Where a test's store lives; removed when dropped.
pub(crate) enum TestDb {
    Sqlite(TempDir),
    Postgres(PgDatabase),
}

impl TestDb {
    pub(crate) fn sqlite() -> TestDb {
        TestDb::Sqlite(TempDir::new().expect("a temporary folder"))
    }

    pub(crate) async fn postgres() -> TestDb {
        TestDb::Postgres(PgDatabase::create().await)
    }

    /// Opens a store on it; call again for a second node, or to reopen.
    pub(crate) async fn open(&self) -> Store {
        let store = match self {
            TestDb::Sqlite(dir) => Store::open(dir.path()).await,
            TestDb::Postgres(database) => Store::open_postgres(&database.url).await,
        };
        store.expect("the store opens")
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite(_) => Backend::Sqlite,
            TestDb::Postgres(_) => Backend::Postgres,
        }
    }

    /// Where a store opened on it connects.
    fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => super::sqlite_url(&dir.path().join(super::FILE_NAME)),
            TestDb::Postgres(database) => database.url.clone(),
        }
    }
}

/// A fresh database on the test PostgreSQL server, dropped (best effort,
/// also when the test fails) when this is.
pub(crate) struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    pub(crate) async fn create() -> PgDatabase {
        let admin = admin_url().await;
        let name = format!("kefu_t_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut connection = PgConnection::connect(&admin).await.expect("the admin connection");
        connection.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("CREATE DATABASE");
        connection.close().await.ok();
        let url = with_database(&admin, &name);
        PgDatabase { admin, name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside the test's runtime, which must not block on
        // itself: a thread of its own with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&admin).await?;
                // FORCE ends the store's connections still open.
                connection.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                connection.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let without_query = url.split_once('?').map_or(url, |(base, _)| base);
    let (server, _) = without_query.rsplit_once('/').expect("a database URL has a path");
    format!("{server}/{name}")
}

/// The first admin connection that works; panics, saying where it looked,
/// when none does.
async fn admin_url() -> String {
    let candidates = match std::env::var("KEFU_TEST_POSTGRES_URL") {
        Ok(url) => vec![url],
        Err(_) => {
            let mut users: Vec<String> = std::env::var("USER").into_iter().collect();
            users.extend(["postgres".to_owned(), "root".to_owned()]);
            let mut candidates = Vec::new();
            for user in &users {
                for database in ["test", "postgres"] {
                    candidates.push(format!("postgres://{user}@127.0.0.1:5432/{database}"));
                }
            }
            candidates
        }
    };
    for url in &candidates {
        if let Ok(connection) = PgConnection::connect(url).await {
            connection.close().await.ok();
            return url.clone();
        }
    }
    panic!("no PostgreSQL server for the store's tests at any of {candidates:?}; set KEFU_TEST_POSTGRES_URL")
}

struct Fixture {
    db: TestDb,
    store: Store,
    site: Site,
}

impl Fixture {
    async fn new(db: TestDb) -> Fixture {
        let store = db.open().await;
        let site = store.create_site(&key("demo"), "Demo").await.unwrap();
        Fixture { db, store, site }
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
        site: conversation.site,
        conversation: conversation.id,
        client_id: Some(ClientMessageId(client_id)),
        author: Author::Visitor(conversation.visitor),
        body: Body::Text(body.to_owned()),
        with: None,
    }
}

fn seqs(messages: &[kefu_protocol::frame::Message]) -> Vec<u64> {
    messages.iter().map(|message| message.seq.0).collect()
}

async fn the_store_is_durable_by_configuration(db: TestDb) {
    let f = Fixture::new(db).await;
    let pool = f.store.pool();
    match &f.db {
        TestDb::Sqlite(dir) => {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(pool).await.unwrap();
            let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(pool).await.unwrap();
            assert_eq!((mode.as_str(), synchronous, foreign_keys), ("wal", 2, 1), "WAL, FULL, on");
            assert!(dir.path().join("kefu.db").exists());
        }
        TestDb::Postgres(_) => {
            let commit: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(pool).await.unwrap();
            assert_eq!(commit, "on", "the server acknowledges a commit once it is flushed");
        }
    }
    f.store.health().await.unwrap();
}

async fn append_numbers_each_conversation_from_one(db: TestDb) {
    let f = Fixture::new(db).await;
    let (a, b) = (f.conversation().await, f.conversation().await);
    for i in 0..5 {
        let first = f.store.append(text(&a, i, "to a")).await.unwrap();
        let second = f.store.append(text(&b, i, "to b")).await.unwrap();
        assert!(first.fresh && second.fresh);
        assert_eq!(first.message.seq, Seq(i as u64 + 1));
        assert_eq!(second.message.seq, Seq(i as u64 + 1));
    }
    let stored = f.store.messages_after(a.site, a.id, Seq::ZERO, 100).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2, 3, 4, 5]);
    assert_eq!(stored[0].body, Body::Text("to a".into()));
    assert_eq!(stored[0].client_id, Some(ClientMessageId(0)));
    assert_eq!(stored[0].author, Author::Visitor(a.visitor));

    let a = f.store.conversation(a.site, a.id).await.unwrap().unwrap();
    assert_eq!(a.last_seq, Seq(5));
    assert_eq!(a.updated_at, stored[4].sent_at);
}

async fn a_resend_returns_the_original_and_is_stored_once(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    let original = f.store.append(text(&c, 7, "hello")).await.unwrap();
    f.store.append(text(&c, 8, "second")).await.unwrap();

    // Even with another body: the id, not the content, names the message.
    let resent = f.store.append(text(&c, 7, "hello again")).await.unwrap();
    assert!(!resent.fresh);
    assert_eq!(resent.message, original.message);

    let stored = f.store.messages_after(c.site, c.id, Seq::ZERO, 100).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2]);
    assert_eq!(f.store.conversation(c.site, c.id).await.unwrap().unwrap().last_seq, Seq(2));
}

async fn a_duplicate_queued_in_the_same_batch_is_stored_once(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    let first = f.store.submit(text(&c, 1, "once")).await.unwrap();
    let second = f.store.submit(text(&c, 1, "once")).await.unwrap();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert!(first.fresh);
    assert!(!second.fresh);
    assert_eq!(first.message, second.message);
    assert_eq!(f.store.messages_after(c.site, c.id, Seq::ZERO, 10).await.unwrap().len(), 1);
}

async fn every_fresh_message_carries_its_conversations_new_state(db: TestDb) {
    let f = Fixture::new(db).await;
    let (c, other) = (f.conversation().await, f.conversation().await);
    // Queued together, so most likely one batch; either way each fresh
    // message must come with its own conversation, at or after itself.
    let tickets = [
        f.store.submit(text(&c, 1, "one")).await.unwrap(),
        f.store.submit(text(&other, 2, "elsewhere")).await.unwrap(),
        f.store.submit(text(&c, 3, "two")).await.unwrap(),
        f.store.submit(text(&c, 1, "one")).await.unwrap(),
    ];
    let mut appended = Vec::new();
    for ticket in tickets {
        appended.push(ticket.await.unwrap());
    }
    for fresh in &appended[..3] {
        let state = fresh.conversation.as_ref().expect("a fresh message reports its conversation");
        assert_eq!(state.id, fresh.message.conversation);
        assert!(state.last_seq >= fresh.message.seq, "{state:?} is older than {:?}", fresh.message);
    }
    assert_eq!(appended[2].conversation, f.store.conversation(c.site, c.id).await.unwrap());
    assert_eq!(appended[2].conversation.as_ref().unwrap().last_seq, Seq(2));
    assert_eq!(appended[1].conversation.as_ref().unwrap().last_seq, Seq(1));
    assert!(!appended[3].fresh);
    assert_eq!(appended[3].conversation, None, "a resend changes no conversation");
}

async fn the_same_client_id_from_another_author_is_another_message(db: TestDb) {
    let f = Fixture::new(db).await;
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
    let stored = f.store.messages_after(c.site, c.id, Seq::ZERO, 10).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2, 3, 4]);
    assert_eq!(stored[3].author, Author::System);
}

async fn concurrent_appends_give_gapless_seqs_in_each_senders_order(db: TestDb) {
    const TASKS: u128 = 50;
    const PER_TASK: u128 = 40;
    const CONVERSATIONS: usize = 5;
    let f = Fixture::new(db).await;
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
        let stored = f.store.messages_after(c.site, c.id, Seq::ZERO, 10_000).await.unwrap();
        assert_eq!(seqs(&stored), expected);
        assert_eq!(f.store.conversation(c.site, c.id).await.unwrap().unwrap().last_seq, Seq(per_conversation));
    }
    let stats = f.store.writer_stats();
    assert_eq!(stats.messages, (TASKS * PER_TASK) as u64);
    assert!(stats.batches < stats.messages, "no batching happened: {stats:?}");
}

async fn a_bad_request_fails_alone_and_the_batch_goes_on(db: TestDb) {
    let f = Fixture::new(db).await;
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

async fn a_failed_batch_stores_nothing_and_the_writer_recovers(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    // A statement failing midway through a batch, after other messages of
    // the batch were inserted, as a full disk would.
    let poison: &[&str] = match f.db.backend() {
        Backend::Sqlite => &["CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.body = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END"],
        Backend::Postgres => &[
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.body = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison()",
        ],
    };
    for statement in poison {
        sqlx::query(statement).execute(f.store.pool()).await.unwrap();
    }
    let tickets = [
        f.store.submit(text(&c, 1, "fine")).await.unwrap(),
        f.store.submit(text(&c, 2, "poison")).await.unwrap(),
        f.store.submit(text(&c, 3, "fine too")).await.unwrap(),
    ];
    for ticket in tickets {
        assert!(matches!(ticket.await, Err(Error::Database(_))));
    }
    assert!(f.store.messages_after(c.site, c.id, Seq::ZERO, 10).await.unwrap().is_empty());
    assert_eq!(f.store.conversation(c.site, c.id).await.unwrap().unwrap().last_seq, Seq::ZERO);

    let cure = match f.db.backend() {
        Backend::Sqlite => "DROP TRIGGER poison",
        Backend::Postgres => "DROP TRIGGER poison ON messages",
    };
    sqlx::query(cure).execute(f.store.pool()).await.unwrap();
    let retried = f.store.append(text(&c, 1, "fine")).await.unwrap();
    assert!(retried.fresh);
    assert_eq!(retried.message.seq, Seq(1));
}

async fn agents_write_only_in_their_own_sites_conversations(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    let elsewhere = f.store.create_site(&key("other"), "Other").await.unwrap();
    let stranger = f.store.create_agent(elsewhere.id, "eve@example.com", "Eve", "hash", Role::Agent);
    let stranger = stranger.await.unwrap().id;
    let local = f.agent("ann@example.com").await;
    let by = |agent| NewMessage { author: Author::Agent(agent), ..text(&c, 1, "hello") };
    assert!(matches!(f.store.append(by(stranger)).await, Err(Error::NotFound)));
    assert_eq!(f.store.append(by(local)).await.unwrap().message.seq, Seq(1));
}

async fn messages_survive_close_and_reopen(db: TestDb) {
    let f = Fixture::new(db).await;
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

    let store = f.db.open().await;
    let stored = store.messages_after(c.site, c.id, Seq::ZERO, 10).await.unwrap();
    assert_eq!(seqs(&stored), [1, 2]);
    assert_eq!(stored[1].body, Body::Text("two".into()));
    let resent = store.append(text(&c, 2, "two")).await.unwrap();
    assert!(!resent.fresh);
    assert_eq!(resent.message, stored[1]);
    assert_eq!(store.append(text(&c, 3, "three")).await.unwrap().message.seq, Seq(3));
    assert_eq!(store.site_by_key(&key("demo")).await.unwrap(), Some(f.site));
    store.close().await;
}

async fn a_visitor_keeps_one_conversation_through_close_and_reopen(db: TestDb) {
    let f = Fixture::new(db).await;
    let visitor = f.visitor().await;
    let first = f.store.open_conversation(f.site.id, visitor).await.unwrap();
    assert_eq!(first.status, ConversationStatus::Open);
    assert_eq!(first.last_seq, Seq::ZERO);
    assert_eq!(first.visitor, visitor);
    assert_eq!(f.store.open_conversation(f.site.id, visitor).await.unwrap(), first);

    let closed = f.store.close_conversation(first.site, first.id).await.unwrap().unwrap();
    assert_eq!(closed.status, ConversationStatus::Closed);
    assert_eq!(closed.update().status, ConversationStatus::Closed);
    assert_eq!(f.store.close_conversation(first.site, first.id).await.unwrap(), None, "closed once");
    assert_eq!(f.store.close_conversation(f.site.id, ConversationId(999)).await.unwrap(), None);

    // A returning visitor comes back to its closed conversation, history and all.
    let again = f.store.open_conversation(f.site.id, visitor).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.status, ConversationStatus::Closed);

    // A send that was in flight when the conversation closed is kept.
    let late = NewMessage { conversation: first.id, ..text(&first, 1, "wait") };
    assert!(f.store.append(late).await.unwrap().fresh);

    let reopened = f.store.reopen_conversation(first.site, first.id, None).await.unwrap().unwrap();
    assert_eq!((reopened.status, reopened.assignee), (ConversationStatus::Open, None));
    assert_eq!(f.store.reopen_conversation(first.site, first.id, None).await.unwrap(), None, "reopened once");
}

async fn assignment_is_compare_and_set(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    let ann = f.agent("ann@example.com").await;
    let bob = f.agent("bob@example.com").await;
    let taken = f.store.assign_conversation(c.site, c.id, None, ann).await.unwrap().unwrap();
    assert_eq!(taken.assignee, Some(ann));
    assert_eq!(f.store.assign_conversation(c.site, c.id, None, bob).await.unwrap(), None, "already taken");
    assert_eq!(f.store.assign_conversation(c.site, c.id, Some(bob), ann).await.unwrap(), None, "not bob's to give");
    let moved = f.store.assign_conversation(c.site, c.id, Some(ann), bob).await.unwrap().unwrap();
    assert_eq!(moved.assignee, Some(bob));
    let team = f.store.team(f.site.id).await.unwrap();
    let open: Vec<_> = team.iter().map(|m| (m.id, m.open)).collect();
    assert!(open.contains(&(bob, 1)) && open.contains(&(ann, 0)), "{open:?}");
}

async fn the_queue_holds_unassigned_conversations_whose_visitor_waits_oldest_first(db: TestDb) {
    let f = Fixture::new(db).await;
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
    f.store.assign_conversation(second.site, second.id, None, ann).await.unwrap().unwrap();
    assert_eq!(f.store.next_in_queue(f.site.id).await.unwrap(), None);
    let _ = quiet;
}

async fn racing_opens_agree_on_one_conversation(db: TestDb) {
    let f = Fixture::new(db).await;
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

async fn a_visitor_is_known_only_to_its_own_site(db: TestDb) {
    let f = Fixture::new(db).await;
    let other = f.store.create_site(&key("other"), "Other").await.unwrap();
    let visitor = f.store.create_visitor(f.site.id, "abc").await.unwrap();
    assert_eq!(f.store.visitor_token_hash(f.site.id, visitor).await.unwrap().as_deref(), Some("abc"));
    assert_eq!(f.store.visitor_token_hash(other.id, visitor).await.unwrap(), None);
    assert_eq!(f.store.visitor_token_hash(f.site.id, VisitorId(999)).await.unwrap(), None);
    assert!(matches!(f.store.open_conversation(other.id, visitor).await, Err(Error::NotFound)));
    assert!(matches!(f.store.create_visitor(SiteId(999), "x").await, Err(Error::NotFound)));
    f.store.touch_visitor(f.site.id, visitor).await.unwrap();
    assert!(matches!(f.store.touch_visitor(f.site.id, VisitorId(999)).await, Err(Error::NotFound)));
}

async fn open_conversations_lists_the_sites_open_ones_oldest_first(db: TestDb) {
    let f = Fixture::new(db).await;
    let (a, b, c) = (f.conversation().await, f.conversation().await, f.conversation().await);
    let other = f.store.create_site(&key("other"), "Other").await.unwrap();
    let stranger = f.store.create_visitor(other.id, "x").await.unwrap();
    f.store.open_conversation(other.id, stranger).await.unwrap();
    f.store.close_conversation(b.site, b.id).await.unwrap().unwrap();
    f.store.append(text(&c, 1, "newer activity")).await.unwrap();

    let open = f.store.open_conversations(f.site.id).await.unwrap();
    let ids: Vec<_> = open.iter().map(|conversation| conversation.id).collect();
    assert_eq!(ids, [a.id, c.id]);
    assert_eq!(open[1].last_seq, Seq(1));
}

async fn messages_after_pages_through_a_conversation(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    for i in 0..25 {
        f.store.append(text(&c, i, &format!("m{i}"))).await.unwrap();
    }
    let mut after = Seq::ZERO;
    let mut pages = Vec::new();
    loop {
        let page = f.store.messages_after(c.site, c.id, after, 10).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        pages.push(seqs(&page));
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(pages.concat(), (1..=25).collect::<Vec<_>>());
    assert!(f.store.messages_after(c.site, c.id, Seq(u64::MAX), 10).await.unwrap().is_empty());
    assert!(f.store.messages_after(f.site.id, ConversationId(999), Seq::ZERO, 10).await.unwrap().is_empty());
}

async fn receipt_marks_only_grow_and_stop_at_the_last_message(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    let agent = f.agent("ann@example.com").await;
    for i in 0..5 {
        f.store.append(text(&c, i, "x")).await.unwrap();
    }
    let visitor = Author::Visitor(c.visitor);
    let receipt = |by, kind, up_to| f.store.record_receipt(c.site, c.id, by, kind, Seq(up_to));

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
    let nowhere = f.store.record_receipt(f.site.id, ConversationId(999), visitor, ReceiptKind::Read, Seq(1));
    assert!(matches!(nowhere.await, Err(Error::NotFound)));
}

async fn sessions_are_rejected_when_unknown_or_expired(db: TestDb) {
    let f = Fixture::new(db).await;
    let agent = f.agent("ann@example.com").await;
    f.store.create_agent_session(f.site.id, agent, "live", Timestamp(u64::from(u32::MAX) * 1000)).await.unwrap();
    f.store.create_agent_session(f.site.id, agent, "stale", Timestamp(1_000)).await.unwrap();

    let now = Timestamp(2_000);
    let found = f.store.agent_by_session("live", now).await.unwrap().unwrap();
    assert_eq!((found.id, found.site, found.role), (agent, f.site.id, Role::Agent));
    assert_eq!(f.store.agent_by_session("stale", now).await.unwrap(), None);
    assert_eq!(f.store.agent_by_session("unknown", now).await.unwrap(), None);
    assert!(matches!(
        f.store.create_agent_session(f.site.id, AgentId(999), "orphan", Timestamp(u64::MAX)).await,
        Err(Error::NotFound)
    ));
}

async fn sites_and_agents_are_unique_and_logins_ignore_case(db: TestDb) {
    let f = Fixture::new(db).await;
    assert_eq!(f.store.site_count().await.unwrap(), 1);
    assert!(matches!(f.store.create_site(&key("demo"), "Again").await, Err(Error::Conflict(_))));
    assert_eq!(f.store.site_by_key(&key("nope")).await.unwrap(), None);

    let admin = f.store.create_agent(f.site.id, "Boss@Example.com", "Boss", "phc", Role::Admin);
    let admin = admin.await.unwrap();
    let twin = f.store.create_agent(f.site.id, "boss@example.com", "Twin", "phc", Role::Agent);
    assert!(matches!(twin.await, Err(Error::Conflict(_))));
    let nowhere = f.store.create_agent(SiteId(999), "x@example.com", "X", "phc", Role::Agent);
    assert!(matches!(nowhere.await, Err(Error::NotFound)));

    let logins = f.store.agent_logins("BOSS@example.COM").await.unwrap();
    assert_eq!(logins.len(), 1);
    assert_eq!((&logins[0].agent, logins[0].password_hash.as_str(), &logins[0].site), (&admin, "phc", &f.site));
    assert!(f.store.agent_logins("nobody@example.com").await.unwrap().is_empty());

    // Unique per site only: another site may have an agent with that email,
    // and a login then finds both.
    let other = f.store.create_site(&key("other"), "Another").await.unwrap();
    let twin = f.store.create_agent(other.id, "BOSS@example.com", "Boss", "phc2", Role::Agent).await.unwrap();
    let logins = f.store.agent_logins("boss@example.com").await.unwrap();
    let found: Vec<_> = logins.iter().map(|login| (login.agent.id, login.site.id)).collect();
    assert_eq!(found, [(twin.id, other.id), (admin.id, f.site.id)], "by site name");
}

async fn the_first_site_is_created_once(db: TestDb) {
    let store = db.open().await;
    let (demo, other) = (key("demo"), key("other"));
    let first = store.create_first_site(&demo, "Demo", "a@example.com", "A", "phc");
    let (site, admin) = first.await.unwrap().unwrap();
    assert_eq!((admin.site, admin.role), (site.id, Role::Admin));
    let again = store.create_first_site(&other, "Other", "b@example.com", "B", "phc");
    assert_eq!(again.await.unwrap(), None);
    assert_eq!(store.site_count().await.unwrap(), 1);
}

async fn times_never_go_backwards_along_seqs(db: TestDb) {
    let f = Fixture::new(db).await;
    let c = f.conversation().await;
    for i in 0..20 {
        f.store.append(text(&c, i, "t")).await.unwrap();
    }
    let stored = f.store.messages_after(c.site, c.id, Seq::ZERO, 100).await.unwrap();
    assert!(stored.windows(2).all(|pair| pair[0].sent_at <= pair[1].sent_at));
    assert!(stored[0].sent_at > Timestamp(1_600_000_000_000), "a real clock");
}

/// Every call that reads or writes a site's data, made with the id of
/// another site: it reads nothing and changes nothing, and the right site
/// sees its data as it was.
async fn a_call_naming_another_site_reads_and_changes_nothing(db: TestDb) {
    use kefu_protocol::frame::{AgentStatus, Attribute, Visit};

    let f = Fixture::new(db).await;
    let wrong = f.store.create_site(&key("other"), "Other").await.unwrap().id;
    let c = f.conversation().await;
    let ann = f.agent("ann@example.com").await;
    let first = f.store.append(text(&c, 1, "hello")).await.unwrap();
    let visitor = Author::Visitor(c.visitor);
    f.store.record_receipt(f.site.id, c.id, visitor, ReceiptKind::Read, Seq(1)).await.unwrap();
    let before = f.store.conversation(f.site.id, c.id).await.unwrap().unwrap();
    let profile_before = f.store.visitor_profile(f.site.id, c.visitor).await.unwrap();
    let receipts_before = f.store.receipts(f.site.id, c.id).await.unwrap();
    assert_eq!(receipts_before.len(), 1);

    // Reads.
    assert_eq!(f.store.conversation(wrong, c.id).await.unwrap(), None);
    assert!(f.store.messages_after(wrong, c.id, Seq::ZERO, 10).await.unwrap().is_empty());
    assert!(f.store.receipts(wrong, c.id).await.unwrap().is_empty());
    assert!(matches!(f.store.visitor_profile(wrong, c.visitor).await, Err(Error::NotFound)));
    assert!(f.store.visits(wrong, c.visitor, 10).await.unwrap().is_empty());
    assert!(matches!(f.store.messages_before(wrong, c.id, None, 10).await, Err(Error::NotFound)));
    assert_eq!(f.store.visitor_client(wrong, c.visitor).await.unwrap(), None);

    // Writes.
    assert_eq!(f.store.assign_conversation(wrong, c.id, None, ann).await.unwrap(), None);
    assert_eq!(f.store.close_conversation(wrong, c.id).await.unwrap(), None);
    let receipt = f.store.record_receipt(wrong, c.id, visitor, ReceiptKind::Read, Seq(1));
    assert!(matches!(receipt.await, Err(Error::NotFound)));
    let receipt = f.store.record_receipt(wrong, c.id, Author::Agent(ann), ReceiptKind::Delivered, Seq(1));
    assert!(matches!(receipt.await, Err(Error::NotFound)));
    assert!(matches!(f.store.touch_visitor(wrong, c.visitor).await, Err(Error::NotFound)));
    let visit = Visit { url: "https://elsewhere.example/".into(), title: "Elsewhere".into(), referrer: None };
    assert!(matches!(f.store.record_visit(wrong, c.visitor, &visit).await, Err(Error::NotFound)));
    let identity =
        super::Identity { user_id: "mallory", name: Some("M"), email: None, verified: true, profile_signed: false };
    assert!(matches!(f.store.identify_visitor(wrong, c.visitor, &identity).await, Err(Error::NotFound)));
    let attributes = [Attribute { key: "plan".into(), value: "stolen".into() }];
    assert!(matches!(f.store.set_visitor_attributes(wrong, c.visitor, &attributes).await, Err(Error::NotFound)));
    let client = f.store.record_visitor_client(wrong, c.visitor, Some("Evil/1.0"), Some("xx"));
    assert!(matches!(client.await, Err(Error::NotFound)));
    assert!(matches!(f.store.set_agent_status(wrong, ann, AgentStatus::Away).await, Err(Error::NotFound)));
    let session = f.store.create_agent_session(wrong, ann, "planted", Timestamp(u64::MAX / 2));
    assert!(matches!(session.await, Err(Error::NotFound)));
    // The writer: a new message, and a resend of a stored one, naming the
    // wrong site are refused; not even the original is told.
    let new = NewMessage { site: wrong, ..text(&c, 2, "injected") };
    assert!(matches!(f.store.append(new).await, Err(Error::NotFound)));
    let resend = NewMessage { site: wrong, ..text(&c, 1, "hello") };
    assert!(matches!(f.store.append(resend).await, Err(Error::NotFound)));

    // Nothing changed for the right site.
    assert_eq!(f.store.conversation(f.site.id, c.id).await.unwrap().unwrap(), before);
    assert_eq!(before.last_seq, first.message.seq);
    assert_eq!(f.store.messages_after(f.site.id, c.id, Seq::ZERO, 10).await.unwrap(), [first.message]);
    assert_eq!(f.store.receipts(f.site.id, c.id).await.unwrap(), receipts_before);
    assert_eq!(f.store.visitor_profile(f.site.id, c.visitor).await.unwrap(), profile_before);
    assert!(f.store.visits(f.site.id, c.visitor, 10).await.unwrap().is_empty());
    let client = f.store.visitor_client(f.site.id, c.visitor).await.unwrap().unwrap();
    assert_eq!((client.user_agent, client.language), (None, None));
    let team = f.store.team(f.site.id).await.unwrap();
    assert_eq!((team[0].id, team[0].status), (ann, AgentStatus::Online));
    assert_eq!(f.store.agent_by_session("planted", super::now()).await.unwrap(), None);

    // A closed conversation is not reopened through another site either.
    f.store.close_conversation(f.site.id, c.id).await.unwrap().unwrap();
    assert_eq!(f.store.reopen_conversation(wrong, c.id, None).await.unwrap(), None);
    let closed = f.store.conversation(f.site.id, c.id).await.unwrap().unwrap();
    assert_eq!(closed.status, ConversationStatus::Closed);
}

/// The right site's conversation, given to an agent of another site: the
/// store says no, and so does the database when asked directly.
async fn the_database_refuses_a_cross_site_assignee(db: TestDb) {
    let f = Fixture::new(db).await;
    let other = f.store.create_site(&key("other"), "Other").await.unwrap();
    let stranger = f.store.create_agent(other.id, "eve@example.com", "Eve", "hash", Role::Agent);
    let stranger = stranger.await.unwrap().id;
    let c = f.conversation().await;
    assert_eq!(f.store.assign_conversation(f.site.id, c.id, None, stranger).await.unwrap(), None);
    f.store.close_conversation(f.site.id, c.id).await.unwrap().unwrap();
    assert_eq!(f.store.reopen_conversation(f.site.id, c.id, Some(stranger)).await.unwrap(), None);

    let refused = |column: &'static str| {
        let sql = format!("UPDATE conversations SET {column} = $1 WHERE id = $2");
        let store = f.store.clone();
        async move {
            let error = sqlx::query(&sql)
                .bind(stranger.0 as i64)
                .bind(c.id.0 as i64)
                .execute(store.pool())
                .await
                .expect_err("another site's agent is refused");
            assert!(error.as_database_error().is_some_and(|e| e.is_foreign_key_violation()), "{column}: {error}");
        }
    };
    refused("assignee_id").await;
    refused("agent_marks_by").await;
    // Nor can a conversation be with another site's visitor.
    let foreign_visitor = f.store.create_visitor(other.id, "hash").await.unwrap();
    let id = f.store.new_conversation_id().await.unwrap();
    let error = sqlx::query(
        "INSERT INTO conversations (id, site_id, visitor_id, status, created_at, updated_at) \
         VALUES ($3, $1, $2, 'open', 0, 0)",
    )
    .bind(f.site.id.0 as i64)
    .bind(foreign_visitor.0 as i64)
    .bind(id.0 as i64)
    .execute(f.store.pool())
    .await
    .expect_err("another site's visitor is refused");
    assert!(error.as_database_error().is_some_and(|e| e.is_foreign_key_violation()), "{error}");
    let c = f.store.conversation(f.site.id, c.id).await.unwrap().unwrap();
    assert_eq!((c.assignee, c.status), (None, ConversationStatus::Closed));
}

/// A database the relay wrote before migration 0005, holding a
/// conversation assigned across sites (what a bug could have left): the
/// migration keeps every row and every session, drops only the cross-site
/// assignee, and from then on the database refuses such links.
async fn migrating_to_site_scoped_keys_keeps_the_data_and_drops_cross_site_links(db: TestDb) {
    sqlx::any::install_default_drivers();
    let mut old = match db.backend() {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    old.migrations = old.migrations.iter().filter(|m| m.version < 5).cloned().collect::<Vec<_>>().into();
    let mut connection = sqlx::AnyConnection::connect(&db.url()).await.unwrap();
    old.run(&mut connection).await.unwrap();
    // Ids far above what the tables' own counters hand out next.
    for statement in [
        "INSERT INTO sites (id, key, name, created_at) VALUES (1001, 'a', 'A', 0), (1002, 'b', 'B', 0)",
        "INSERT INTO agents (id, site_id, email, name, password_hash, role, created_at) VALUES \
         (1001, 1001, 'ann@example.com', 'Ann', 'phc', 'admin', 0), \
         (1002, 1002, 'eve@example.com', 'Eve', 'phc', 'admin', 0)",
        "INSERT INTO agent_sessions (token_hash, agent_id, created_at, expires_at) VALUES ('ann', 1001, 0, 9000000000000)",
        "INSERT INTO visitors (id, site_id, token_hash, created_at, last_seen_at) VALUES (1001, 1001, 'h', 0, 0)",
        "INSERT INTO conversations (id, site_id, visitor_id, status, created_at, updated_at, assignee_id, agent_marks_by) \
         VALUES (1001, 1001, 1001, 'open', 0, 0, 1002, 1001)",
        "INSERT INTO messages (conversation_id, seq, author_kind, author_id, body, created_at) \
         VALUES (1001, 1, 'visitor', 1001, 'hi', 5)",
    ] {
        connection.execute(statement).await.unwrap();
    }
    connection.close().await.unwrap();

    let store = db.open().await;
    let (site, conversation) = (SiteId(1001), ConversationId(1001));
    let c = store.conversation(site, conversation).await.unwrap().unwrap();
    assert_eq!((c.assignee, c.last_seq, c.visitor), (None, Seq(1), VisitorId(1001)), "the stranger is gone");
    let marks_by: Option<i64> = sqlx::query_scalar("SELECT agent_marks_by FROM conversations WHERE id = 1001")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(marks_by, Some(1001), "a same-site link is kept");
    let ann = store.agent_by_session("ann", super::now()).await.unwrap().expect("sessions survive the rebuild");
    assert_eq!((ann.id, ann.site), (AgentId(1001), site));
    assert_eq!(store.agent_logins("ANN@example.com").await.unwrap()[0].agent, ann);
    let message = NewMessage { site, ..text(&c, 1, "still here") };
    let appended = store.append(message).await.unwrap();
    assert_eq!(appended.message.seq, Seq(2), "the trigger on messages came back");
    assert_eq!(store.conversation(site, conversation).await.unwrap().unwrap().last_seq, Seq(2));
    assert_eq!(
        store.assign_conversation(site, conversation, None, ann.id).await.unwrap().unwrap().assignee,
        Some(ann.id)
    );
    let error = sqlx::query("UPDATE conversations SET assignee_id = 1002 WHERE id = 1001")
        .execute(store.pool())
        .await
        .expect_err("another site's agent is refused after the migration");
    assert!(error.as_database_error().is_some_and(|e| e.is_foreign_key_violation()), "{error}");
    store.close().await;
}

/// Open conversations nobody wrote in go once they and their visitor's
/// last visit are older than the cutoff; any with a message stay.
async fn empty_open_conversations_expire(db: TestDb) {
    let f = Fixture::new(db).await;
    let (empty, spoken, closed) = (f.conversation().await, f.conversation().await, f.conversation().await);
    f.store.append(text(&spoken, 1, "hello")).await.unwrap();
    f.store.close_conversation(closed.site, closed.id).await.unwrap().unwrap();
    assert_eq!(f.store.expire_empty_conversations(Timestamp(0)).await.unwrap(), 0, "nothing is that old");
    let later = Timestamp(super::now().0 + 1_000);
    assert_eq!(f.store.expire_empty_conversations(later).await.unwrap(), 1);
    assert_eq!(f.store.conversation(empty.site, empty.id).await.unwrap(), None);
    assert!(f.store.conversation(spoken.site, spoken.id).await.unwrap().is_some());
    assert!(f.store.conversation(closed.site, closed.id).await.unwrap().is_some());
    // The visitor comes back: a fresh conversation, and it may write.
    let again = f.store.open_conversation(empty.site, empty.visitor).await.unwrap();
    assert_ne!(again.id, empty.id);
    assert_eq!(f.store.append(text(&again, 1, "hi")).await.unwrap().message.seq, Seq(1));
}

/// A visitor's rows are made once, with the conversation it was promised,
/// however many connections save it; nodes never hand out the same id;
/// and a visitor id cannot be saved into another site.
async fn a_visitor_is_saved_once_with_its_promised_conversation(db: TestDb) {
    let f = Fixture::new(db).await;
    let second_node = f.db.open().await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..100 {
        assert!(ids.insert(f.store.new_visitor_id().await.unwrap().0));
        assert!(ids.insert(second_node.new_visitor_id().await.unwrap().0), "two nodes handed out one id");
    }
    let visitor = f.store.new_visitor_id().await.unwrap();
    let promised = second_node.new_conversation_id().await.unwrap();
    assert_eq!(f.store.visitor_conversation(f.site.id, visitor).await.unwrap(), None);
    let new = super::NewVisitor {
        id: visitor,
        conversation: promised,
        token_hash: "hash",
        user_agent: Some("Firefox"),
        language: Some("de"),
        mail: &[],
    };
    let (a, b) = tokio::join!(f.store.save_visitor(f.site.id, &new), second_node.save_visitor(f.site.id, &new));
    assert_eq!(a.unwrap().id, promised);
    assert_eq!(b.unwrap().id, promised);
    let saved = f.store.save_visitor(f.site.id, &new).await.unwrap();
    assert_eq!((saved.id, saved.visitor, saved.status), (promised, visitor, ConversationStatus::Open));
    assert_eq!(f.store.visitor_client(f.site.id, visitor).await.unwrap().unwrap().language.as_deref(), Some("de"));
    assert_eq!(f.store.append(text(&saved, 1, "hello")).await.unwrap().message.seq, Seq(1));

    let other = f.store.create_site(&key("other"), "Other").await.unwrap();
    let stolen = super::NewVisitor { conversation: f.store.new_conversation_id().await.unwrap(), ..new };
    assert!(matches!(f.store.save_visitor(other.id, &stolen).await, Err(Error::NotFound)));
    assert_eq!(f.store.visitor_conversation(other.id, visitor).await.unwrap(), None);
    second_node.close().await;
}

/// Two relay nodes on one database: two stores, each with its own writer,
/// appending to the same conversations at once, with every message sent
/// twice (once through each node, as a client that reconnects elsewhere
/// resends). Each message is stored once, seqs are gapless, and both nodes
/// answer a message with the same seq and id.
async fn two_nodes_appending_at_once_store_each_message_once_with_gapless_seqs(db: TestDb) {
    const MESSAGES: u128 = 200;
    let f = Fixture::new(db).await;
    let other = f.db.open().await;
    let conversations = [f.conversation().await, f.conversation().await];
    let mut tasks = Vec::new();
    for (node, store) in [f.store.clone(), other.clone()].into_iter().enumerate() {
        for c in conversations.clone() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // The two nodes go through the ids in opposite orders, so
                // each id races somewhere, and both batch (pipelined).
                let ids: Vec<u128> = if node == 0 { (0..MESSAGES).collect() } else { (0..MESSAGES).rev().collect() };
                let mut tickets = Vec::new();
                for id in ids {
                    tickets.push((id, store.submit(text(&c, id, &format!("m{id}"))).await.unwrap()));
                }
                let mut answers = Vec::new();
                for (id, ticket) in tickets {
                    let appended = ticket.await.unwrap();
                    answers.push((c.id, id, appended.message.seq, appended.message.id, appended.fresh));
                }
                answers
            }));
        }
    }
    let mut answers = std::collections::HashMap::new();
    let mut fresh = 0;
    for task in tasks {
        for (conversation, id, seq, message, was_fresh) in task.await.unwrap() {
            fresh += usize::from(was_fresh);
            if let Some(first) = answers.insert((conversation, id), (seq, message)) {
                assert_eq!(first, (seq, message), "both nodes answer the same seq and id");
            }
        }
    }
    assert_eq!(fresh, 2 * MESSAGES as usize, "each message stored fresh exactly once");
    for c in &conversations {
        let stored = f.store.messages_after(c.site, c.id, Seq::ZERO, 10_000).await.unwrap();
        assert_eq!(seqs(&stored), (1..=MESSAGES as u64).collect::<Vec<_>>(), "gapless, no duplicate rows");
        for message in &stored {
            let id = message.client_id.unwrap().0;
            assert_eq!(answers[&(c.id, id)], (message.seq, message.id));
        }
        assert_eq!(other.conversation(c.site, c.id).await.unwrap().unwrap().last_seq, Seq(MESSAGES as u64));
    }
    other.close().await;
}

/// Agents on two nodes taking the same waiting conversation at once:
/// exactly one of them gets it.
async fn assignment_across_nodes_has_one_winner(db: TestDb) {
    let f = Fixture::new(db).await;
    let other = f.db.open().await;
    let mut agents = Vec::new();
    for n in 0..8 {
        agents.push(f.agent(&format!("agent{n}@example.com")).await);
    }
    for _ in 0..5 {
        let c = f.conversation().await;
        let takes: Vec<_> = agents
            .iter()
            .enumerate()
            .map(|(n, &agent)| {
                let store = if n % 2 == 0 { f.store.clone() } else { other.clone() };
                tokio::spawn(async move { store.assign_conversation(c.site, c.id, None, agent).await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        for take in takes {
            winners.extend(take.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(f.store.conversation(c.site, c.id).await.unwrap().unwrap().assignee, winners[0].assignee);
    }
    other.close().await;
}

/// Two relays starting on one empty database set it up once.
async fn two_nodes_create_the_first_site_once(db: TestDb) {
    let (one, two) = (db.open().await, db.open().await);
    let (a, b) = (key("a"), key("b"));
    let (first, second) = tokio::join!(
        one.create_first_site(&a, "A", "a@example.com", "A", "phc"),
        two.create_first_site(&b, "B", "b@example.com", "B", "phc"),
    );
    let created = [first.unwrap(), second.unwrap()].into_iter().flatten().count();
    assert_eq!(created, 1);
    assert_eq!(one.site_count().await.unwrap(), 1);
    one.close().await;
    two.close().await;
}

on_both_backends![
    the_store_is_durable_by_configuration,
    append_numbers_each_conversation_from_one,
    a_resend_returns_the_original_and_is_stored_once,
    a_duplicate_queued_in_the_same_batch_is_stored_once,
    every_fresh_message_carries_its_conversations_new_state,
    the_same_client_id_from_another_author_is_another_message,
    concurrent_appends_give_gapless_seqs_in_each_senders_order[flavor = "multi_thread", worker_threads = 4],
    a_bad_request_fails_alone_and_the_batch_goes_on,
    a_failed_batch_stores_nothing_and_the_writer_recovers,
    agents_write_only_in_their_own_sites_conversations,
    messages_survive_close_and_reopen,
    a_visitor_keeps_one_conversation_through_close_and_reopen,
    assignment_is_compare_and_set,
    the_queue_holds_unassigned_conversations_whose_visitor_waits_oldest_first,
    racing_opens_agree_on_one_conversation[flavor = "multi_thread", worker_threads = 4],
    a_visitor_is_known_only_to_its_own_site,
    open_conversations_lists_the_sites_open_ones_oldest_first,
    messages_after_pages_through_a_conversation,
    receipt_marks_only_grow_and_stop_at_the_last_message,
    sessions_are_rejected_when_unknown_or_expired,
    a_call_naming_another_site_reads_and_changes_nothing,
    the_database_refuses_a_cross_site_assignee,
    empty_open_conversations_expire,
    a_visitor_is_saved_once_with_its_promised_conversation,
    migrating_to_site_scoped_keys_keeps_the_data_and_drops_cross_site_links,
    sites_and_agents_are_unique_and_logins_ignore_case,
    the_first_site_is_created_once,
    times_never_go_backwards_along_seqs,
    two_nodes_appending_at_once_store_each_message_once_with_gapless_seqs[flavor = "multi_thread", worker_threads = 4],
    assignment_across_nodes_has_one_winner[flavor = "multi_thread", worker_threads = 4],
    two_nodes_create_the_first_site_once[flavor = "multi_thread", worker_threads = 2],
];

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
        let site = store.site_by_key(&key("demo")).await.unwrap().unwrap().id;
        for (conversation, seq) in acknowledged {
            let stored = store.messages_after(site, conversation, Seq::ZERO, u32::MAX).await.unwrap();
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

/// A rolling upgrade on PostgreSQL: a node of the newer release migrated
/// the shared database first; a node of this release, started or
/// restarted meanwhile, still opens it (and leaves the newer migration be).
#[tokio::test]
async fn a_node_starts_on_a_database_a_newer_release_has_migrated() {
    let db = TestDb::postgres().await;
    let store = db.open().await;
    let newer = store.backend().newest_migration() + 1;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from a newer release', TRUE, '\\x00'::bytea, 0)",
    )
    .bind(newer)
    .execute(store.pool())
    .await
    .expect("a newer release's migration recorded");
    store.close().await;

    let again = Store::open_postgres(&db.url()).await.expect("this release still opens the database");
    again.ready().await.expect("and is ready on it");
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(again.pool())
        .await
        .expect("the migrations");
    assert_eq!(versions.last(), Some(&newer), "the newer release's migration is kept");
    again.close().await;
}
