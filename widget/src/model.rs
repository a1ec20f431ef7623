//! What the visitor sees, as plain data: the messages with their marks,
//! the link, who can answer, who is typing, what is unread.
//!
//! The connection feeds it the session's events; the components only read
//! it. Nothing here touches the browser, so it is tested on the host.

use std::collections::BTreeMap;

use kefu_protocol::frame::{
    Accepted, Author, Availability, Body, ConversationEvent, ErrorCode, Message, Receipt, ReceiptKind, TypingNotice,
};
use kefu_protocol::ids::{AgentId, ClientMessageId, Seq, Timestamp, VisitorId};
use kefu_protocol::session::{LinkState, Millis};

use crate::i18n::Lang;

/// An agent's typing indicator disappears after this long without news,
/// so a lost "stopped typing" cannot leave it on for good.
pub const TYPING_TIMEOUT_MS: u64 = 6_000;

/// Who wrote a message, from the visitor's side of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Visitor,
    Agent,
    System,
}

impl Sender {
    /// The name the parent page's `message` event uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::Visitor => "visitor",
            Sender::Agent => "agent",
            Sender::System => "system",
        }
    }
}

/// A row's identity for the whole page load. The visitor's own messages
/// keep their client id from "sending" to "read", so their row is never
/// rebuilt; everyone else's are known by seq from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKey {
    Own(ClientMessageId),
    Seq(Seq),
}

/// How far one of the visitor's own messages got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// In the outbox: goes out (again) whenever the link is up.
    Sending,
    /// The relay refused it for good, for this reason.
    Failed(Refusal),
    /// Stored by the relay.
    Sent,
    /// Reached an agent's screen.
    Delivered,
    /// An agent saw it.
    Read,
}

/// One message on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: RowKey,
    pub sender: Sender,
    pub text: String,
    /// Wall-clock time: the relay's once stored, the device's before.
    pub at: Timestamp,
    seq: Option<Seq>,
    failed: Option<Refusal>,
}

/// Why the relay will never store a message, as the visitor is told.
/// (A message over the frame budget is only deferred, never refused.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLong,
    NotAllowed,
    Other,
}

impl Refusal {
    pub fn from_code(code: ErrorCode) -> Refusal {
        match code {
            ErrorCode::BodyTooLarge | ErrorCode::FrameTooLarge => Refusal::TooLong,
            ErrorCode::Forbidden | ErrorCode::Unauthorized => Refusal::NotAllowed,
            _ => Refusal::Other,
        }
    }
}

impl Row {
    /// A stored row as an earlier page load kept it (see [`Model::history`]).
    pub fn kept(key: RowKey, sender: Sender, text: String, at: Timestamp, seq: Seq) -> Row {
        Row { key, sender, text, at, seq: Some(seq), failed: None }
    }

    /// The row's seq once the relay stored it.
    pub fn seq(&self) -> Option<Seq> {
        self.seq
    }
}

/// A message that arrived live (not history replayed on load), for the
/// parent page's `message` event and the unread badge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrived {
    pub sender: Sender,
    pub text: String,
    pub at: Timestamp,
}

/// The chat as the visitor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Stored messages in seq order, then the unsent ones in the order
    /// they were written (the order the outbox sends them in).
    rows: Vec<Row>,
    /// Where each key's row is in `rows`: every row's view looks its row
    /// up on every change, so this keeps a long conversation fast.
    index: BTreeMap<RowKey, usize>,
    visitor: Option<VisitorId>,
    /// How far agents got in the conversation; marks only grow.
    agent_delivered: Seq,
    agent_read: Seq,
    /// How far the visitor has seen the conversation.
    read: Seq,
    /// The last seq of the history shown on load; `None` until the first
    /// replay completes. Messages after it are live.
    history_until: Option<Seq>,
    link: LinkState,
    /// The link was live on this page, or on the earlier one whose
    /// history this page shows: a link down now is "reconnecting".
    was_live: bool,
    unavailable: bool,
    agents_online: Option<u32>,
    /// Out of the site's business hours, and when it opens next if known
    /// (ms since 1970).
    out_of_hours: Option<Option<u64>>,
    typing: Option<(AgentId, Millis)>,
    open: bool,
    visible: bool,
    /// For system lines, which the relay sends as events, not text.
    lang: Lang,
    /// The page said who the visitor is (`setUser`), and with an email.
    identified: bool,
    known_email: bool,
    /// The seq of the "closed" line while the conversation is closed.
    last_close: Option<Seq>,
    /// The close the visitor rated last, and whether it rated any.
    rated_close: Option<Seq>,
    ever_rated: bool,
    /// The visitor's ask for the chat's transcript by mail.
    transcript: TranscriptAsk,
}

/// Where the visitor's ask for its chat by mail stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TranscriptAsk {
    #[default]
    Idle,
    /// Sent; the relay has not answered.
    Asking,
    /// Queued for this address.
    Mailed(String),
    /// The relay knows no address for the visitor.
    NeedsEmail,
    /// One was just sent.
    TooSoon,
    /// Not sent (the link dropped, or the relay refused otherwise).
    Failed,
}

impl Model {
    /// An empty chat. `read` is how far the visitor had seen on an earlier
    /// page load, so old messages do not count as unread again.
    pub fn new(lang: Lang, open: bool, visible: bool, read: Seq) -> Model {
        Model {
            rows: Vec::new(),
            index: BTreeMap::new(),
            visitor: None,
            agent_delivered: Seq::ZERO,
            agent_read: Seq::ZERO,
            read,
            history_until: None,
            link: LinkState::Stopped,
            was_live: false,
            unavailable: false,
            agents_online: None,
            out_of_hours: None,
            typing: None,
            open,
            visible,
            lang,
            identified: false,
            known_email: false,
            transcript: TranscriptAsk::Idle,
            last_close: None,
            rated_close: None,
            ever_rated: false,
        }
    }

    // --- what the session reports -------------------------------------

    /// The relay welcomed `visitor`. A different visitor than before (the
    /// stored one was refused) starts an empty chat; unsent messages stay.
    pub fn welcome(&mut self, visitor: VisitorId) {
        if self.visitor.is_some_and(|known| known != visitor) {
            self.forget_visitor();
        }
        self.visitor = Some(visitor);
    }

    /// The stored identity was refused: whatever was shown belonged to it.
    pub fn forget_visitor(&mut self) {
        self.rows.retain(|row| row.seq.is_none());
        self.reindex();
        self.visitor = None;
        self.agent_delivered = Seq::ZERO;
        self.agent_read = Seq::ZERO;
        self.read = Seq::ZERO;
        self.history_until = None;
        self.typing = None;
    }

    /// Shows the history an earlier page load kept, before the relay
    /// replays it (or while it cannot: offline). Replayed messages then
    /// find their seq on screen and are not shown twice.
    pub fn restore(&mut self, rows: Vec<Row>) {
        for row in rows {
            let Some(seq) = row.seq else { continue };
            if self.position(row.key).is_none() && !self.rows.iter().any(|r| r.seq == Some(seq)) {
                self.insert_stored(row);
                self.was_live = true;
            }
        }
    }

    /// The last `limit` stored rows, oldest first, for the next page load.
    pub fn history(&self, limit: usize) -> &[Row] {
        let stored = self.rows.iter().take_while(|row| row.seq.is_some()).count();
        &self.rows[stored.saturating_sub(limit)..stored]
    }

    /// The visitor wrote a message; it shows as sending until stored.
    pub fn queue(&mut self, client_id: ClientMessageId, text: String, at: Timestamp) {
        let key = RowKey::Own(client_id);
        if self.position(key).is_none() {
            self.rows.push(Row { key, sender: Sender::Visitor, text, at, seq: None, failed: None });
            self.reindex();
        }
    }

    /// The next stored message (the session hands each seq over once, in
    /// order). The visitor's own message replaces its sending row.
    pub fn message(&mut self, message: &Message) -> Option<Arrived> {
        let sender = match message.author {
            Author::Visitor(_) => Sender::Visitor,
            Author::Agent(_) => Sender::Agent,
            Author::System => Sender::System,
        };
        if let Author::Agent(agent) = message.author
            && self.typing.is_some_and(|(typing, _)| typing == agent)
        {
            self.typing = None;
        }
        // Before the check for rows on screen: a reload shows the kept
        // history first, and the replay's events still count.
        if let Body::Event(event) = &message.body {
            self.follow_survey(event, message.seq);
        }
        if self.rows.iter().any(|row| row.seq == Some(message.seq)) {
            return None;
        }
        let text = match &message.body {
            Body::Text(text) => text.clone(),
            // Until the widget shows files itself: their names, as a
            // version 1 client is sent them.
            Body::Files(files) => kefu_protocol::compat::files_as_text(files),
            Body::Event(event) => self.lang.strings().system_line(event),
            // Agents' private notes: the relay never sends them here, and
            // if one came it would still not be shown.
            Body::Note(_) => return None,
        };
        let own = message.client_id.filter(|_| sender == Sender::Visitor).map(RowKey::Own);
        match own.and_then(|key| self.position(key)) {
            Some(index) => {
                let mut row = self.rows.remove(index);
                row.seq = Some(message.seq);
                row.at = message.sent_at;
                row.failed = None;
                self.insert_stored(row);
            }
            None => self.insert_stored(Row {
                key: own.unwrap_or(RowKey::Seq(message.seq)),
                sender,
                text: text.clone(),
                at: message.sent_at,
                seq: Some(message.seq),
                failed: None,
            }),
        }
        self.is_live(message.seq).then_some(Arrived { sender, text, at: message.sent_at })
    }

    /// Where the conversation is for the survey: closed (at which line),
    /// reopened, rated.
    fn follow_survey(&mut self, event: &ConversationEvent, seq: Seq) {
        match event {
            ConversationEvent::Closed { .. } => self.last_close = Some(seq),
            ConversationEvent::Reopened { .. } => self.last_close = None,
            ConversationEvent::Rated { .. } => {
                self.rated_close = self.last_close;
                self.ever_rated = true;
            }
            ConversationEvent::Assigned { .. } | ConversationEvent::Transferred { .. } => {}
        }
    }

    /// The page said who the visitor is; with an email, the widget never
    /// asks for one.
    pub fn identified(&mut self, email: bool) {
        self.identified = true;
        self.known_email |= email;
    }

    /// Whether a message is news rather than history shown on load.
    fn is_live(&self, seq: Seq) -> bool {
        self.history_until.is_some_and(|until| seq > until)
    }

    /// The relay stored one of the visitor's messages. Whichever of this
    /// and the message itself comes first announces it.
    pub fn accepted(&mut self, accepted: &Accepted) -> Option<Arrived> {
        let index = self.position(RowKey::Own(accepted.client_id))?;
        if self.rows[index].seq.is_some() {
            return None; // its message arrived first
        }
        let mut row = self.rows.remove(index);
        row.seq = Some(accepted.seq);
        row.at = accepted.sent_at;
        row.failed = None;
        let arrived = Arrived { sender: row.sender, text: row.text.clone(), at: row.at };
        self.insert_stored(row);
        self.is_live(accepted.seq).then_some(arrived)
    }

    /// The relay will never store one of the visitor's messages.
    pub fn rejected(&mut self, client_id: ClientMessageId, code: ErrorCode) {
        if let Some(index) = self.position(RowKey::Own(client_id))
            && self.rows[index].seq.is_none()
        {
            self.rows[index].failed = Some(Refusal::from_code(code));
        }
    }

    /// Someone's delivered or read mark moved: an agent's sets the marks on
    /// the visitor's messages; the visitor's own (from another tab) clears
    /// the unread count here too.
    pub fn receipt(&mut self, receipt: &Receipt) {
        match (receipt.by, receipt.kind) {
            (Author::Agent(_), ReceiptKind::Delivered) => {
                self.agent_delivered = self.agent_delivered.max(receipt.up_to);
            }
            (Author::Agent(_), ReceiptKind::Read) => {
                self.agent_read = self.agent_read.max(receipt.up_to);
                self.agent_delivered = self.agent_delivered.max(receipt.up_to);
            }
            (Author::Visitor(visitor), ReceiptKind::Read) if Some(visitor) == self.visitor => {
                self.read = self.read.max(receipt.up_to);
            }
            _ => {}
        }
    }

    /// The relay finished replaying the conversation; the first time, all
    /// that came so far is history.
    pub fn replay_complete(&mut self, last_seq: Seq) {
        if self.history_until.is_none() {
            self.history_until = Some(last_seq.max(self.last_seq()));
        }
    }

    /// Someone started or stopped typing; only agents show.
    pub fn typing(&mut self, notice: &TypingNotice, now: Millis) {
        let Author::Agent(agent) = notice.by else {
            return;
        };
        if notice.active {
            self.typing = Some((agent, now.add_ms(TYPING_TIMEOUT_MS)));
        } else if self.typing.is_some_and(|(typing, _)| typing == agent) {
            self.typing = None;
        }
    }

    /// Hides a typing indicator that got no news for too long.
    pub fn expire_typing(&mut self, now: Millis) {
        if self.typing.is_some_and(|(_, until)| until <= now) {
            self.typing = None;
        }
    }

    pub fn availability(&mut self, availability: &Availability) {
        self.agents_online = Some(availability.agents_online);
        self.out_of_hours = availability.out_of_hours.then_some(availability.opens_at.map(|at| at.0));
    }

    pub fn link(&mut self, link: LinkState) {
        self.link = link;
        if link == LinkState::Live {
            self.was_live = true;
            self.unavailable = false;
        }
    }

    /// The relay refused the widget for good (unknown site, banned...).
    pub fn set_unavailable(&mut self) {
        self.unavailable = true;
    }

    // --- what the page reports -----------------------------------------

    /// How far the visitor had read on an earlier page load.
    pub fn raise_read(&mut self, read: Seq) {
        self.read = self.read.max(read);
    }

    pub fn set_open(&mut self, open: bool) {
        self.open = open;
    }

    pub fn set_visible(&mut self, visible: bool) {
        self.visible = visible;
    }

    /// Whether `see` would move the read mark: the panel is open, the page
    /// visible, and something arrived since the visitor last looked.
    pub fn unseen(&self) -> bool {
        self.open && self.visible && self.last_seq() > self.read
    }

    /// Marks everything on screen as seen if the visitor can see it.
    /// Returns whether that moved.
    pub fn see(&mut self) -> bool {
        let unseen = self.unseen();
        if unseen {
            self.read = self.last_seq();
        }
        unseen
    }

    // --- what the components read ------------------------------------

    pub fn keys(&self) -> Vec<RowKey> {
        self.rows.iter().map(|row| row.key).collect()
    }

    pub fn row(&self, key: RowKey) -> Option<&Row> {
        self.position(key).map(|index| &self.rows[index])
    }

    /// The mark on one of the visitor's own messages; `None` for others'.
    pub fn mark(&self, key: RowKey) -> Option<Mark> {
        let row = self.row(key)?;
        if row.sender != Sender::Visitor {
            return None;
        }
        Some(match row.seq {
            None => match row.failed {
                Some(refusal) => Mark::Failed(refusal),
                None => Mark::Sending,
            },
            Some(seq) if self.agent_read >= seq => Mark::Read,
            Some(seq) if self.agent_delivered >= seq => Mark::Delivered,
            Some(_) => Mark::Sent,
        })
    }

    /// The last stored message's seq: the session delivers in order without
    /// gaps, so it is also the conversation's cursor.
    pub fn last_seq(&self) -> Seq {
        self.rows.iter().rev().find_map(|row| row.seq).unwrap_or(Seq::ZERO)
    }

    /// The text of one of the visitor's messages not stored yet.
    pub fn unsent_text(&self, client_id: ClientMessageId) -> Option<String> {
        self.row(RowKey::Own(client_id)).filter(|row| row.seq.is_none()).map(|row| row.text.clone())
    }

    /// How far the visitor has seen.
    pub fn read(&self) -> Seq {
        self.read
    }

    /// Agents' messages the visitor has not seen yet.
    pub fn unread(&self) -> u32 {
        let count = self.rows.iter().filter(|row| row.sender == Sender::Agent && row.seq > Some(self.read)).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// An agent is typing now.
    pub fn agent_typing(&self) -> bool {
        self.typing.is_some()
    }

    /// When the typing indicator expires unless renewed.
    pub fn typing_until(&self) -> Option<Millis> {
        self.typing.map(|(_, until)| until)
    }

    /// No agent can answer now; messages still wait for the first one.
    pub fn nobody_online(&self) -> bool {
        self.agents_online == Some(0)
    }

    /// Out of business hours at `now` with nobody there: `Some`, with when
    /// the site opens if the relay said. Once that time has passed the site
    /// counts as open, before the relay's word arrives.
    pub fn after_hours(&self, now: u64) -> Option<Option<u64>> {
        let opens_at = self.out_of_hours?;
        (self.nobody_online() && opens_at.is_none_or(|at| now < at)).then_some(opens_at)
    }

    /// Nobody can answer now, so the widget asks how to reach the visitor
    /// (`ui::form`). The one place that decides it. Out of hours the relay
    /// counts only agents who said Online after the site closed, so
    /// "nobody online" already covers "out of hours and nobody chose to
    /// answer".
    pub fn nobody_available(&self) -> bool {
        self.nobody_online()
    }

    /// Whether the relay last said the site is out of its business hours.
    pub fn is_out_of_hours(&self) -> bool {
        self.out_of_hours.is_some()
    }

    /// Whether `setUser` said who the visitor is.
    pub fn is_identified(&self) -> bool {
        self.identified
    }

    /// Whether the visitor's email is known (`setUser` with one).
    pub fn knows_email(&self) -> bool {
        self.known_email
    }

    /// Where the visitor's ask for its transcript stands.
    pub fn transcript(&self) -> &TranscriptAsk {
        &self.transcript
    }

    /// The visitor asked for its transcript (`sent`: the link was up to
    /// carry the ask).
    pub fn ask_transcript(&mut self, sent: bool) {
        self.transcript = if sent { TranscriptAsk::Asking } else { TranscriptAsk::Failed };
    }

    /// The relay queued the transcript for `to`.
    pub fn transcript_mailed(&mut self, to: String) {
        self.transcript = TranscriptAsk::Mailed(to);
    }

    /// The relay refused an error with `code`; an ask waiting for its
    /// answer takes it as the answer.
    pub fn transcript_refused(&mut self, code: ErrorCode) {
        if self.transcript == TranscriptAsk::Asking {
            self.transcript = match code {
                ErrorCode::Forbidden => TranscriptAsk::NeedsEmail,
                ErrorCode::RateLimited => TranscriptAsk::TooSoon,
                _ => TranscriptAsk::Failed,
            };
        }
    }

    /// Whether the visitor wrote anything, stored or not.
    pub fn visitor_wrote(&self) -> bool {
        self.rows.iter().any(|row| row.sender == Sender::Visitor)
    }

    /// The close the survey asks about now, if any: the conversation is
    /// closed, that close is not rated, and (unless the site asks again
    /// after a reopen) no earlier one was.
    pub fn survey_due(&self, enabled: bool, ask_again: bool) -> Option<Seq> {
        let close = self.last_close.filter(|_| enabled)?;
        (self.rated_close != Some(close) && (ask_again || !self.ever_rated)).then_some(close)
    }

    /// The link was up and is down now: messages wait in the outbox.
    pub fn reconnecting(&self) -> bool {
        self.was_live && self.link != LinkState::Live && !self.unavailable
    }

    pub fn unavailable(&self) -> bool {
        self.unavailable
    }

    fn position(&self, key: RowKey) -> Option<usize> {
        self.index.get(&key).copied()
    }

    /// Puts a stored row in seq order, before every unsent one. The row
    /// was just taken out of `rows`, or is new.
    fn insert_stored(&mut self, row: Row) {
        let stored = self.rows.iter().take_while(|r| r.seq.is_some()).count();
        let index = self.rows[..stored].partition_point(|r| r.seq < row.seq);
        self.rows.insert(index, row);
        self.reindex();
    }

    fn reindex(&mut self) {
        // Inserting one by one rather than `collect`: that would sort the
        // keys first and link a sort routine into the wasm for it alone.
        self.index.clear();
        for (i, row) in self.rows.iter().enumerate() {
            self.index.insert(row.key, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::frame::TypingNotice;
    use kefu_protocol::ids::{ConversationId, MessageId};

    use super::*;

    const ME: VisitorId = VisitorId(7);
    const AGENT: AgentId = AgentId(3);
    const CONVERSATION: ConversationId = ConversationId(1);

    fn model() -> Model {
        let mut model = Model::new(Lang::En, false, true, Seq::ZERO);
        model.welcome(ME);
        model
    }

    fn message(seq: u64, author: Author, client_id: Option<u128>, text: &str) -> Message {
        Message {
            conversation: CONVERSATION,
            seq: Seq(seq),
            id: MessageId(100 + seq),
            client_id: client_id.map(ClientMessageId),
            author,
            body: Body::Text(text.into()),
            prev: Seq(seq - 1),
            sent_at: Timestamp(1_000 * seq),
        }
    }

    fn accepted(client_id: u128, seq: u64) -> Accepted {
        Accepted {
            conversation: CONVERSATION,
            client_id: ClientMessageId(client_id),
            id: MessageId(100 + seq),
            seq: Seq(seq),
            sent_at: Timestamp(1_000 * seq),
        }
    }

    fn receipt(by: Author, kind: ReceiptKind, up_to: u64) -> Receipt {
        Receipt { conversation: CONVERSATION, by, kind, up_to: Seq(up_to) }
    }

    fn texts(model: &Model) -> Vec<&str> {
        model.rows.iter().map(|row| row.text.as_str()).collect()
    }

    fn own(id: u128) -> RowKey {
        RowKey::Own(ClientMessageId(id))
    }

    #[test]
    fn a_pending_message_becomes_stored_in_place_whichever_answer_comes_first() {
        let mut model = model();
        model.queue(ClientMessageId(1), "first".into(), Timestamp(5));
        model.queue(ClientMessageId(2), "second".into(), Timestamp(6));
        assert_eq!(model.mark(own(1)), Some(Mark::Sending));

        // The accepted frame first, then the message itself.
        model.accepted(&accepted(1, 1));
        assert_eq!(model.message(&message(1, Author::Visitor(ME), Some(1), "first")), None);
        // The message first, then the accepted frame.
        model.message(&message(2, Author::Visitor(ME), Some(2), "second"));
        model.accepted(&accepted(2, 2));

        assert_eq!(model.keys(), [own(1), own(2)]);
        assert_eq!(texts(&model), ["first", "second"]);
        assert_eq!(model.mark(own(1)), Some(Mark::Sent));
        assert_eq!(model.row(own(2)).map(|row| row.at), Some(Timestamp(2_000)));
    }

    #[test]
    fn replayed_history_merges_with_requeued_messages_by_client_id() {
        // After a reload: the outbox was requeued, and the relay had
        // already stored one of its messages before the page went away.
        let mut model = model();
        model.queue(ClientMessageId(9), "typed offline".into(), Timestamp(1));
        model.queue(ClientMessageId(8), "stored before the reload".into(), Timestamp(1));
        model.message(&message(1, Author::Agent(AGENT), None, "hello"));
        model.message(&message(2, Author::Visitor(ME), Some(8), "stored before the reload"));
        model.replay_complete(Seq(2));

        assert_eq!(texts(&model), ["hello", "stored before the reload", "typed offline"]);
        assert_eq!(model.keys(), [RowKey::Seq(Seq(1)), own(8), own(9)]);
        assert_eq!(model.mark(own(8)), Some(Mark::Sent));
        assert_eq!(model.mark(own(9)), Some(Mark::Sending));
        assert_eq!(model.mark(RowKey::Seq(Seq(1))), None);
    }

    #[test]
    fn stored_messages_stay_in_seq_order_before_unsent_ones() {
        let mut model = model();
        model.queue(ClientMessageId(1), "mine".into(), Timestamp(1));
        model.message(&message(1, Author::Agent(AGENT), None, "a1"));
        model.message(&message(2, Author::Agent(AGENT), None, "a2"));
        model.accepted(&accepted(1, 3));
        model.queue(ClientMessageId(2), "later".into(), Timestamp(1));
        model.message(&message(4, Author::System, None, "assigned"));
        assert_eq!(texts(&model), ["a1", "a2", "mine", "assigned", "later"]);
        assert_eq!(model.last_seq(), Seq(4));
    }

    #[test]
    fn system_lines_are_written_in_the_widgets_language_and_notes_never_show() {
        use kefu_protocol::frame::{AgentRef, ConversationEvent};

        let mut model = Model::new(Lang::ZhCn, false, true, Seq::ZERO);
        model.welcome(ME);
        let mut joined = message(1, Author::System, None, "");
        joined.body =
            Body::Event(ConversationEvent::Assigned { to: AgentRef { id: AGENT, name: "Ann".into() }, by: None });
        model.message(&joined);
        let mut note = message(2, Author::Agent(AGENT), None, "");
        note.body = Body::Note("VIP customer, be nice".into());
        assert_eq!(model.message(&note), None);
        assert_eq!(texts(&model), ["Ann 加入了对话"]);
        assert_eq!(model.rows[0].sender, Sender::System);
    }

    #[test]
    fn a_message_seen_twice_shows_once() {
        let mut model = model();
        model.message(&message(1, Author::Agent(AGENT), None, "hi"));
        model.message(&message(1, Author::Agent(AGENT), None, "hi"));
        model.queue(ClientMessageId(5), "x".into(), Timestamp(1));
        model.queue(ClientMessageId(5), "x".into(), Timestamp(1));
        assert_eq!(texts(&model), ["hi", "x"]);
    }

    #[test]
    fn marks_follow_the_agents_receipts() {
        let mut model = model();
        for (id, seq) in [(1, 1), (2, 2), (3, 3)] {
            model.queue(ClientMessageId(id), format!("m{id}"), Timestamp(1));
            model.accepted(&accepted(id, seq));
        }
        model.receipt(&receipt(Author::Agent(AGENT), ReceiptKind::Delivered, 2));
        model.receipt(&receipt(Author::Agent(AGENT), ReceiptKind::Read, 1));
        assert_eq!(model.mark(own(1)), Some(Mark::Read));
        assert_eq!(model.mark(own(2)), Some(Mark::Delivered));
        assert_eq!(model.mark(own(3)), Some(Mark::Sent));

        // Marks never go back; a read mark implies delivery.
        model.receipt(&receipt(Author::Agent(AGENT), ReceiptKind::Delivered, 1));
        model.receipt(&receipt(Author::Agent(AGENT), ReceiptKind::Read, 3));
        assert_eq!(model.mark(own(2)), Some(Mark::Read));
        assert_eq!(model.mark(own(3)), Some(Mark::Read));

        // The visitor's own receipts do not mark its messages.
        let mut other = self::model();
        other.queue(ClientMessageId(1), "m".into(), Timestamp(1));
        other.accepted(&accepted(1, 1));
        other.receipt(&receipt(Author::Visitor(ME), ReceiptKind::Read, 1));
        assert_eq!(other.mark(own(1)), Some(Mark::Sent));
    }

    #[test]
    fn a_refused_message_shows_as_failed() {
        let mut model = model();
        model.queue(ClientMessageId(1), "too long".into(), Timestamp(1));
        model.rejected(ClientMessageId(1), ErrorCode::BodyTooLarge);
        assert_eq!(model.mark(own(1)), Some(Mark::Failed(Refusal::TooLong)));
        model.queue(ClientMessageId(2), "elsewhere".into(), Timestamp(2));
        model.rejected(ClientMessageId(2), ErrorCode::Forbidden);
        assert_eq!(model.mark(own(2)), Some(Mark::Failed(Refusal::NotAllowed)));
    }

    #[test]
    fn unread_counts_agent_messages_until_the_visitor_sees_them() {
        let mut model = model();
        model.message(&message(1, Author::Agent(AGENT), None, "a"));
        model.message(&message(2, Author::Visitor(ME), Some(1), "v"));
        model.message(&message(3, Author::System, None, "s"));
        model.message(&message(4, Author::Agent(AGENT), None, "b"));
        assert_eq!(model.unread(), 2);

        // Closed panel: nothing is seen.
        assert!(!model.see());
        model.set_open(true);
        model.set_visible(false);
        assert!(!model.see());
        assert_eq!(model.unread(), 2);

        model.set_visible(true);
        assert!(model.see());
        assert_eq!((model.unread(), model.read()), (0, Seq(4)));
        assert!(!model.see(), "nothing new to see");

        // Read in another tab of the same visitor.
        model.set_open(false);
        model.message(&message(5, Author::Agent(AGENT), None, "c"));
        assert_eq!(model.unread(), 1);
        model.receipt(&receipt(Author::Visitor(ME), ReceiptKind::Read, 5));
        assert_eq!(model.unread(), 0);
    }

    #[test]
    fn what_was_read_before_a_reload_is_not_unread_again() {
        let mut model = Model::new(Lang::En, false, true, Seq(1));
        model.welcome(ME);
        model.message(&message(1, Author::Agent(AGENT), None, "old"));
        model.message(&message(2, Author::Agent(AGENT), None, "new"));
        assert_eq!(model.unread(), 1);
    }

    #[test]
    fn only_messages_after_the_first_replay_are_live() {
        let mut model = model();
        assert_eq!(model.message(&message(1, Author::Agent(AGENT), None, "history")), None);
        model.replay_complete(Seq(1));
        let live = model.message(&message(2, Author::Agent(AGENT), None, "live"));
        assert_eq!(live, Some(Arrived { sender: Sender::Agent, text: "live".into(), at: Timestamp(2_000) }));

        // A replay after a reconnect brings messages missed meanwhile: new
        // to the visitor, so live too.
        model.replay_complete(Seq(2));
        let missed = model.message(&message(3, Author::Visitor(ME), Some(4), "from another tab"));
        assert_eq!(missed.map(|a| a.sender), Some(Sender::Visitor));
    }

    #[test]
    fn the_visitors_own_message_is_announced_once_whichever_answer_comes_first() {
        let mut model = model();
        model.replay_complete(Seq::ZERO);
        model.queue(ClientMessageId(1), "a".into(), Timestamp(1));
        model.queue(ClientMessageId(2), "b".into(), Timestamp(1));

        let first = model.accepted(&accepted(1, 1));
        assert_eq!(first.map(|a| (a.sender, a.text)), Some((Sender::Visitor, "a".to_owned())));
        assert_eq!(model.message(&message(1, Author::Visitor(ME), Some(1), "a")), None);

        assert!(model.message(&message(2, Author::Visitor(ME), Some(2), "b")).is_some());
        assert_eq!(model.accepted(&accepted(2, 2)), None);
    }

    #[test]
    fn the_agent_typing_indicator_ends_by_notice_message_or_timeout() {
        let notice = |by, active| TypingNotice { conversation: CONVERSATION, by, active, draft: None };
        let mut model = model();

        model.typing(&notice(Author::Visitor(ME), true), Millis(0));
        assert!(!model.agent_typing(), "the visitor's own typing is not shown");

        model.typing(&notice(Author::Agent(AGENT), true), Millis(0));
        assert!(model.agent_typing());
        model.typing(&notice(Author::Agent(AgentId(99)), false), Millis(1));
        assert!(model.agent_typing(), "another agent stopping changes nothing");
        model.typing(&notice(Author::Agent(AGENT), false), Millis(1));
        assert!(!model.agent_typing());

        model.typing(&notice(Author::Agent(AGENT), true), Millis(1_000));
        model.message(&message(1, Author::Agent(AGENT), None, "reply"));
        assert!(!model.agent_typing());

        model.typing(&notice(Author::Agent(AGENT), true), Millis(1_000));
        assert_eq!(model.typing_until(), Some(Millis(7_000)));
        model.expire_typing(Millis(6_999));
        assert!(model.agent_typing());
        model.expire_typing(Millis(7_000));
        assert!(!model.agent_typing());
    }

    #[test]
    fn the_banner_shows_only_after_the_link_was_live() {
        let mut model = model();
        model.link(LinkState::Connecting);
        assert!(!model.reconnecting(), "the first connect is not a reconnect");
        model.link(LinkState::Live);
        assert!(!model.reconnecting());
        model.link(LinkState::Waiting { attempt: 1, retry_at: Millis(500) });
        assert!(model.reconnecting());
        model.link(LinkState::Live);
        assert!(!model.reconnecting());
        model.link(LinkState::Stopped);
        model.set_unavailable();
        assert!(!model.reconnecting());
        assert!(model.unavailable());
    }

    #[test]
    fn kept_history_shows_once_and_the_replay_does_not_repeat_it() {
        let mut earlier = model();
        earlier.queue(ClientMessageId(5), "mine".into(), Timestamp(1));
        earlier.message(&message(1, Author::Visitor(ME), Some(5), "mine"));
        earlier.message(&message(2, Author::Agent(AGENT), None, "theirs"));
        earlier.queue(ClientMessageId(6), "unsent".into(), Timestamp(3));
        let kept: Vec<Row> = earlier.history(10).to_vec();
        assert_eq!(kept.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["mine", "theirs"], "stored rows only");
        assert_eq!(earlier.history(1)[0].text, "theirs", "the newest");

        let mut model = Model::new(Lang::En, true, true, Seq::ZERO);
        model.restore(kept);
        model.queue(ClientMessageId(6), "unsent".into(), Timestamp(3));
        assert_eq!(texts(&model), ["mine", "theirs", "unsent"]);
        model.link(LinkState::Waiting { attempt: 1, retry_at: Millis(5) });
        assert!(model.reconnecting(), "offline with an earlier page's chat");
        model.welcome(ME);
        assert_eq!(model.message(&message(1, Author::Visitor(ME), Some(5), "mine")), None);
        assert_eq!(model.message(&message(2, Author::Agent(AGENT), None, "theirs")), None);
        model.message(&message(3, Author::Visitor(ME), Some(6), "unsent"));
        assert_eq!(texts(&model), ["mine", "theirs", "unsent"]);
        assert_eq!(model.mark(own(6)), Some(Mark::Sent));
    }

    #[test]
    fn availability_says_whether_anyone_can_answer() {
        let mut model = model();
        assert!(!model.nobody_online(), "unknown is not 'nobody'");
        model.availability(&Availability::in_hours(0));
        assert!(model.nobody_online());
        assert_eq!(model.after_hours(0), None, "nobody there is not closed");
        model.availability(&Availability::in_hours(2));
        assert!(!model.nobody_online());
    }

    #[test]
    fn out_of_hours_lasts_until_the_opening_or_someone_answers() {
        let mut model = model();
        let closed = |agents_online, opens_at| Availability { agents_online, out_of_hours: true, opens_at };
        model.availability(&closed(0, Some(Timestamp(1_000))));
        assert_eq!(model.after_hours(999), Some(Some(1_000)));
        assert_eq!(model.after_hours(1_000), None, "open once the time has come");
        model.availability(&closed(0, None));
        assert_eq!(model.after_hours(u64::MAX), Some(None), "closed with no opening in sight");
        model.availability(&closed(1, Some(Timestamp(1_000))));
        assert_eq!(model.after_hours(0), None, "someone chose to answer anyway");
    }

    #[test]
    fn the_survey_asks_once_per_close_and_after_a_reopen_only_if_the_site_says() {
        use kefu_protocol::frame::AgentRef;

        let ann = || AgentRef { id: AGENT, name: "Ann".into() };
        let event = |seq, event| {
            let mut line = message(seq, Author::System, None, "");
            line.body = Body::Event(event);
            line
        };
        let mut model = model();
        model.message(&message(1, Author::Visitor(ME), Some(1), "hi"));
        assert_eq!(model.survey_due(true, false), None, "open");
        model.message(&event(2, ConversationEvent::Closed { by: ann() }));
        assert_eq!(model.survey_due(true, false), Some(Seq(2)));
        assert_eq!(model.survey_due(false, false), None, "the site asks none");
        model.message(&event(3, ConversationEvent::Rated { score: 4, comment: String::new() }));
        assert_eq!(model.survey_due(true, true), None, "rated");
        model.message(&event(4, ConversationEvent::Reopened { by: None }));
        model.message(&event(5, ConversationEvent::Closed { by: ann() }));
        assert_eq!(model.survey_due(true, false), None, "asked once per conversation");
        assert_eq!(model.survey_due(true, true), Some(Seq(5)), "asked again");

        // A reload shows the kept rows, then the replay repeats them.
        let mut reloaded = Model::new(Lang::En, true, true, Seq::ZERO);
        reloaded.restore(model.history(10).to_vec());
        reloaded.welcome(ME);
        for seq in 1..=3 {
            let line = match seq {
                1 => message(1, Author::Visitor(ME), Some(1), "hi"),
                2 => event(2, ConversationEvent::Closed { by: ann() }),
                _ => event(3, ConversationEvent::Rated { score: 4, comment: String::new() }),
            };
            reloaded.message(&line);
            if seq == 2 {
                assert_eq!(reloaded.survey_due(true, false), Some(Seq(2)));
            }
        }
        assert_eq!(reloaded.survey_due(true, false), None);
    }

    #[test]
    fn nobody_available_follows_availability_and_identity_knows_the_email() {
        let mut model = model();
        assert!(!model.nobody_available());
        model.availability(&Availability::in_hours(0));
        assert!(model.nobody_available());
        assert!(!model.knows_email() && !model.is_identified());
        model.identified(false);
        assert!(model.is_identified() && !model.knows_email());
        model.identified(true);
        model.identified(false);
        assert!(model.knows_email(), "a later setUser without one does not forget it");
    }

    #[test]
    fn a_new_visitor_starts_an_empty_chat_but_keeps_unsent_messages() {
        let mut model = model();
        model.message(&message(1, Author::Agent(AGENT), None, "for the old visitor"));
        model.queue(ClientMessageId(1), "unsent".into(), Timestamp(1));
        model.welcome(VisitorId(8));
        assert_eq!(texts(&model), ["unsent"]);
        assert_eq!(model.last_seq(), Seq::ZERO);
    }
}
