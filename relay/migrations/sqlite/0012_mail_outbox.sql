-- The durable outbox of mail (`relay/src/mail`). A row is queued in the
-- transaction of what caused it, and composed from the store's current
-- state only when it is sent. `job` is the serde JSON of `mail::MailJob`;
-- `kind` repeats its variant for the admins' list. While a row is
-- `sending`, the node that claimed it holds it until `lease_until`; after
-- that another node may claim it again. `attempts` counts claims, and
-- doubles as the claim's fence: a node marks only the claim it made.
-- `recipients`, `subject` and `message_id` are filled when it is composed.
CREATE TABLE mail_outbox (
    id          INTEGER PRIMARY KEY,
    site_id     INTEGER NOT NULL REFERENCES sites (id),
    kind        TEXT    NOT NULL,
    job         TEXT    NOT NULL,
    dedupe_key  TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    not_before  INTEGER NOT NULL,
    lease_until INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  TEXT,
    recipients  TEXT    NOT NULL DEFAULT '',
    subject     TEXT    NOT NULL DEFAULT '',
    message_id  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- One queued mail per cause: a burst of causes with one key makes one
-- mail. A row being sent no longer blocks a new one with its key.
CREATE UNIQUE INDEX mail_outbox_one_queued ON mail_outbox (site_id, dedupe_key) WHERE status = 'queued';
CREATE INDEX mail_outbox_due ON mail_outbox (not_before) WHERE status IN ('queued', 'sending');
CREATE INDEX mail_outbox_by_site ON mail_outbox (site_id, id);

-- Where a site's agent notifications go and how they read. No row: the
-- defaults (the site's agents, no missed-chat mail, Reply-To the relay's
-- --mail-from, English). `notify_to` '' means the site's active agents.
CREATE TABLE site_mail (
    site_id              INTEGER PRIMARY KEY REFERENCES sites (id),
    notify_to            TEXT    NOT NULL DEFAULT '',
    missed_after_minutes INTEGER NOT NULL DEFAULT 0 CHECK (missed_after_minutes >= 0),
    reply_to             TEXT    NOT NULL DEFAULT '',
    language             TEXT    NOT NULL DEFAULT 'en',
    updated_at           INTEGER NOT NULL
) STRICT;
