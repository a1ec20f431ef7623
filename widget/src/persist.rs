//! What survives a page reload, in `localStorage` under keys named after
//! the site (and, inside a host page, after that page's origin): the
//! visitor's identity, the outbox, how far the visitor has read, and the
//! last of the history, so that a page opened offline shows the chat.
//!
//! Keys carry the host page's origin because browsers share one storage
//! between frames of the relay under pages of the same site
//! (`blog.shop.example` and `www.shop.example`): without it, any page that
//! framed the widget would come back as the visitor who chatted on
//! another, and hear that chat.
//!
//! The formats are small lines of text rather than JSON, so the widget
//! needs no JSON library. Storage can be missing (blocked third-party
//! storage, private modes); then nothing survives a reload, and nothing
//! else changes.

use kefu_protocol::frame::{Attribute, Body, Identity};
use kefu_protocol::ids::{ClientMessageId, ConversationId, Seq, SiteKey, Timestamp, VisitorId, VisitorToken};

use crate::model::{Row, RowKey, Sender};

/// The visitor as the relay welcomed it, enough to come back as it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVisitor {
    pub visitor: VisitorId,
    pub token: VisitorToken,
    pub conversation: ConversationId,
}

impl StoredVisitor {
    /// The part of a welcome's identity worth keeping; `None` for agents.
    pub fn from_identity(identity: &Identity) -> Option<StoredVisitor> {
        match identity {
            Identity::Visitor { visitor, token, conversation, .. } => {
                Some(StoredVisitor { visitor: *visitor, token: token.clone(), conversation: *conversation })
            }
            Identity::Agent { .. } => None,
        }
    }

    /// `v1 <visitor> <conversation> <token>`: tokens are `[A-Za-z0-9_-]`.
    pub fn encode(&self) -> String {
        format!("v1 {} {} {}", self.visitor.0, self.conversation.0, self.token.as_str())
    }

    pub fn decode(text: &str) -> Option<StoredVisitor> {
        let mut parts = text.split(' ');
        if parts.next()? != "v1" {
            return None;
        }
        let visitor = VisitorId(parts.next()?.parse().ok()?);
        let conversation = ConversationId(parts.next()?.parse().ok()?);
        let token = VisitorToken::new(parts.next()?).ok()?;
        parts.next().is_none().then_some(StoredVisitor { visitor, token, conversation })
    }
}

/// A message not yet acknowledged by the relay. `conversation` is `None`
/// for one written before the relay first named the visitor's
/// conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPending {
    pub client_id: ClientMessageId,
    pub conversation: Option<ConversationId>,
    pub text: String,
}

impl StoredPending {
    pub fn body(&self) -> Body {
        Body::Text(self.text.clone())
    }
}

/// One line per message: `<client id hex> <conversation or -> <text>`,
/// with backslash, newline, carriage return and tab escaped in the text.
pub fn encode_outbox(entries: &[StoredPending]) -> String {
    let mut out = String::new();
    for entry in entries {
        let conversation = entry.conversation.map_or_else(|| "-".to_owned(), |c| c.0.to_string());
        out.push_str(&format!("{:032x} {conversation} ", entry.client_id.0));
        escape_into(&mut out, &entry.text);
        out.push('\n');
    }
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

fn unescape(escaped: &str) -> Option<String> {
    let mut text = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        text.push(match chars.next()? {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '\\' => '\\',
            _ => return None,
        });
    }
    Some(text)
}

/// Most rows of history kept for the next page load: enough to show
/// where the chat was, little enough to write after every message.
pub const HISTORY_ROWS: usize = 100;

/// One line per stored row: `<seq> <v|a|s> <time> <client id hex or -> <text>`
/// (`v` visitor, `a` agent, `s` system; the client id of the visitor's
/// own messages, which keep it as their row's key), the text escaped as in
/// the outbox.
pub fn encode_history(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let Some(seq) = row.seq() else { continue };
        let sender = match row.sender {
            Sender::Visitor => 'v',
            Sender::Agent => 'a',
            Sender::System => 's',
        };
        let own = match row.key {
            RowKey::Own(id) => format!("{:032x}", id.0),
            RowKey::Seq(_) => "-".to_owned(),
        };
        out.push_str(&format!("{} {sender} {} {own} ", seq.0, row.at.0));
        escape_into(&mut out, &row.text);
        out.push('\n');
    }
    out
}

/// Reads what `encode_history` wrote; lines it cannot read are skipped.
pub fn decode_history(text: &str) -> Vec<Row> {
    text.lines().filter_map(decode_row).collect()
}

fn decode_row(line: &str) -> Option<Row> {
    let mut parts = line.splitn(5, ' ');
    let seq = Seq(parts.next()?.parse().ok()?);
    let sender = match parts.next()? {
        "v" => Sender::Visitor,
        "a" => Sender::Agent,
        "s" => Sender::System,
        _ => return None,
    };
    let at = Timestamp(parts.next()?.parse().ok()?);
    let key = match parts.next()? {
        "-" => RowKey::Seq(seq),
        id => RowKey::Own(ClientMessageId(u128::from_str_radix(id, 16).ok()?)),
    };
    Some(Row::kept(key, sender, unescape(parts.next()?)?, at, seq))
}

/// Reads what `encode_outbox` wrote; lines it cannot read are skipped.
pub fn decode_outbox(text: &str) -> Vec<StoredPending> {
    text.lines().filter_map(decode_pending).collect()
}

fn decode_pending(line: &str) -> Option<StoredPending> {
    let (id, rest) = line.split_once(' ')?;
    let (conversation, escaped) = rest.split_once(' ')?;
    let client_id = ClientMessageId(u128::from_str_radix(id, 16).ok()?);
    let conversation = match conversation {
        "-" => None,
        n => Some(ConversationId(n.parse().ok()?)),
    };
    Some(StoredPending { client_id, conversation, text: unescape(escaped)? })
}

/// The outbox to store: this page's unsent messages, plus those another
/// tab of the same visitor stored that this page has not seen settled.
/// Several tabs share one key, and none may drop another's messages.
pub fn merge_outbox(
    stored: Vec<StoredPending>,
    mine: Vec<StoredPending>,
    settled: impl Fn(ClientMessageId) -> bool,
) -> Vec<StoredPending> {
    let mut merged: Vec<StoredPending> = stored
        .into_iter()
        .filter(|entry| !settled(entry.client_id) && !mine.iter().any(|m| m.client_id == entry.client_id))
        .collect();
    merged.extend(mine);
    merged
}

/// Attributes as `key US value RS key US value`: the separators are
/// control characters no form value holds (the relay cuts none either).
pub fn encode_attributes(set: &[Attribute]) -> String {
    let pairs: Vec<String> = set.iter().map(|a| format!("{}\u{1f}{}", a.key, a.value)).collect();
    pairs.join("\u{1e}")
}

pub fn decode_attributes(text: &str) -> Vec<Attribute> {
    text.split('\u{1e}')
        .filter_map(|pair| pair.split_once('\u{1f}'))
        .map(|(key, value)| Attribute { key: key.to_owned(), value: value.to_owned() })
        .collect()
}

/// `localStorage` for one site, or nothing where the browser refuses it.
#[derive(Debug, Clone)]
pub struct Store {
    storage: Option<web_sys::Storage>,
    prefix: String,
}

impl Store {
    /// The storage of `site`'s visitor, under the host page `parent` if
    /// the widget is embedded and talks to one.
    pub fn open(site: &SiteKey, parent: Option<&str>) -> Store {
        // Reading `localStorage` throws where storage is blocked.
        let storage = web_sys::window().and_then(|window| window.local_storage().ok().flatten());
        Store { storage, prefix: prefix(site, parent) }
    }

    pub fn visitor(&self) -> Option<StoredVisitor> {
        StoredVisitor::decode(&self.get("visitor")?)
    }

    pub fn set_visitor(&self, visitor: Option<&StoredVisitor>) {
        match visitor {
            Some(visitor) => self.set("visitor", &visitor.encode()),
            None => self.remove("visitor"),
        }
    }

    /// Makes this browser `visitor` (a mail's resume link): what another
    /// visitor left here (history, read mark) is dropped, as it is not
    /// this visitor's. Its unsent messages that name their conversation
    /// stay (the relay refuses them in any other); those written before it
    /// had one would land in this visitor's, so they go.
    pub fn resume_as(&self, visitor: &StoredVisitor) {
        if self.visitor().as_ref() == Some(visitor) {
            return;
        }
        let outbox: Vec<StoredPending> =
            self.outbox().into_iter().filter(|entry| entry.conversation.is_some()).collect();
        self.set_outbox(&outbox);
        self.set_history(&[]);
        self.remove("read");
        self.set_visitor(Some(visitor));
    }

    pub fn outbox(&self) -> Vec<StoredPending> {
        self.get("outbox").map(|text| decode_outbox(&text)).unwrap_or_default()
    }

    pub fn set_outbox(&self, entries: &[StoredPending]) {
        if entries.is_empty() { self.remove("outbox") } else { self.set("outbox", &encode_outbox(entries)) }
    }

    /// The history the last page kept (see [`HISTORY_ROWS`]).
    pub fn history(&self) -> Vec<Row> {
        self.get("history").map(|text| decode_history(&text)).unwrap_or_default()
    }

    pub fn set_history(&self, rows: &[Row]) {
        if rows.is_empty() { self.remove("history") } else { self.set("history", &encode_history(rows)) }
    }

    pub fn read(&self) -> Seq {
        self.get("read").and_then(|text| text.parse().ok()).map_or(Seq::ZERO, Seq)
    }

    pub fn set_read(&self, read: Seq) {
        self.set("read", &read.0.to_string());
    }

    /// What the visitor gave in the pre-chat form or the offline ask,
    /// sent again on every page until its first message is stored (the
    /// relay holds a new visitor's attributes for one connection only).
    pub fn form_attributes(&self) -> Vec<Attribute> {
        self.get("form").map(|text| decode_attributes(&text)).unwrap_or_default()
    }

    pub fn set_form_attributes(&self, set: &[Attribute]) {
        if set.is_empty() { self.remove("form") } else { self.set("form", &encode_attributes(set)) }
    }

    /// Whether the visitor filled in the pre-chat form (`"prechat"`) or
    /// answered the offline ask (`"contact"`): neither asks twice.
    pub fn answered(&self, form: &str) -> bool {
        self.get(&format!("answered-{form}")).is_some()
    }

    pub fn set_answered(&self, form: &str) {
        self.set(&format!("answered-{form}"), "1");
    }

    fn get(&self, key: &str) -> Option<String> {
        self.storage.as_ref()?.get_item(&format!("{}{key}", self.prefix)).ok().flatten()
    }

    fn set(&self, key: &str, value: &str) {
        if let Some(storage) = &self.storage {
            // A full quota loses persistence, not the message: it is still
            // in the session's outbox.
            let _ = storage.set_item(&format!("{}{key}", self.prefix), value);
        }
    }

    fn remove(&self, key: &str) {
        if let Some(storage) = &self.storage {
            let _ = storage.remove_item(&format!("{}{key}", self.prefix));
        }
    }
}

/// `kefu:<site>:`, or `kefu:<site>@<origin>:` inside a host page.
fn prefix(site: &SiteKey, parent: Option<&str>) -> String {
    match parent {
        Some(origin) => format!("kefu:{}@{origin}:", site.as_str()),
        None => format!("kefu:{}:", site.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: u128, conversation: Option<u64>, text: &str) -> StoredPending {
        StoredPending {
            client_id: ClientMessageId(id),
            conversation: conversation.map(ConversationId),
            text: text.into(),
        }
    }

    #[test]
    fn form_attributes_survive_as_written() {
        let set = vec![
            Attribute { key: "email".into(), value: "a@b.co".into() },
            Attribute { key: "form.note".into(), value: "line one\nline two, with = and ;".into() },
        ];
        assert_eq!(decode_attributes(&encode_attributes(&set)), set);
        assert!(decode_attributes("").is_empty());
    }

    #[test]
    fn each_host_page_has_its_own_visitor() {
        let site = SiteKey::new("demo").unwrap();
        assert_eq!(prefix(&site, None), "kefu:demo:");
        assert_eq!(prefix(&site, Some("https://shop.example")), "kefu:demo@https://shop.example:");
        assert_ne!(prefix(&site, Some("https://blog.shop.example")), prefix(&site, Some("https://shop.example")));
    }

    #[test]
    fn the_visitor_round_trips() {
        let visitor = StoredVisitor {
            visitor: VisitorId(42),
            token: VisitorToken::new("tok_EN-123").unwrap(),
            conversation: ConversationId(9),
        };
        assert_eq!(visitor.encode(), "v1 42 9 tok_EN-123");
        assert_eq!(StoredVisitor::decode(&visitor.encode()), Some(visitor));
        for bad in ["", "v2 42 9 tok", "v1 42 9", "v1 x 9 tok", "v1 42 9 bad!token", "v1 42 9 tok extra"] {
            assert_eq!(StoredVisitor::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_outbox_round_trips_any_text() {
        let entries = vec![
            pending(1, Some(3), "plain"),
            pending(u128::MAX, None, "lines\nand\ttabs\r\nand \\n backslashes\\"),
            pending(2, Some(3), "  spaces, 中文, emoji 👋 "),
            pending(3, Some(3), ""),
        ];
        let text = encode_outbox(&entries);
        assert_eq!(text.lines().count(), 4, "one line per message: {text:?}");
        assert_eq!(decode_outbox(&text), entries);
    }

    #[test]
    fn history_round_trips_and_keeps_own_keys() {
        let rows = vec![
            Row::kept(
                RowKey::Own(ClientMessageId(9)),
                Sender::Visitor,
                "mine\nwith a line".into(),
                Timestamp(5),
                Seq(1),
            ),
            Row::kept(RowKey::Seq(Seq(2)), Sender::Agent, "theirs 中文 👋".into(), Timestamp(6), Seq(2)),
            Row::kept(RowKey::Seq(Seq(3)), Sender::System, "".into(), Timestamp(7), Seq(3)),
        ];
        let text = encode_history(&rows);
        assert_eq!(text.lines().count(), 3, "{text:?}");
        assert_eq!(decode_history(&text), rows);
        assert_eq!(
            decode_history("x a 1 - bad seq\n4 q 1 - bad sender\n5 a 1 - ok\n"),
            [Row::kept(RowKey::Seq(Seq(5)), Sender::Agent, "ok".into(), Timestamp(1), Seq(5))]
        );
    }

    #[test]
    fn unreadable_lines_are_skipped() {
        let text = "zz 1 bad id\n00000000000000000000000000000001 1 ok\n2 x text\n3 1 bad escape \\q\n";
        assert_eq!(decode_outbox(text), [pending(1, Some(1), "ok")]);
    }

    #[test]
    fn merging_keeps_other_tabs_messages_and_drops_settled_ones() {
        let stored =
            vec![pending(1, Some(1), "other tab"), pending(2, Some(1), "settled here"), pending(3, None, "mine")];
        let mine = vec![pending(3, Some(1), "mine"), pending(4, Some(1), "new")];
        let merged = merge_outbox(stored, mine, |id| id == ClientMessageId(2));
        let ids: Vec<u128> = merged.iter().map(|p| p.client_id.0).collect();
        assert_eq!(ids, [1, 3, 4]);
        assert_eq!(merged[1].conversation, Some(ConversationId(1)), "this page's copy wins");
    }
}
