-- Visitors of a site that `kefu-relay import` brought from another server.
-- Their browsers still hold the ids they had there, and a visitor token is
-- a MAC of the old site, visitor and conversation ids under the old
-- server's key; this is how such a visitor proves itself once and is
-- given its ids here (see `relay/src/store/export.rs`). `old_token_key` is
-- NULL when the old site never signed a token: its visitors hold tokens
-- checked against the hash in their row.
CREATE TABLE moved_visitors (
    site_id        BIGINT NOT NULL REFERENCES sites (id),
    old_site_id    BIGINT NOT NULL,
    old_visitor_id BIGINT NOT NULL,
    old_token_key  TEXT,
    visitor_id     BIGINT NOT NULL,
    PRIMARY KEY (site_id, old_site_id, old_visitor_id),
    FOREIGN KEY (site_id, visitor_id) REFERENCES visitors (site_id, id)
);

CREATE INDEX moved_visitors_by_old_id ON moved_visitors (site_id, old_visitor_id);
