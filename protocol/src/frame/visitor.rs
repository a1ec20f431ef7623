//! What the widget tells the relay about its visitor, and what agents and
//! visitors learn back: pages, identity, attributes, availability.

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, VisitorId};

/// Visitor -> relay: the visitor is on this page now (sent on load and on
/// every single-page-app navigation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub url: String,
    pub title: String,
    pub referrer: Option<String>,
}

/// Visitor -> relay: the site says who the visitor is. `hash` is
/// HMAC-SHA256 of `user_id` with the site's identity secret, as lowercase
/// hex, computed by the site's backend; the relay marks the visitor
/// verified only if it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identify {
    pub user_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub hash: Option<String>,
}

/// One custom attribute (`setAttributes({plan: "pro"})`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

/// Visitor -> relay: set these attributes (others are kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub set: Vec<Attribute>,
}

/// Relay -> agents of the site (and the visitor itself): what is known of
/// a visitor, sent whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorProfile {
    pub visitor: VisitorId,
    /// The identity hash matched the site's secret.
    pub verified: bool,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub attributes: Vec<Attribute>,
    /// The page the visitor is on, and since when.
    pub page: Option<Visit>,
    pub page_since: Option<Timestamp>,
}

/// Relay -> visitors: whether an agent can answer now. Sent after the
/// welcome and whenever it changes; messages are accepted either way and
/// wait in the queue for the first agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub agents_online: u32,
    /// The site is out of its business hours now (then `agents_online`
    /// counts only agents who chose to answer anyway).
    pub out_of_hours: bool,
    /// Out of hours: when the site opens next, if it does within about a
    /// year; for the widget to say so in the visitor's own time zone.
    pub opens_at: Option<Timestamp>,
}

impl Availability {
    /// Within hours, or a site without any.
    pub fn in_hours(agents_online: u32) -> Availability {
        Availability { agents_online, out_of_hours: false, opens_at: None }
    }
}
