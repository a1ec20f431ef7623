//! The model on the host: folders, unread counts, tabs, own messages,
//! history pages, news, typing and the banner.

use kefu_protocol::frame::AgentRef;
use kefu_protocol::ids::MessageId;

use super::*;
use kefu_protocol::frame::Message;
use kefu_protocol::frame::{
    Accepted, Author, Body, ConversationEvent, ConversationStatus, ConversationUpdate, TypingNotice,
};
use kefu_protocol::ids::{ClientMessageId, Seq};
use kefu_protocol::session::Millis;

const ME: AgentId = AgentId(1);
const OTHER: AgentId = AgentId(2);
const CONV: ConversationId = ConversationId(7);
const VISITOR: VisitorId = VisitorId(3);

fn update(id: ConversationId, at: u64, assignee: Option<AgentId>) -> ConversationUpdate {
    ConversationUpdate {
        conversation: id,
        visitor: VISITOR,
        status: ConversationStatus::Open,
        last_seq: Seq::ZERO,
        updated_at: Timestamp(at),
        assignee,
        waiting_since: None,
    }
}

fn message(conversation: ConversationId, seq: u64, author: Author, text: &str) -> Message {
    Message {
        conversation,
        seq: Seq(seq),
        prev: Seq(seq - 1),
        id: MessageId(seq),
        client_id: None,
        author,
        body: Body::Text(text.into()),
        sent_at: Timestamp(1_000 + seq),
    }
}

fn texts(model: &Model, id: ConversationId) -> Vec<String> {
    model.conversation(id).unwrap().lines().iter().map(|l| l.text.clone()).collect()
}

#[test]
fn newest_activity_first_and_my_first_chat_opens_by_itself() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
    model.conversation_update(&update(ConversationId(2), 20, Some(ME)));
    assert_eq!(model.list(Folder::Mine), [ConversationId(2), ConversationId(1)]);
    assert_eq!(model.selected(), Some(ConversationId(1)));
    assert_eq!(model.tabs(), [ConversationId(1)]);
    model.message(&message(ConversationId(1), 1, Author::Visitor(VISITOR), "hi"));
    assert_eq!(model.list(Folder::Mine), [ConversationId(1), ConversationId(2)]);
}

#[test]
fn only_a_chat_newly_given_to_me_opens_by_itself() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
    model.close_tab(ConversationId(1));
    // News in a chat the agent closed the tab of: it stays closed.
    model.message(&message(ConversationId(1), 1, Author::Visitor(VISITOR), "hi"));
    model.conversation_update(&update(ConversationId(1), 20, Some(ME)));
    assert_eq!(model.tabs(), []);
    model.conversation_update(&update(ConversationId(2), 30, None));
    assert_eq!(model.tabs(), []);
    model.conversation_update(&update(ConversationId(2), 40, Some(ME)));
    assert_eq!(model.tabs(), [ConversationId(2)]);
}

#[test]
fn folders_split_the_queue_mine_and_everyone_elses() {
    let mut model = Model::new(ME, true);
    let mut waiting_long = update(ConversationId(1), 50, None);
    waiting_long.waiting_since = Some(Timestamp(5));
    let mut waiting_short = update(ConversationId(2), 10, None);
    waiting_short.waiting_since = Some(Timestamp(9));
    model.conversation_update(&waiting_short);
    model.conversation_update(&waiting_long);
    model.conversation_update(&update(ConversationId(3), 30, Some(ME)));
    model.conversation_update(&update(ConversationId(4), 40, Some(OTHER)));
    assert_eq!(model.list(Folder::Unassigned), [ConversationId(1), ConversationId(2)]);
    assert_eq!(model.list(Folder::Mine), [ConversationId(3)]);
    assert_eq!(model.list(Folder::All).len(), 4);
    let mut closed = update(ConversationId(3), 60, Some(ME));
    closed.status = ConversationStatus::Closed;
    model.conversation_update(&closed);
    assert_eq!(model.list(Folder::Mine), []);
    assert_eq!(model.list(Folder::Closed), [ConversationId(3)]);
    assert_eq!(model.count(Folder::All), Some(3));
}

#[test]
fn unread_counts_what_is_not_on_screen_and_not_answered() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
    model.conversation_update(&update(CONV, 5, Some(ME)));
    assert_eq!(model.selected(), Some(ConversationId(1)));
    model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
    model.message(&message(CONV, 2, Author::Agent(ME), "b"));
    model.message(&message(CONV, 3, Author::Visitor(VISITOR), "c"));
    let mut note = message(CONV, 4, Author::Agent(OTHER), "");
    note.body = Body::Note("a note answers nobody".into());
    model.message(&note);
    model.message(&message(CONV, 5, Author::Visitor(VISITOR), "d"));
    assert_eq!(model.conversation(CONV).unwrap().unread(), 2);
    assert_eq!(model.unread_total(), 2);
    model.select(CONV);
    assert_eq!(model.unread_total(), 0);
    assert_eq!(model.conversation(CONV).unwrap().read(), Seq(5));
}

#[test]
fn someone_elses_chat_is_not_in_the_title() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(CONV, 5, Some(OTHER)));
    model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
    assert_eq!(model.conversation(CONV).unwrap().unread(), 1);
    assert_eq!(model.unread_total(), 0);
}

#[test]
fn a_hidden_page_reads_nothing() {
    let mut model = Model::new(ME, false);
    model.conversation_update(&update(CONV, 5, Some(ME)));
    model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
    assert_eq!(model.unread_total(), 1);
    model.set_visible(true);
    assert_eq!(model.unread_total(), 0);
}

#[test]
fn own_messages_keep_their_row_and_land_in_seq_order() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(CONV, 5, Some(ME)));
    model.queue(CONV, ClientMessageId(9), &Body::Text("mine".into()), Timestamp(1));
    model.message(&message(CONV, 1, Author::Visitor(VISITOR), "theirs"));
    assert_eq!(texts(&model, CONV), ["theirs", "mine"]);
    let mut echo = message(CONV, 2, Author::Agent(ME), "mine");
    echo.client_id = Some(ClientMessageId(9));
    model.message(&echo);
    model.accepted(&Accepted {
        conversation: CONV,
        client_id: ClientMessageId(9),
        id: MessageId(2),
        seq: Seq(2),
        sent_at: Timestamp(5),
    });
    assert_eq!(texts(&model, CONV), ["theirs", "mine"]);
    let lines = model.conversation(CONV).unwrap().lines();
    assert_eq!(lines[1].key, LineKey::Own(ClientMessageId(9)));
    assert_eq!(lines[1].seq, Some(Seq(2)));
    model.message(&message(CONV, 2, Author::Agent(ME), "mine"));
    assert_eq!(texts(&model, CONV).len(), 2);
}

#[test]
fn notes_and_system_lines_are_kept_apart_from_messages() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(CONV, 5, Some(ME)));
    let mut event = message(CONV, 1, Author::System, "");
    let ann = AgentRef { id: ME, name: "Ann".into() };
    let bob = AgentRef { id: OTHER, name: "Bob".into() };
    event.body = Body::Event(ConversationEvent::Transferred { from: ann.clone(), to: bob });
    model.message(&event);
    model.queue(CONV, ClientMessageId(1), &Body::Note("VIP".into()), Timestamp(3));
    let lines = model.conversation(CONV).unwrap().lines();
    assert_eq!((lines[0].kind, lines[0].text.as_str()), (Kind::System, "Ann transferred the chat to Bob"));
    assert_eq!((lines[1].kind, lines[1].sender), (Kind::Note, Sender::Agent(ME)));
    assert_eq!(
        system_text(&ConversationEvent::Assigned { to: ann.clone(), by: Some(ann.clone()) }),
        "Ann took the chat"
    );
    assert_eq!(system_text(&ConversationEvent::Assigned { to: ann.clone(), by: None }), "Assigned to Ann");
    assert_eq!(
        system_text(&ConversationEvent::Rated { score: 4, comment: "quick".into() }),
        "The visitor rated the chat 4 of 5: “quick”"
    );
    assert_eq!(system_text(&ConversationEvent::Closed { by: ann }), "Closed by Ann");
}

#[test]
fn earlier_pages_merge_in_seq_order_and_say_when_more_exist() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(CONV, 5, Some(ME)));
    model.history(
        CONV,
        &[message(CONV, 4, Author::Visitor(VISITOR), "d"), message(CONV, 5, Author::Visitor(VISITOR), "e")],
    );
    assert!(model.conversation(CONV).unwrap().has_earlier());
    model.history(
        CONV,
        &[
            message(CONV, 1, Author::Visitor(VISITOR), "a"),
            message(CONV, 2, Author::Agent(ME), "b"),
            message(CONV, 3, Author::Visitor(VISITOR), "c"),
        ],
    );
    model.message(&message(CONV, 5, Author::Visitor(VISITOR), "e"));
    assert_eq!(texts(&model, CONV), ["a", "b", "c", "d", "e"]);
    let conversation = model.conversation(CONV).unwrap();
    assert!(!conversation.has_earlier());
    // c, d and e are one run: only e shows its time.
    assert!(!conversation.continued(LineKey::Seq(Seq(2))));
    assert!(conversation.continued(LineKey::Seq(Seq(3))));
    assert!(!conversation.continued(LineKey::Seq(Seq(5))));
}

#[test]
fn news_is_a_live_visitor_message_off_screen_in_my_chats_or_the_queue() {
    let mut model = Model::new(ME, true);
    model.welcome(Timestamp(1_002));
    model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
    model.conversation_update(&update(CONV, 5, None));
    // History from before the console came up is not news.
    assert_eq!(model.message(&message(CONV, 1, Author::Visitor(VISITOR), "old")), None);
    let news = model.message(&message(CONV, 2, Author::Visitor(VISITOR), "new")).unwrap();
    assert_eq!(news.title, "New message from Visitor #3");
    // On screen: no news.
    model.select(CONV);
    assert_eq!(model.message(&message(CONV, 3, Author::Visitor(VISITOR), "seen")), None);
    // Someone else's chat: not this agent's news.
    model.conversation_update(&update(ConversationId(9), 5, Some(OTHER)));
    assert_eq!(model.message(&message(ConversationId(9), 4, Author::Visitor(VISITOR), "x")), None);
}

#[test]
fn tabs_keep_several_chats_and_drop_the_stalest() {
    let mut model = Model::new(ME, true);
    for id in 1..=(MAX_TABS as u64 + 1) {
        model.conversation_update(&update(ConversationId(id), id, Some(OTHER)));
        model.select(ConversationId(id));
    }
    assert_eq!(model.tabs().len(), MAX_TABS);
    assert!(!model.tabs().contains(&ConversationId(1)));
    model.close_tab(ConversationId(MAX_TABS as u64 + 1));
    assert_eq!(model.selected(), Some(ConversationId(MAX_TABS as u64)));
}

#[test]
fn typing_runs_out_and_a_message_ends_it() {
    let mut model = Model::new(ME, true);
    model.conversation_update(&update(CONV, 5, Some(ME)));
    let notice =
        TypingNotice { conversation: CONV, by: Author::Visitor(VISITOR), active: true, draft: Some("hel".into()) };
    model.typing(&notice, Millis(100));
    assert_eq!(model.typing_until(), Some(Millis(100 + TYPING_TIMEOUT_MS)));
    model.expire_typing(Millis(200));
    assert!(model.conversation(CONV).unwrap().typing().is_some());
    model.message(&message(CONV, 1, Author::Visitor(VISITOR), "hello"));
    assert!(model.conversation(CONV).unwrap().typing().is_none());
    model.typing(&notice, Millis(300));
    model.expire_typing(Millis(300 + TYPING_TIMEOUT_MS));
    assert_eq!(model.typing_until(), None);
}

#[test]
fn the_banner_says_reconnecting_only_after_a_live_link() {
    let mut model = Model::new(ME, true);
    model.link(LinkState::Connecting);
    assert_eq!(model.banner(), Some("Connecting…"));
    model.link(LinkState::Live);
    assert_eq!(model.banner(), None);
    model.link(LinkState::Waiting { attempt: 1, retry_at: Millis(5) });
    assert_eq!(model.banner(), Some("Reconnecting…"));
}

fn summary(id: u64, at: u64, assignee: Option<AgentId>) -> crate::api::ConversationSummary {
    crate::api::ConversationSummary {
        id: ConversationId(id),
        visitor: VISITOR,
        status: "open".into(),
        last_seq: Seq(1),
        updated_at: Timestamp(at),
        assignee,
        waiting_since: assignee.is_none().then_some(Timestamp(at)),
        visitor_name: None,
        last_message: None,
    }
}

#[test]
fn older_open_conversations_page_in_past_the_oldest_listed() {
    let mut model = Model::new(ME, true);
    // A full first listing, ids 101..=200 active at 1101..=1200.
    for id in 101..=200 {
        model.conversation_update(&update(ConversationId(id), 1_000 + id, None));
    }
    assert!(model.open_more(), "a full listing may hide older ones");
    assert_eq!(model.open_before(), Some((Timestamp(1_101), ConversationId(101))));
    // A live one since is newer: the next page still starts there.
    model.conversation_update(&update(ConversationId(300), 5_000, Some(ME)));
    assert_eq!(model.open_before(), Some((Timestamp(1_101), ConversationId(101))));

    // The page brings older ones, and one that changed live meanwhile
    // (id 60, now assigned to me): the live update wins.
    model.conversation_update(&update(ConversationId(60), 6_000, Some(ME)));
    let page: Vec<_> = (1..=100).rev().map(|id| summary(id, 1_000 + id, None)).collect();
    model.open_page(&page, 100);
    assert_eq!(model.count(Folder::All), Some(201));
    assert_eq!(model.conversation(ConversationId(60)).unwrap().assignee, Some(ME));
    assert_eq!(model.list(Folder::Mine), [ConversationId(60), ConversationId(300)]);
    // The queue puts the longest waiting first, paged in or not.
    assert_eq!(model.list(Folder::Unassigned)[0], ConversationId(1));
    assert_eq!(model.open_before(), Some((Timestamp(1_001), ConversationId(1))));
    assert!(model.open_more(), "a full page may be followed by more");
    model.open_page(&[], 100);
    assert!(!model.open_more());
}

#[test]
fn a_short_listing_offers_no_older_open_ones() {
    let mut model = Model::new(ME, true);
    for id in 1..=99 {
        model.conversation_update(&update(ConversationId(id), id, None));
        // Repeats of one conversation count once.
        model.conversation_update(&update(ConversationId(1), 200 + id, None));
    }
    assert!(!model.open_more());
}

#[test]
fn a_paged_in_conversation_previews_the_newest_message_its_page_gave_until_a_newer_one_comes() {
    let mut model = Model::new(ME, true);
    let id = ConversationId(5);
    let mut listed = summary(5, 1_004, None);
    listed.last_seq = Seq(4);
    listed.last_message = Some(message(id, 4, Author::Visitor(VISITOR), "where is my order"));
    model.open_page(&[listed.clone()], 100);
    let preview = |model: &Model| model.conversation(id).unwrap().last_message().map(|l| l.text.clone());
    assert_eq!(preview(&model), Some("where is my order".into()), "no lines loaded yet");

    // Loading older history does not replace the newer preview.
    model.history(id, &[message(id, 1, Author::Visitor(VISITOR), "hello")]);
    assert_eq!(preview(&model), Some("where is my order".into()));
    // An older page of the list again changes nothing; a live message does.
    listed.last_message = Some(message(id, 3, Author::Visitor(VISITOR), "older"));
    model.open_page(&[listed], 100);
    assert_eq!(preview(&model), Some("where is my order".into()));
    model.message(&message(id, 5, Author::Agent(ME), "on its way"));
    assert_eq!(preview(&model), Some("on its way".into()));
}
