-- Uploaded files (see relay/src/store/attachments.rs). A row is made once
-- the bytes are stored; `id` is the attachment's 32 hex digits. The
-- message that names a file sets `conversation_id` and `message_id` in
-- the writer's transaction that stores it. What the sender uploaded
-- describes the file: the name it gave, the type sniffed from the bytes,
-- the size counted while streaming, and an image's pixels. Rows never
-- attached are removed after a day, with their bytes.
CREATE TABLE attachments (
    id              TEXT    PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites (id),
    uploader_kind   TEXT    NOT NULL CHECK (uploader_kind IN ('visitor', 'agent')),
    uploader_id     INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    mime            TEXT    NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    width           INTEGER,
    height          INTEGER,
    conversation_id INTEGER REFERENCES conversations (id),
    message_id      INTEGER REFERENCES messages (id),
    created_at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX attachments_unattached ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_by_conversation ON attachments (conversation_id);

-- A message with files is a text (its caption) with the files it names,
-- as the JSON list the wire carries (`FileRef`s).
ALTER TABLE messages ADD COLUMN files TEXT;

-- The largest file a site takes, in bytes (its admin sets it, under the
-- operator's `--attachment-limit-mb`).
ALTER TABLE sites ADD COLUMN max_file_bytes INTEGER NOT NULL DEFAULT 20000000 CHECK (max_file_bytes > 0);
