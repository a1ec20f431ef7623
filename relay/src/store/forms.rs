//! The widget's forms of a site (the pre-chat form, the satisfaction
//! survey's switches) and the ratings visitors give.
//!
//! The form is kept as one JSON column: it is read and written whole, by
//! the admin's editor and the widget, never queried by field. The HTTP
//! layer (`http::forms`) validates it before it gets here.

use kefu_protocol::frame::{Author, Body, ConversationEvent};
use kefu_protocol::ids::{ConversationId, Seq, SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::{Error, Flag, NewMessage, Store, Unsigned, WrittenWith, int, now, undecodable};

/// When the widget shows the pre-chat form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormWhen {
    /// Before every new visitor's first message.
    Always,
    /// Only when nobody can answer (no agent online, out of hours).
    OutOfHours,
    /// Never: the visitor writes straight away.
    #[default]
    Never,
}

/// What a pre-chat field asks for. `Name`, `Email` and `Phone` are the
/// built-in fields, stored as the visitor attributes `name`, `email` and
/// `phone`; the others are the site's own, stored as `form.KEY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FieldKind {
    Name,
    Email,
    Phone,
    Text,
    Number,
    Select { options: Vec<String> },
    Checkbox,
}

/// One field of the pre-chat form.
// Not `deny_unknown_fields`: serde cannot combine it with the flattened
// kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    /// For the site's own fields: lowercase letters, digits and `_`; the
    /// built-in ones use their kind's name.
    pub key: String,
    /// What the visitor reads next to the field.
    pub label: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
}

impl FormField {
    /// The visitor attribute the field's value is stored as: custom keys
    /// are namespaced so a site's field `email` cannot pass for the
    /// visitor's address.
    pub fn attribute(&self) -> String {
        match self.kind {
            FieldKind::Name => "name".into(),
            FieldKind::Email => "email".into(),
            FieldKind::Phone => "phone".into(),
            _ => format!("form.{}", self.key),
        }
    }
}

/// The pre-chat form.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrechatForm {
    #[serde(default)]
    pub when: FormWhen,
    #[serde(default)]
    pub fields: Vec<FormField>,
    /// The site's privacy text; when set, the form ends with a consent
    /// checkbox the visitor must tick (stored as `form.consent`).
    #[serde(default)]
    pub consent: Option<String>,
}

/// The satisfaction survey after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    pub enabled: bool,
    /// Whether a conversation reopened and closed again asks again.
    #[serde(default)]
    pub ask_again: bool,
}

/// A site's forms, as `GET/PUT /api/site/forms` carry them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteForms {
    #[serde(default)]
    pub prechat: PrechatForm,
    #[serde(default)]
    pub survey: Survey,
}

/// A visitor's satisfaction rating of one close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    pub conversation: ConversationId,
    /// The seq of the "closed" line it rates.
    pub closed: Seq,
    /// 1 to 5.
    pub score: u8,
    /// May be empty.
    pub comment: String,
    pub at: Timestamp,
}

/// A conversation's newest close, as [`Store::last_close`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastClose {
    /// The seq of its newest "closed" line; `None` if it never closed.
    pub closed: Option<Seq>,
    /// That close was rated.
    pub closed_rated: bool,
    /// Some close of it was (this one or an earlier one).
    pub any_rated: bool,
}

impl LastClose {
    /// Whether a rating of the newest close would be taken now, in a site
    /// that asks again after a reopen (`ask_again`) or not.
    pub fn awaits_rating(&self, ask_again: bool) -> bool {
        self.closed.is_some() && !self.closed_rated && (ask_again || !self.any_rated)
    }
}

impl NewMessage {
    /// The "rated" system line of `site` that reports `rating`, written
    /// with it in one transaction ([`WrittenWith::Rating`]); its append
    /// fails with [`Error::Conflict`] if that close was rated already
    /// (with `first_only`, any close of the conversation).
    pub fn rated(site: SiteId, rating: Rating, first_only: bool) -> NewMessage {
        NewMessage {
            site,
            conversation: rating.conversation,
            client_id: None,
            author: Author::System,
            body: Body::Event(ConversationEvent::Rated { score: rating.score, comment: rating.comment.clone() }),
            with: Some(Box::new(WrittenWith::Rating { rating, first_only })),
        }
    }
}

#[derive(sqlx::FromRow)]
struct FormsRow {
    prechat: String,
    survey_enabled: Flag,
    survey_ask_again: Flag,
}

#[derive(sqlx::FromRow)]
struct RatingRow {
    conversation_id: Unsigned,
    closed_seq: Unsigned,
    score: Unsigned,
    comment: String,
    rated_at: Unsigned,
}

impl Store {
    /// The forms of `site`; the defaults (no form, no survey) until an
    /// admin saves some.
    pub async fn site_forms(&self, site: SiteId) -> Result<SiteForms, Error> {
        let row: Option<FormsRow> =
            sqlx::query_as("SELECT prechat, survey_enabled, survey_ask_again FROM site_forms WHERE site_id = $1")
                .bind(int(site.0))
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else { return Ok(SiteForms::default()) };
        let prechat = serde_json::from_str(&row.prechat).map_err(|e| undecodable("pre-chat form", e))?;
        Ok(SiteForms {
            prechat,
            survey: Survey { enabled: row.survey_enabled.into(), ask_again: row.survey_ask_again.into() },
        })
    }

    /// Replaces the forms of `site` (validated by the caller).
    /// [`Error::NotFound`] if the site does not exist.
    pub async fn set_site_forms(&self, site: SiteId, forms: &SiteForms) -> Result<(), Error> {
        let prechat = serde_json::to_string(&forms.prechat).unwrap_or_default();
        sqlx::query(
            "INSERT INTO site_forms (site_id, prechat, survey_enabled, survey_ask_again, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site_id) DO UPDATE SET prechat = excluded.prechat, \
             survey_enabled = excluded.survey_enabled, survey_ask_again = excluded.survey_ask_again, \
             updated_at = excluded.updated_at",
        )
        .bind(int(site.0))
        .bind(prechat)
        .bind(forms.survey.enabled)
        .bind(forms.survey.ask_again)
        .bind(int(now().0))
        .execute(self.pool())
        .await
        .map_err(|error| super::constraint(error, "the site's forms"))?;
        Ok(())
    }

    /// The newest "closed" line of a conversation of `site`, and which of
    /// its closes were rated already.
    pub async fn last_close(&self, site: SiteId, conversation: ConversationId) -> Result<LastClose, Error> {
        // System lines are few next to messages: read them and decode here
        // rather than match JSON in SQL.
        let lines: Vec<(Unsigned, String)> = sqlx::query_as(
            "SELECT m.seq, m.body FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.site_id = $1 AND m.conversation_id = $2 AND m.body_kind = 'event' ORDER BY m.seq DESC",
        )
        .bind(int(site.0))
        .bind(int(conversation.0))
        .fetch_all(self.pool())
        .await?;
        let mut closed = None;
        for (seq, body) in lines {
            let event: ConversationEvent = serde_json::from_str(&body).map_err(|e| undecodable("system line", e))?;
            if matches!(event, ConversationEvent::Closed { .. }) {
                closed = Some(Seq(seq.0));
                break;
            }
        }
        let rated: Vec<Unsigned> = sqlx::query_scalar(
            "SELECT closed_seq FROM conversation_ratings WHERE site_id = $1 AND conversation_id = $2",
        )
        .bind(int(site.0))
        .bind(int(conversation.0))
        .fetch_all(self.pool())
        .await?;
        Ok(LastClose {
            closed,
            closed_rated: closed.is_some_and(|closed| rated.iter().any(|seq| seq.0 == closed.0)),
            any_rated: !rated.is_empty(),
        })
    }

    /// Stores a rating of the close at `rating.closed` of a conversation
    /// of `site`, in the writer's transaction of the line that reports it
    /// ([`super::WrittenWith::Rating`]); `false` (and nothing written) if
    /// that close was rated already, or, with `first_only`, if any close
    /// of it was. The unique key makes a second transaction wait for the
    /// first and then write nothing, on either backend.
    pub(super) async fn rate_on(
        connection: &mut AnyConnection,
        site: SiteId,
        rating: &Rating,
        first_only: bool,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO conversation_ratings (site_id, conversation_id, closed_seq, score, comment, rated_at) \
             SELECT c.site_id, c.id, $3, $4, $5, $6 FROM conversations c WHERE c.site_id = $1 AND c.id = $2 \
             AND NOT ($7 AND EXISTS (SELECT 1 FROM conversation_ratings r \
                 WHERE r.site_id = c.site_id AND r.conversation_id = c.id)) \
             ON CONFLICT (site_id, conversation_id, closed_seq) DO NOTHING",
        )
        .bind(int(site.0))
        .bind(int(rating.conversation.0))
        .bind(int(rating.closed.0))
        .bind(i64::from(rating.score))
        .bind(rating.comment.as_str())
        .bind(int(rating.at.0))
        .bind(first_only)
        .execute(connection)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The ratings of `site`'s conversations, oldest first, for reports.
    pub async fn ratings(&self, site: SiteId) -> Result<Vec<Rating>, Error> {
        let rows: Vec<RatingRow> = sqlx::query_as(
            "SELECT conversation_id, closed_seq, score, comment, rated_at FROM conversation_ratings \
             WHERE site_id = $1 ORDER BY rated_at, conversation_id, closed_seq",
        )
        .bind(int(site.0))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Rating {
                    conversation: ConversationId(row.conversation_id.0),
                    closed: Seq(row.closed_seq.0),
                    score: u8::try_from(row.score.0).map_err(|_| undecodable("score", row.score.0))?,
                    comment: row.comment,
                    at: Timestamp(row.rated_at.0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::frame::{AgentRef, Author, Body, ConversationEvent};
    use kefu_protocol::ids::{AgentId, SiteKey};

    use super::*;
    use crate::store::NewMessage;
    use crate::store::tests::{TestDb, on_both_backends};

    fn form() -> SiteForms {
        let mut forms = SiteForms::default();
        forms.prechat.when = FormWhen::Always;
        forms.prechat.consent = Some("We keep it a year.".into());
        forms.prechat.fields = vec![
            FormField { key: "email".into(), label: "Email".into(), kind: FieldKind::Email, required: true },
            FormField {
                key: "plan".into(),
                label: "Plan".into(),
                kind: FieldKind::Select { options: vec!["Free".into(), "Pro".into()] },
                required: true,
            },
        ];
        forms.survey = Survey { enabled: true, ask_again: false };
        forms
    }

    async fn line(store: &Store, site: SiteId, conversation: ConversationId, event: ConversationEvent) -> Seq {
        let line = NewMessage {
            site,
            conversation,
            client_id: None,
            author: Author::System,
            body: Body::Event(event),
            with: None,
        };
        store.append(line).await.unwrap().message.seq
    }

    async fn rated_lines(store: &Store, site: SiteId, conversation: ConversationId) -> usize {
        let lines = store.messages_after(site, conversation, Seq(0), 100).await.unwrap();
        lines.iter().filter(|m| matches!(m.body, Body::Event(ConversationEvent::Rated { .. }))).count()
    }

    /// Rates as the survey does: the "rated" line written with its rating.
    /// `false` if the store refused both.
    async fn rate(store: &Store, site: SiteId, rating: &Rating, first_only: bool) -> bool {
        match store.append(NewMessage::rated(site, rating.clone(), first_only)).await {
            Ok(appended) => appended.fresh,
            Err(Error::Conflict(_) | Error::NotFound) => false,
            Err(error) => panic!("rating: {error}"),
        }
    }

    async fn forms_are_per_site_and_default_to_none(db: TestDb) {
        let store = db.open().await;
        let shop = store.create_site(&SiteKey::new("shop").unwrap(), "Shop").await.unwrap();
        let other = store.create_site(&SiteKey::new("other").unwrap(), "Other").await.unwrap();
        assert_eq!(store.site_forms(shop.id).await.unwrap(), SiteForms::default());
        store.set_site_forms(shop.id, &form()).await.unwrap();
        assert_eq!(store.site_forms(shop.id).await.unwrap(), form());
        assert_eq!(store.site_forms(other.id).await.unwrap(), SiteForms::default(), "the other site's are its own");
        let mut changed = form();
        changed.survey.ask_again = true;
        changed.prechat.fields.pop();
        store.set_site_forms(shop.id, &changed).await.unwrap();
        assert_eq!(store.site_forms(shop.id).await.unwrap(), changed);
        assert!(matches!(store.set_site_forms(SiteId(999), &form()).await, Err(Error::NotFound)));
    }

    async fn a_close_is_rated_once_and_again_only_if_the_site_asks(db: TestDb) {
        let store = db.open().await;
        let site = store.create_site(&SiteKey::new("shop").unwrap(), "Shop").await.unwrap().id;
        let other = store.create_site(&SiteKey::new("other").unwrap(), "Other").await.unwrap().id;
        let visitor = store.create_visitor(site, "hash").await.unwrap();
        let conversation = store.open_conversation(site, visitor).await.unwrap().id;
        let never = LastClose { closed: None, closed_rated: false, any_rated: false };
        assert_eq!(store.last_close(site, conversation).await.unwrap(), never);
        let by = AgentRef { id: AgentId(1), name: "Ann".into() };
        let closed = line(&store, site, conversation, ConversationEvent::Closed { by: by.clone() }).await;
        let unrated = LastClose { closed: Some(closed), ..never };
        assert_eq!(store.last_close(site, conversation).await.unwrap(), unrated);
        assert!(unrated.awaits_rating(false));
        assert_eq!(store.last_close(other, conversation).await.unwrap(), never, "another site sees nothing");

        let rating = |closed, score| Rating { conversation, closed, score, comment: "ok".into(), at: Timestamp(5) };
        assert!(!rate(&store, other, &rating(closed, 4), true).await, "not the other site's");
        assert!(rate(&store, site, &rating(closed, 4), true).await);
        assert!(!rate(&store, site, &rating(closed, 1), false).await, "the same close");
        let rated = store.last_close(site, conversation).await.unwrap();
        assert_eq!(rated, LastClose { closed: Some(closed), closed_rated: true, any_rated: true });
        assert!(!rated.awaits_rating(true));

        line(&store, site, conversation, ConversationEvent::Reopened { by: None }).await;
        let again = line(&store, site, conversation, ConversationEvent::Closed { by }).await;
        let asked_again = store.last_close(site, conversation).await.unwrap();
        assert_eq!(asked_again, LastClose { closed: Some(again), closed_rated: false, any_rated: true });
        assert!(asked_again.awaits_rating(true) && !asked_again.awaits_rating(false));
        assert!(!rate(&store, site, &rating(again, 2), true).await, "one per conversation");
        assert!(rate(&store, site, &rating(again, 2), false).await, "asked again");
        let scores: Vec<(Seq, u8)> = store.ratings(site).await.unwrap().iter().map(|r| (r.closed, r.score)).collect();
        assert_eq!(scores, [(closed, 4), (again, 2)]);
        assert!(store.ratings(other).await.unwrap().is_empty());
        assert_eq!(
            rated_lines(&store, site, conversation).await,
            2,
            "a line for each rating stored, none for those refused"
        );
    }

    /// Many ratings of one close at once, as from several tabs or nodes:
    /// one rating and one line.
    async fn ratings_of_one_close_at_once_store_one_rating_and_one_line(db: TestDb) {
        let store = db.open().await;
        let site = store.create_site(&SiteKey::new("shop").unwrap(), "Shop").await.unwrap().id;
        let visitor = store.create_visitor(site, "hash").await.unwrap();
        let conversation = store.open_conversation(site, visitor).await.unwrap().id;
        let by = AgentRef { id: AgentId(1), name: "Ann".into() };
        let closed = line(&store, site, conversation, ConversationEvent::Closed { by }).await;
        let tries = (1..=5u8).cycle().take(20).map(|score| {
            let store = store.clone();
            let rating = Rating { conversation, closed, score, comment: String::new(), at: Timestamp(5) };
            tokio::spawn(async move { rate(&store, site, &rating, false).await })
        });
        let mut taken = 0;
        for attempt in tries.collect::<Vec<_>>() {
            taken += usize::from(attempt.await.unwrap());
        }
        assert_eq!(taken, 1, "one of the ratings was taken");
        assert_eq!(store.ratings(site).await.unwrap().len(), 1);
        assert_eq!(rated_lines(&store, site, conversation).await, 1, "one rated line");
    }

    on_both_backends![
        forms_are_per_site_and_default_to_none,
        a_close_is_rated_once_and_again_only_if_the_site_asks,
        ratings_of_one_close_at_once_store_one_rating_and_one_line
    ];
}
