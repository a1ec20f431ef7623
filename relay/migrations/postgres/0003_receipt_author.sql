-- Which agent last moved the agents' receipt marks, so a client that
-- reconnects can be told "read by agent N up to seq S" again.
ALTER TABLE conversations ADD COLUMN agent_marks_by BIGINT REFERENCES agents (id);
