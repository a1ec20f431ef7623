-- Working a shift: assignment, capacity, status, private notes, system
-- lines, site settings for the widget, canned replies, and what the
-- visitor panel shows of a visitor's browser.

-- `capacity` is the most open conversations auto-assignment gives the
-- agent. `status` is what the agent chose (presence also needs a console
-- connected). `last_assigned_at` orders the round robin. A deactivated
-- agent cannot log in and is never assigned.
ALTER TABLE agents ADD COLUMN capacity INTEGER NOT NULL DEFAULT 3 CHECK (capacity BETWEEN 0 AND 1000);
ALTER TABLE agents ADD COLUMN status TEXT NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'away'));
ALTER TABLE agents ADD COLUMN active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1));
ALTER TABLE agents ADD COLUMN last_assigned_at INTEGER NOT NULL DEFAULT 0;

-- `assignee_id` is NULL while the conversation waits in the queue.
-- `waiting_since` is when the oldest visitor message no agent answered yet
-- was sent (NULL: nobody waits); the trigger below keeps it.
ALTER TABLE conversations ADD COLUMN assignee_id INTEGER REFERENCES agents (id);
ALTER TABLE conversations ADD COLUMN waiting_since INTEGER;

CREATE INDEX conversations_by_assignee ON conversations (assignee_id) WHERE status = 'open';

-- What kind of body `body` holds: the text of a message or a private note,
-- or a system line as JSON.
ALTER TABLE messages ADD COLUMN body_kind TEXT NOT NULL DEFAULT 'text' CHECK (body_kind IN ('text', 'note', 'event'));

DROP TRIGGER messages_advance_conversation;

-- A visitor's message starts the wait if none is running; an agent's reply
-- (not a note) ends it.
CREATE TRIGGER messages_advance_conversation AFTER INSERT ON messages
BEGIN
    UPDATE conversations
    SET last_seq = NEW.seq,
        updated_at = NEW.created_at,
        waiting_since = CASE
            WHEN NEW.author_kind = 'visitor' THEN coalesce(waiting_since, NEW.created_at)
            WHEN NEW.author_kind = 'agent' AND NEW.body_kind = 'text' THEN NULL
            ELSE waiting_since
        END
    WHERE id = NEW.conversation_id;
END;

-- The widget's look and behaviour, set by an admin. `allowed_origins` is a
-- JSON array of origins ("https://shop.example"); empty allows any.
ALTER TABLE sites ADD COLUMN draft_preview INTEGER NOT NULL DEFAULT 1 CHECK (draft_preview IN (0, 1));
ALTER TABLE sites ADD COLUMN color TEXT NOT NULL DEFAULT '#2563eb';
ALTER TABLE sites ADD COLUMN greeting TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN position TEXT NOT NULL DEFAULT 'right' CHECK (position IN ('right', 'left'));
ALTER TABLE sites ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';

-- `/shortcut` in the composer expands to `text`.
CREATE TABLE canned_replies (
    id         INTEGER PRIMARY KEY,
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    shortcut   TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (site_id, shortcut)
) STRICT;

-- From the visitor's WebSocket upgrade, for the visitor panel.
ALTER TABLE visitors ADD COLUMN user_agent TEXT;
ALTER TABLE visitors ADD COLUMN language TEXT;
