-- Every reference from one site's row to another row of a site carries the
-- site, so the database itself refuses a conversation with another site's
-- visitor, assigned to or marked read by another site's agent: each such
-- reference is a foreign key on (site_id, id), and agents and visitors are
-- unique on (site_id, id) to be its target. Migration 0005 of SQLite does
-- the same by rebuilding the tables.
--
-- Rows linked across sites can only be the work of a bug; none are kept: a
-- conversation's assignee or marking agent of another site becomes none
-- (back to the queue). Anything else across sites fails the new keys,
-- which rolls the whole migration back.

ALTER TABLE agents ADD CONSTRAINT agents_site_id_id_key UNIQUE (site_id, id);
ALTER TABLE visitors ADD CONSTRAINT visitors_site_id_id_key UNIQUE (site_id, id);

UPDATE conversations c SET assignee_id = NULL
WHERE assignee_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = c.assignee_id AND a.site_id = c.site_id);
UPDATE conversations c SET agent_marks_by = NULL
WHERE agent_marks_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = c.agent_marks_by AND a.site_id = c.site_id);

ALTER TABLE conversations
    DROP CONSTRAINT conversations_visitor_id_fkey,
    DROP CONSTRAINT conversations_assignee_id_fkey,
    DROP CONSTRAINT conversations_agent_marks_by_fkey,
    ADD CONSTRAINT conversations_visitor_fkey
        FOREIGN KEY (site_id, visitor_id) REFERENCES visitors (site_id, id),
    ADD CONSTRAINT conversations_assignee_fkey
        FOREIGN KEY (site_id, assignee_id) REFERENCES agents (site_id, id),
    ADD CONSTRAINT conversations_agent_marks_by_fkey
        FOREIGN KEY (site_id, agent_marks_by) REFERENCES agents (site_id, id);
