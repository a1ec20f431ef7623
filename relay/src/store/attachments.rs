//! Uploaded files: their rows, which message names them, and who may
//! fetch them. The bytes are not here: `crate::attachments` keeps them.
//!
//! Every call takes the site, and an attachment of another site is
//! treated as one that does not exist.

use kefu_protocol::frame::{Author, FileRef, ImageSize};
use kefu_protocol::ids::{AttachmentId, ConversationId, SiteId, Timestamp, VisitorId};

use super::messages::author_columns;
use super::{Error, Store, Unsigned, int, now, undecodable};

/// A file whose bytes were stored, as the upload found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub id: AttachmentId,
    /// Who uploaded it: only they may name it in a message.
    pub uploader: Author,
    pub name: String,
    /// Sniffed from the bytes.
    pub mime: String,
    pub size: u64,
    pub image: Option<ImageSize>,
}

/// A stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file: FileRef,
    pub uploader: Author,
    /// The conversation of the message that names it; `None` until one does.
    pub conversation: Option<ConversationId>,
    /// That conversation's visitor.
    pub visitor: Option<VisitorId>,
    pub created_at: Timestamp,
}

/// Why a message may not name a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// No such upload on this site, or it was removed.
    Unknown(AttachmentId),
    /// Somebody else uploaded it, or it belongs to another conversation.
    NotYours(AttachmentId),
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    uploader_kind: String,
    uploader_id: Unsigned,
    name: String,
    mime: String,
    size: Unsigned,
    width: Option<Unsigned>,
    height: Option<Unsigned>,
    conversation_id: Option<Unsigned>,
    visitor_id: Option<Unsigned>,
    created_at: Unsigned,
}

const SELECT: &str = "SELECT a.id, a.uploader_kind, a.uploader_id, a.name, a.mime, a.size, a.width, a.height, \
     a.conversation_id, c.visitor_id, a.created_at \
     FROM attachments a LEFT JOIN conversations c ON c.id = a.conversation_id AND c.site_id = a.site_id";

impl TryFrom<Row> for Attachment {
    type Error = sqlx::Error;

    fn try_from(row: Row) -> Result<Attachment, sqlx::Error> {
        let id = row.id.parse().map_err(|_| undecodable("attachment id", &row.id))?;
        let uploader = match row.uploader_kind.as_str() {
            "visitor" => Author::Visitor(VisitorId(row.uploader_id.0)),
            "agent" => Author::Agent(kefu_protocol::ids::AgentId(row.uploader_id.0)),
            other => return Err(undecodable("uploader kind", other)),
        };
        let pixels = |value: Option<Unsigned>| value.map(|v| u32::try_from(v.0).unwrap_or(u32::MAX));
        let image = match (pixels(row.width), pixels(row.height)) {
            (Some(width), Some(height)) => Some(ImageSize { width, height }),
            _ => None,
        };
        Ok(Attachment {
            file: FileRef { id, name: row.name, mime: row.mime, size: row.size.0, image },
            uploader,
            conversation: row.conversation_id.map(|id| ConversationId(id.0)),
            visitor: row.visitor_id.map(|id| VisitorId(id.0)),
            created_at: Timestamp(row.created_at.0),
        })
    }
}

impl Store {
    /// Records an upload whose bytes are stored.
    pub async fn add_attachment(&self, site: SiteId, new: &NewAttachment) -> Result<(), Error> {
        let (kind, uploader) = author_columns(new.uploader);
        let (width, height) = new.image.map_or((None, None), |size| (Some(size.width), Some(size.height)));
        sqlx::query(
            "INSERT INTO attachments (id, site_id, uploader_kind, uploader_id, name, mime, size, width, height, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new.id.to_string())
        .bind(int(site.0))
        .bind(kind)
        .bind(uploader)
        .bind(&new.name)
        .bind(&new.mime)
        .bind(int(new.size))
        .bind(width.map(i64::from))
        .bind(height.map(i64::from))
        .bind(int(now().0))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One of `site`'s uploads.
    pub async fn attachment(&self, site: SiteId, id: AttachmentId) -> Result<Option<Attachment>, Error> {
        let sql = format!("{SELECT} WHERE a.id = $1 AND a.site_id = $2");
        let row: Option<Row> =
            sqlx::query_as(&sql).bind(id.to_string()).bind(int(site.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Attachment::try_from).transpose()?)
    }

    /// The files a message of `sender` in `conversation` names, as the
    /// store has them: each must be the sender's own upload, not yet
    /// in a message or in one of this conversation (a resend names the
    /// files its first copy attached).
    pub async fn files_to_send(
        &self,
        site: SiteId,
        sender: Author,
        conversation: ConversationId,
        files: &[FileRef],
    ) -> Result<Result<Vec<FileRef>, Unusable>, Error> {
        let mut found = Vec::with_capacity(files.len());
        for file in files {
            let Some(stored) = self.attachment(site, file.id).await? else {
                return Ok(Err(Unusable::Unknown(file.id)));
            };
            let elsewhere = stored.conversation.is_some_and(|named_in| named_in != conversation);
            if stored.uploader != sender || elsewhere {
                return Ok(Err(Unusable::NotYours(file.id)));
            }
            found.push(stored.file);
        }
        Ok(Ok(found))
    }

    /// Uploads of any site no message named, made before `cutoff`, up
    /// to `limit`: for the sweeper, which removes their bytes and then
    /// their rows.
    pub async fn unattached_before(&self, cutoff: Timestamp, limit: u32) -> Result<Vec<(SiteId, AttachmentId)>, Error> {
        let rows: Vec<(Unsigned, String)> = sqlx::query_as(
            "SELECT site_id, id FROM attachments WHERE message_id IS NULL AND created_at < $1 \
             ORDER BY created_at LIMIT $2",
        )
        .bind(int(cutoff.0))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(site, id)| {
                let id = id.parse().map_err(|_| undecodable("attachment id", &id))?;
                Ok((SiteId(site.0), id))
            })
            .collect()
    }

    /// Removes one of `site`'s uploads if no message names it; whether
    /// it did.
    pub async fn remove_unattached(&self, site: SiteId, id: AttachmentId) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM attachments WHERE id = $1 AND site_id = $2 AND message_id IS NULL")
            .bind(id.to_string())
            .bind(int(site.0))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many uploads the store holds, and their bytes: for `/metrics`.
    pub async fn attachment_totals(&self) -> Result<(u64, u64), Error> {
        let (count, bytes): (Unsigned, Unsigned) =
            sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments")
                .fetch_one(self.pool())
                .await?;
        Ok((count.0, bytes.0))
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::frame::{Body, Files};
    use kefu_protocol::ids::{ClientMessageId, SiteKey};

    use super::*;
    use crate::store::tests::{TestDb, on_both_backends};
    use crate::store::{NewMessage, Role};

    fn upload(id: u128, uploader: Author) -> NewAttachment {
        NewAttachment {
            id: AttachmentId(id),
            uploader,
            name: format!("file {id}.png"),
            mime: "image/png".into(),
            size: 73,
            image: Some(ImageSize { width: 3, height: 2 }),
        }
    }

    async fn a_file_is_named_by_its_uploader_in_one_conversation_and_swept_if_never_sent(db: TestDb) {
        let store = db.open().await;
        let site = store.create_site(&SiteKey::new("a").unwrap(), "A").await.unwrap().id;
        let other = store.create_site(&SiteKey::new("b").unwrap(), "B").await.unwrap().id;
        let visitor = store.create_visitor(site, "hash").await.unwrap();
        let conversation = store.open_conversation(site, visitor).await.unwrap().id;
        let stranger = store.create_visitor(site, "hash").await.unwrap();
        let strangers = store.open_conversation(site, stranger).await.unwrap().id;
        let agent = store.create_agent(site, "ann@example.com", "Ann", "hash", Role::Agent).await.unwrap().id;
        let (me, them) = (Author::Visitor(visitor), Author::Visitor(stranger));
        store.add_attachment(site, &upload(1, me)).await.unwrap();
        store.add_attachment(site, &upload(2, me)).await.unwrap();
        let named = [FileRef::by_id(AttachmentId(1))];

        assert_eq!(store.attachment(other, AttachmentId(1)).await.unwrap(), None, "another site's");
        let found = store.files_to_send(site, me, conversation, &named).await.unwrap().unwrap();
        assert_eq!((found[0].name.as_str(), found[0].size), ("file 1.png", 73), "as stored");
        let theirs = store.files_to_send(site, them, strangers, &named).await.unwrap();
        assert_eq!(theirs, Err(Unusable::NotYours(AttachmentId(1))));
        let agents = store.files_to_send(site, Author::Agent(agent), conversation, &named).await.unwrap();
        assert_eq!(agents, Err(Unusable::NotYours(AttachmentId(1))), "not even an agent names a visitor's upload");
        let unknown = store.files_to_send(other, me, conversation, &named).await.unwrap();
        assert_eq!(unknown, Err(Unusable::Unknown(AttachmentId(1))));

        let body = Body::Files(Files { caption: "look".into(), files: found });
        let message =
            NewMessage { site, conversation, client_id: Some(ClientMessageId(9)), author: me, body, with: None };
        store.append(message).await.unwrap();
        let sent = store.attachment(site, AttachmentId(1)).await.unwrap().unwrap();
        assert_eq!((sent.conversation, sent.visitor), (Some(conversation), Some(visitor)), "tied to its message");
        // A resend names the file in its own conversation: still fine.
        assert!(store.files_to_send(site, me, conversation, &named).await.unwrap().is_ok());
        // The same visitor's next conversation may not take it along.
        assert_eq!(
            store.files_to_send(site, me, strangers, &named).await.unwrap(),
            Err(Unusable::NotYours(AttachmentId(1)))
        );

        let later = Timestamp(now().0 + 1_000);
        assert_eq!(store.unattached_before(later, 10).await.unwrap(), [(site, AttachmentId(2))], "only the unsent");
        assert!(!store.remove_unattached(site, AttachmentId(1)).await.unwrap(), "a sent file stays");
        assert!(!store.remove_unattached(other, AttachmentId(2)).await.unwrap(), "another site removes nothing");
        assert!(store.remove_unattached(site, AttachmentId(2)).await.unwrap());
        assert!(store.unattached_before(later, 10).await.unwrap().is_empty());
        assert_eq!(store.attachment_totals().await.unwrap(), (1, 73));
    }

    on_both_backends![a_file_is_named_by_its_uploader_in_one_conversation_and_swept_if_never_sent];
}
