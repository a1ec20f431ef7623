-- Email follow-up (relay/src/follow_up): how long a site waits before it
-- mails a visitor the replies they missed, which visitors asked for no
-- more of those mails, and how far each conversation has been mailed.
-- Sites without a row wait the default (relay/src/store/follow_up.rs).
CREATE TABLE follow_up_settings (
    site_id          INTEGER PRIMARY KEY REFERENCES sites (id),
    batch_delay_secs INTEGER NOT NULL DEFAULT 120
) STRICT;

-- A visitor that followed a mail's unsubscribe link.
CREATE TABLE follow_up_unsubscribed (
    site_id          INTEGER NOT NULL REFERENCES sites (id),
    visitor_id       INTEGER NOT NULL,
    unsubscribed_at  INTEGER NOT NULL,
    PRIMARY KEY (site_id, visitor_id)
) STRICT;

-- The highest seq of a conversation that a follow-up mail has carried, so
-- the next mail carries only replies after it.
CREATE TABLE follow_up_mailed (
    site_id          INTEGER NOT NULL REFERENCES sites (id),
    conversation_id  INTEGER NOT NULL,
    mailed_through   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, conversation_id)
) STRICT;
