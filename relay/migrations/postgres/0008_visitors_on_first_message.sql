-- A visitor's rows are made when it first writes, not at its hello: its
-- id and its first conversation's id are handed out before either row
-- exists, so ids come from blocks reserved here rather than from the
-- tables' identity sequences (see relay/src/store/ids.rs). Every insert
-- into visitors and conversations names its id from now on.
CREATE TABLE id_blocks (
    name    TEXT   PRIMARY KEY,
    next_id BIGINT NOT NULL CHECK (next_id > 0)
);

INSERT INTO id_blocks (name, next_id) SELECT 'visitors', COALESCE(MAX(id), 0) + 1 FROM visitors;
INSERT INTO id_blocks (name, next_id) SELECT 'conversations', COALESCE(MAX(id), 0) + 1 FROM conversations;

-- The key a site's visitor tokens are signed with, so a returning visitor
-- that has no row yet can prove who it is. Never rotated: rotating would
-- sign every visitor out of its chat.
CREATE TABLE visitor_token_keys (
    site_id BIGINT PRIMARY KEY REFERENCES sites (id),
    key     TEXT   NOT NULL
);
