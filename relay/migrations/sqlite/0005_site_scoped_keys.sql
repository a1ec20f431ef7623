-- Every reference from one site's row to another row of a site carries the
-- site, so the database itself refuses a conversation with another site's
-- visitor, assigned to or marked read by another site's agent: each such
-- reference is a foreign key on (site_id, id), and agents and visitors are
-- unique on (site_id, id) to be its target.
--
-- SQLite cannot add constraints to a table, so agents, visitors and
-- conversations are rebuilt the documented way (sqlite.org/lang_altertable,
-- "making other kinds of table schema changes"): with foreign keys off
-- (the store runs SQLite's migrations so, see `migrate_sqlite`), in one
-- transaction (the migration's), create the new table, copy, drop the old,
-- rename, rebuild indexes and triggers, and check the keys before the
-- commit. With keys on, dropping the old agents would first delete its
-- rows, and with them, by cascade, every agent's sessions.
--
-- Rows linked across sites can only be the work of a bug; the copy keeps
-- none: a conversation's assignee or marking agent of another site becomes
-- none (back to the queue). Anything else across sites fails the check
-- below, which rolls the whole migration back.

-- The email's uniqueness moves from the column to an index, where later
-- migrations can change it without another rebuild.
CREATE TABLE agents_new (
    id               INTEGER PRIMARY KEY,
    site_id          INTEGER NOT NULL REFERENCES sites (id),
    email            TEXT    NOT NULL COLLATE NOCASE,
    name             TEXT    NOT NULL,
    password_hash    TEXT    NOT NULL,
    role             TEXT    NOT NULL CHECK (role IN ('admin', 'agent')),
    created_at       INTEGER NOT NULL,
    capacity         INTEGER NOT NULL DEFAULT 3 CHECK (capacity BETWEEN 0 AND 1000),
    status           TEXT    NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'away')),
    active           INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    last_assigned_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (site_id, id)
) STRICT;

INSERT INTO agents_new
    (id, site_id, email, name, password_hash, role, created_at, capacity, status, active, last_assigned_at)
SELECT id, site_id, email, name, password_hash, role, created_at, capacity, status, active, last_assigned_at
FROM agents;

DROP TABLE agents;
ALTER TABLE agents_new RENAME TO agents;

CREATE UNIQUE INDEX agents_email_unique ON agents (lower(email));

CREATE TABLE visitors_new (
    id           INTEGER PRIMARY KEY,
    site_id      INTEGER NOT NULL REFERENCES sites (id),
    token_hash   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    user_agent   TEXT,
    language     TEXT,
    UNIQUE (site_id, id)
) STRICT;

INSERT INTO visitors_new (id, site_id, token_hash, created_at, last_seen_at, user_agent, language)
SELECT id, site_id, token_hash, created_at, last_seen_at, user_agent, language
FROM visitors;

DROP TABLE visitors;
ALTER TABLE visitors_new RENAME TO visitors;

-- The trigger on messages names conversations; it goes while the table is
-- swapped and comes back unchanged.
DROP TRIGGER messages_advance_conversation;

CREATE TABLE conversations_new (
    id                INTEGER PRIMARY KEY,
    site_id           INTEGER NOT NULL REFERENCES sites (id),
    visitor_id        INTEGER NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('open', 'closed')),
    last_seq          INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    visitor_delivered INTEGER NOT NULL DEFAULT 0 CHECK (visitor_delivered BETWEEN 0 AND last_seq),
    visitor_read      INTEGER NOT NULL DEFAULT 0 CHECK (visitor_read BETWEEN 0 AND last_seq),
    agent_delivered   INTEGER NOT NULL DEFAULT 0 CHECK (agent_delivered BETWEEN 0 AND last_seq),
    agent_read        INTEGER NOT NULL DEFAULT 0 CHECK (agent_read BETWEEN 0 AND last_seq),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    agent_marks_by    INTEGER,
    assignee_id       INTEGER,
    waiting_since     INTEGER,
    FOREIGN KEY (site_id, visitor_id) REFERENCES visitors (site_id, id),
    FOREIGN KEY (site_id, assignee_id) REFERENCES agents (site_id, id),
    FOREIGN KEY (site_id, agent_marks_by) REFERENCES agents (site_id, id)
) STRICT;

INSERT INTO conversations_new
    (id, site_id, visitor_id, status, last_seq, visitor_delivered, visitor_read, agent_delivered, agent_read,
     created_at, updated_at, agent_marks_by, assignee_id, waiting_since)
SELECT c.id, c.site_id, c.visitor_id, c.status, c.last_seq, c.visitor_delivered, c.visitor_read,
       c.agent_delivered, c.agent_read, c.created_at, c.updated_at,
       (SELECT a.id FROM agents a WHERE a.id = c.agent_marks_by AND a.site_id = c.site_id),
       (SELECT a.id FROM agents a WHERE a.id = c.assignee_id AND a.site_id = c.site_id),
       c.waiting_since
FROM conversations c;

DROP TABLE conversations;
ALTER TABLE conversations_new RENAME TO conversations;

CREATE UNIQUE INDEX conversations_one_open_per_visitor
    ON conversations (visitor_id) WHERE status = 'open';
CREATE INDEX conversations_open_by_site
    ON conversations (site_id) WHERE status = 'open';
CREATE INDEX conversations_by_assignee ON conversations (assignee_id) WHERE status = 'open';

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

-- PRAGMA foreign_key_check only lists violations; a CHECK on their count
-- turns any into an error, which fails the migration and rolls it back.
CREATE TEMP TABLE migration_key_check (violations INTEGER NOT NULL CHECK (violations = 0));
INSERT INTO migration_key_check SELECT count(*) FROM pragma_foreign_key_check;
DROP TABLE migration_key_check;
