-- The deployment's owners: people (by login email) above every site's
-- admins, who see every site, create sites and step into any of them.
-- A person, not an agent row: the owner's agent rows on several sites
-- share the email. Emails are kept as lower(email), as logins compare.
CREATE TABLE owners (
    email TEXT PRIMARY KEY
) STRICT;

-- An existing deployment's owner is the first site's first admin, who
-- is who the first start made.
INSERT INTO owners (email)
SELECT lower(email) FROM agents WHERE role = 'admin' ORDER BY id LIMIT 1;
