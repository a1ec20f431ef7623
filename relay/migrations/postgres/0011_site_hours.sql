-- A site's business hours (see `relay/src/hours`). A site without a row
-- has never set hours and is always open, as before this table existed.
-- `calendar` is the JSON of `hours::Calendar` (zone, weekly intervals,
-- dated exceptions), kept even while `enabled` is off so an admin can
-- switch hours off and on again without retyping them.
-- `offline_form_only`: out of hours the widget offers the offline form
-- instead of the chat.
CREATE TABLE site_hours (
    site_id           BIGINT PRIMARY KEY REFERENCES sites (id),
    enabled           BOOLEAN NOT NULL DEFAULT FALSE,
    calendar          TEXT NOT NULL,
    offline_form_only BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at        BIGINT NOT NULL
);
