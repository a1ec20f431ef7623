-- Email follow-up (relay/src/follow_up): how long a site waits before it
-- mails a visitor the replies they missed, which visitors asked for no
-- more of those mails, and how far each conversation has been mailed.
-- Sites without a row wait the default (relay/src/store/follow_up.rs).
CREATE TABLE follow_up_settings (
    site_id          BIGINT PRIMARY KEY REFERENCES sites (id),
    batch_delay_secs BIGINT NOT NULL DEFAULT 120
);

-- A visitor that followed a mail's unsubscribe link.
CREATE TABLE follow_up_unsubscribed (
    site_id          BIGINT NOT NULL REFERENCES sites (id),
    visitor_id       BIGINT NOT NULL,
    unsubscribed_at  BIGINT NOT NULL,
    PRIMARY KEY (site_id, visitor_id)
);

-- The highest seq of a conversation that a follow-up mail has carried, so
-- the next mail carries only replies after it.
CREATE TABLE follow_up_mailed (
    site_id          BIGINT NOT NULL REFERENCES sites (id),
    conversation_id  BIGINT NOT NULL,
    mailed_through   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, conversation_id)
);
