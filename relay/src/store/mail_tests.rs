//! The mail outbox on both backends: queued with its cause, claimed by one
//! node at a time, leases, fences, retries and the admins' list.

use std::collections::BTreeSet;
use std::time::Duration;

use kefu_protocol::ids::{SiteKey, Timestamp};

use super::tests::{TestDb, on_both_backends};
use super::{MailId, MailOutcome, MailStatus, NewMail, OnDuplicate, OutboxMail, SiteMailSettings, Store, now};

const LEASE: Duration = Duration::from_secs(60);

fn mail<'a>(key: &'a str, job: &'a str, not_before: Timestamp, on_duplicate: OnDuplicate) -> NewMail<'a> {
    NewMail { kind: "test", job, dedupe_key: key, not_before, on_duplicate }
}

fn later(by_ms: u64) -> Timestamp {
    Timestamp(now().0 + by_ms)
}

async fn site(store: &Store, key: &str) -> kefu_protocol::ids::SiteId {
    store.create_site(&SiteKey::new(key).unwrap(), key).await.unwrap().id
}

fn ids(mails: &[OutboxMail]) -> Vec<MailId> {
    mails.iter().map(|mail| mail.id).collect()
}

async fn one_queued_mail_per_key_and_a_claimed_one_no_longer_blocks_it(db: TestDb) {
    let store = db.open().await;
    let site = site(&store, "demo").await;
    let first = store.enqueue_mail(site, &mail("k", "one", now(), OnDuplicate::Keep)).await.unwrap();
    assert!(first.is_some());
    let kept = store.enqueue_mail(site, &mail("k", "two", now(), OnDuplicate::Keep)).await.unwrap();
    assert_eq!(kept, None, "a second cause with the key while one is queued makes no second mail");
    let replaced = store.enqueue_mail(site, &mail("k", "three", now(), OnDuplicate::Replace)).await.unwrap();
    assert_eq!(replaced, first, "Replace changes the queued mail");

    let claimed = store.claim_mail(now(), LEASE, 10).await.unwrap();
    assert_eq!(ids(&claimed), [first.unwrap()]);
    assert_eq!((claimed[0].job.as_str(), claimed[0].status, claimed[0].attempts), ("three", MailStatus::Sending, 1));
    assert!(store.claim_mail(now(), LEASE, 10).await.unwrap().is_empty(), "a claimed mail is not claimed again");

    let next = store.enqueue_mail(site, &mail("k", "four", now(), OnDuplicate::Keep)).await.unwrap();
    assert!(next.is_some() && next != first, "a cause after the claim makes a new mail");
    store.close().await;
}

async fn a_mail_is_not_claimed_before_it_is_due_and_a_retry_waits(db: TestDb) {
    let store = db.open().await;
    let site = site(&store, "demo").await;
    store.enqueue_mail(site, &mail("later", "j", later(60_000), OnDuplicate::Keep)).await.unwrap();
    assert!(store.claim_mail(now(), LEASE, 10).await.unwrap().is_empty());
    assert_eq!(store.next_mail_due().await.unwrap().map(|due| due.0 > now().0), Some(true));

    let claimed = store.claim_mail(later(61_000), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let retry = MailOutcome::Retry { at: later(120_000), error: "421 try later", recipients: "a@x", subject: "S" };
    assert!(store.finish_mail(site, &claimed[0], &retry).await.unwrap());
    assert!(store.claim_mail(later(61_000), LEASE, 10).await.unwrap().is_empty(), "the retry waits");
    let again = store.claim_mail(later(121_000), LEASE, 10).await.unwrap();
    assert_eq!((again[0].attempts, again[0].last_error.as_deref()), (2, Some("421 try later")));

    let failed = MailOutcome::Failed { error: "550 no such user", recipients: "a@x", subject: "S" };
    assert!(store.finish_mail(site, &again[0], &failed).await.unwrap());
    let listed = store.outbox(site, 10).await.unwrap();
    assert_eq!(listed[0].status, MailStatus::Failed);
    assert_eq!(listed[0].last_error.as_deref(), Some("550 no such user"));
    assert_eq!((listed[0].recipients.as_str(), listed[0].subject.as_str()), ("a@x", "S"));
    assert!(store.claim_mail(later(10_000_000), LEASE, 10).await.unwrap().is_empty(), "failed is final");
    store.close().await;
}

async fn a_claim_whose_lease_ran_out_is_taken_again_and_the_old_claim_is_fenced(db: TestDb) {
    let store = db.open().await;
    let site = site(&store, "demo").await;
    store.enqueue_mail(site, &mail("k", "j", now(), OnDuplicate::Keep)).await.unwrap();
    let start = now();
    let first = store.claim_mail(start, Duration::from_secs(1), 10).await.unwrap();
    assert!(store.claim_mail(Timestamp(start.0 + 500), LEASE, 10).await.unwrap().is_empty(), "within the lease");
    // A node that died mid-send: after its lease another claims the mail.
    let second = store.claim_mail(Timestamp(start.0 + 1_000), LEASE, 10).await.unwrap();
    assert_eq!(ids(&second), ids(&first));
    assert_eq!(second[0].attempts, 2);

    let sent = MailOutcome::Sent { recipients: "a@x", subject: "S", message_id: "<m@x>" };
    assert!(!store.finish_mail(site, &first[0], &sent).await.unwrap(), "the stale claim changes nothing");
    assert_eq!(store.outbox_mail(site, first[0].id).await.unwrap().unwrap().status, MailStatus::Sending);
    assert!(store.finish_mail(site, &second[0], &sent).await.unwrap());
    let row = store.outbox_mail(site, first[0].id).await.unwrap().unwrap();
    assert_eq!((row.status, row.message_id.as_deref()), (MailStatus::Sent, Some("<m@x>")));
    store.close().await;
}

async fn the_outbox_and_its_marks_are_one_sites(db: TestDb) {
    let store = db.open().await;
    let (mine, other) = (site(&store, "mine").await, site(&store, "other").await);
    store.enqueue_mail(mine, &mail("k", "j", now(), OnDuplicate::Keep)).await.unwrap();
    assert_eq!(store.outbox(mine, 10).await.unwrap().len(), 1);
    assert!(store.outbox(other, 10).await.unwrap().is_empty());
    let claimed = store.claim_mail(now(), LEASE, 10).await.unwrap();
    assert_eq!(store.outbox_mail(other, claimed[0].id).await.unwrap(), None);
    assert!(!store.finish_mail(other, &claimed[0], &MailOutcome::Skipped).await.unwrap(), "another site's mark");
    assert!(store.finish_mail(mine, &claimed[0], &MailOutcome::Skipped).await.unwrap());
    assert_eq!(store.outbox(mine, 10).await.unwrap()[0].status, MailStatus::Skipped);
    store.close().await;
}

async fn two_nodes_claiming_at_once_never_claim_one_mail(db: TestDb) {
    let (one, two) = (db.open().await, db.open().await);
    let site = site(&one, "demo").await;
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    for key in &keys {
        one.enqueue_mail(site, &mail(key, "j", now(), OnDuplicate::Keep)).await.unwrap();
    }
    async fn drain(store: &Store) -> Vec<MailId> {
        let mut claimed = Vec::new();
        loop {
            let batch = store.claim_mail(now(), LEASE, 3).await.unwrap();
            if batch.is_empty() {
                return claimed;
            }
            claimed.extend(ids(&batch));
        }
    }
    let (a, b) = tokio::join!(tokio::spawn(async move { drain(&one).await }), {
        let two = two.clone();
        tokio::spawn(async move { drain(&two).await })
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: BTreeSet<MailId> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), a.len() + b.len(), "a mail claimed by both nodes");
    assert_eq!(all.len(), keys.len());
    two.close().await;
}

async fn a_new_visitors_mail_commits_with_its_conversation_once(db: TestDb) {
    let store = db.open().await;
    let site = site(&store, "demo").await;
    let visitor = store.new_visitor_id().await.unwrap();
    let conversation = store.new_conversation_id().await.unwrap();
    let queued = [mail("new", "j", now(), OnDuplicate::Keep)];
    let new = super::NewVisitor {
        id: visitor,
        conversation,
        token_hash: "hash",
        user_agent: None,
        language: None,
        mail: &queued,
    };
    store.save_visitor(site, &new).await.unwrap();
    assert_eq!(store.outbox(site, 10).await.unwrap().len(), 1);
    store.claim_mail(now(), LEASE, 10).await.unwrap();
    store.save_visitor(site, &new).await.unwrap();
    assert_eq!(store.outbox(site, 10).await.unwrap().len(), 1, "saving the visitor again queues nothing");

    let other = self::site(&store, "other").await;
    let stolen = super::NewVisitor { conversation: store.new_conversation_id().await.unwrap(), ..new };
    assert!(store.save_visitor(other, &stolen).await.is_err(), "another site's visitor");
    assert!(store.outbox(other, 10).await.unwrap().is_empty(), "a save that made nothing queued nothing");
    store.close().await;
}

async fn mail_settings_have_defaults_and_are_kept_per_site(db: TestDb) {
    let store = db.open().await;
    let (mine, other) = (site(&store, "mine").await, site(&store, "other").await);
    assert_eq!(store.site_mail_settings(mine).await.unwrap(), SiteMailSettings::default());
    let settings = SiteMailSettings {
        notify_to: Some("team@example.com".into()),
        missed_after_minutes: 15,
        reply_to: Some("help@example.com".into()),
        language: "zh-TW".into(),
    };
    store.set_site_mail_settings(mine, &settings).await.unwrap();
    assert_eq!(store.site_mail_settings(mine).await.unwrap(), settings);
    assert_eq!(store.site_mail_settings(other).await.unwrap(), SiteMailSettings::default());
    let back = SiteMailSettings { notify_to: None, reply_to: None, ..settings };
    store.set_site_mail_settings(mine, &back).await.unwrap();
    assert_eq!(store.site_mail_settings(mine).await.unwrap(), back);
    store.close().await;
}

on_both_backends![
    one_queued_mail_per_key_and_a_claimed_one_no_longer_blocks_it,
    a_mail_is_not_claimed_before_it_is_due_and_a_retry_waits,
    a_claim_whose_lease_ran_out_is_taken_again_and_the_old_claim_is_fenced,
    the_outbox_and_its_marks_are_one_sites,
    two_nodes_claiming_at_once_never_claim_one_mail[flavor = "multi_thread", worker_threads = 4],
    a_new_visitors_mail_commits_with_its_conversation_once,
    mail_settings_have_defaults_and_are_kept_per_site,
];
