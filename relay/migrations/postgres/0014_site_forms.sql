-- The widget's forms of a site (see relay/src/store/forms.rs): the
-- pre-chat form as JSON (fields, consent text, when it shows) and the
-- satisfaction survey's switches. A site without a row has the defaults:
-- no pre-chat form, no survey.
CREATE TABLE site_forms (
    site_id          BIGINT PRIMARY KEY REFERENCES sites (id),
    prechat          TEXT    NOT NULL,
    survey_enabled   BOOLEAN NOT NULL DEFAULT FALSE,
    survey_ask_again BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at       BIGINT NOT NULL
);

-- Visitors' satisfaction ratings, one per close of a conversation: the
-- close is the seq of its "closed" system line, so a second rating of the
-- same close conflicts and is not stored.
CREATE TABLE conversation_ratings (
    site_id         BIGINT NOT NULL REFERENCES sites (id),
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    closed_seq      BIGINT NOT NULL,
    score           BIGINT NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment         TEXT    NOT NULL,
    rated_at        BIGINT NOT NULL,
    PRIMARY KEY (site_id, conversation_id, closed_seq)
);

CREATE INDEX conversation_ratings_by_time ON conversation_ratings (site_id, rated_at);
