-- An agent's email is unique per site, not across the deployment: one
-- person may work for several sites, with one agent (and password) on
-- each, and an admin creating an agent learns nothing of other sites'
-- agents. Login looks agents up by email alone, hence the second index.
DROP INDEX agents_email_unique;
CREATE UNIQUE INDEX agents_email_unique ON agents (site_id, lower(email));
CREATE INDEX agents_by_email ON agents (lower(email));
