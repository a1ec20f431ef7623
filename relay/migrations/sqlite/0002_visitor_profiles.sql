-- What the widget reports about its visitor, and each site's identity
-- secret for signed visitor identity (HMAC-SHA256 of the user id).

-- Created lazily, the first time a site's secret is needed, so sites made
-- before this migration get one too.
CREATE TABLE site_secrets (
    site_id         INTEGER PRIMARY KEY REFERENCES sites (id),
    identity_secret TEXT    NOT NULL
) STRICT;

-- One row per visitor that reported anything. `attributes` is a JSON
-- object of strings. `verified` is 1 only when the identity hash matched.
CREATE TABLE visitor_profiles (
    visitor_id    INTEGER PRIMARY KEY REFERENCES visitors (id),
    user_id       TEXT,
    name          TEXT,
    email         TEXT,
    verified      INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    attributes    TEXT    NOT NULL DEFAULT '{}',
    page_url      TEXT,
    page_title    TEXT,
    page_referrer TEXT,
    page_since    INTEGER
) STRICT;

-- Every page a visitor was seen on, for the agent's visitor panel.
CREATE TABLE visits (
    id         INTEGER PRIMARY KEY,
    visitor_id INTEGER NOT NULL REFERENCES visitors (id),
    url        TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    referrer   TEXT,
    at         INTEGER NOT NULL
) STRICT;

CREATE INDEX visits_by_visitor ON visits (visitor_id, at);
