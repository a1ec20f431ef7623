-- Signed identity tokens and identity secret rotation.

-- After a rotation the previous secret still verifies until
-- `previous_until` (seconds since 1970), so pages holding a token made
-- with it keep working while the site's backend switches over.
ALTER TABLE site_secrets ADD COLUMN previous_secret TEXT;
ALTER TABLE site_secrets ADD COLUMN previous_until INTEGER;

-- 1 when name and email were signed with the user id (a signed token);
-- a plain hash verifies only the user id, and leaves this 0.
ALTER TABLE visitor_profiles ADD COLUMN profile_signed INTEGER NOT NULL DEFAULT 0 CHECK (profile_signed IN (0, 1));
