-- Kefu's store. Times are milliseconds since the Unix epoch. Ids are SQLite
-- rowids, so they are positive and never reused while the row exists.
-- STRICT tables refuse a value of the wrong type instead of storing it.

CREATE TABLE sites (
    id         INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Email is the login name, unique across the deployment; NOCASE so that
-- "Ann@Example.com" and "ann@example.com" are one agent.
CREATE TABLE agents (
    id            INTEGER PRIMARY KEY,
    site_id       INTEGER NOT NULL REFERENCES sites (id),
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'agent')),
    created_at    INTEGER NOT NULL
) STRICT;

-- Only the SHA-256 of a token is stored: a copy of this file does not let
-- anyone log in.
CREATE TABLE agent_sessions (
    token_hash TEXT    PRIMARY KEY,
    agent_id   INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX agent_sessions_by_expiry ON agent_sessions (expires_at);
CREATE INDEX agent_sessions_by_agent ON agent_sessions (agent_id);

CREATE TABLE visitors (
    id           INTEGER PRIMARY KEY,
    site_id      INTEGER NOT NULL REFERENCES sites (id),
    token_hash   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;

-- `last_seq` is the seq of the newest message: a message is inserted with
-- `last_seq + 1` and the trigger below advances `last_seq` in the same
-- statement, which is what keeps seqs gapless.
-- Receipt marks are kept per side (the visitor, and the site's agents as
-- one team) and can never point past the last message.
CREATE TABLE conversations (
    id                INTEGER PRIMARY KEY,
    site_id           INTEGER NOT NULL REFERENCES sites (id),
    visitor_id        INTEGER NOT NULL REFERENCES visitors (id),
    status            TEXT    NOT NULL CHECK (status IN ('open', 'closed')),
    last_seq          INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    visitor_delivered INTEGER NOT NULL DEFAULT 0 CHECK (visitor_delivered BETWEEN 0 AND last_seq),
    visitor_read      INTEGER NOT NULL DEFAULT 0 CHECK (visitor_read BETWEEN 0 AND last_seq),
    agent_delivered   INTEGER NOT NULL DEFAULT 0 CHECK (agent_delivered BETWEEN 0 AND last_seq),
    agent_read        INTEGER NOT NULL DEFAULT 0 CHECK (agent_read BETWEEN 0 AND last_seq),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

-- At most one open conversation per visitor, even when two connections of
-- the same visitor race to open one.
CREATE UNIQUE INDEX conversations_one_open_per_visitor
    ON conversations (visitor_id) WHERE status = 'open';

CREATE INDEX conversations_open_by_site
    ON conversations (site_id) WHERE status = 'open';

-- `author_id` is 0 for the relay's own (system) messages, so the
-- idempotency key below needs no NULL special case. `client_id` is the
-- sender's u128 in big-endian; NULL means "not idempotent" (SQLite treats
-- NULLs as distinct in UNIQUE). The key includes the author so that one
-- participant can never shadow another's resend by reusing its id.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    seq             INTEGER NOT NULL CHECK (seq > 0),
    author_kind     TEXT    NOT NULL CHECK (author_kind IN ('visitor', 'agent', 'system')),
    author_id       INTEGER NOT NULL CHECK ((author_kind = 'system') = (author_id = 0)),
    client_id       BLOB    CHECK (client_id IS NULL OR length(client_id) = 16),
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, author_kind, author_id, client_id)
) STRICT;

-- Keeps the conversation in step with its newest message, in the statement
-- that inserts it: one statement per message is what lets the writer store
-- hundreds per transaction, and no code path can forget to do it.
CREATE TRIGGER messages_advance_conversation AFTER INSERT ON messages
BEGIN
    UPDATE conversations
    SET last_seq = NEW.seq, updated_at = NEW.created_at
    WHERE id = NEW.conversation_id;
END;
