-- A site's business hours (see `relay/src/hours`). A site without a row
-- has never set hours and is always open, as before this table existed.
-- `calendar` is the JSON of `hours::Calendar` (zone, weekly intervals,
-- dated exceptions), kept even while `enabled` is off so an admin can
-- switch hours off and on again without retyping them.
-- `offline_form_only`: out of hours the widget offers the offline form
-- instead of the chat.
CREATE TABLE site_hours (
    site_id           INTEGER PRIMARY KEY REFERENCES sites (id),
    enabled           INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    calendar          TEXT NOT NULL,
    offline_form_only INTEGER NOT NULL DEFAULT 0 CHECK (offline_form_only IN (0, 1)),
    updated_at        INTEGER NOT NULL
) STRICT;
