-- 0002_attempts: every attempt of a job keeps its log and an entry in the
-- job's attempt history; cancel requests are stored with the job.

-- When a user asked to cancel the job while an agent ran it (NULL: never).
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER;

-- One row per claim of a job. agent keeps the agent's name at claim time, so
-- the history stays readable after the agent is deleted. outcome is '' while
-- the attempt runs, then the job's result (the attempt completed the job) or
-- agent_lost / error (an infrastructure failure ended it).
CREATE TABLE job_attempts (
	job_id   INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	attempt  INTEGER NOT NULL,
	agent_id INTEGER REFERENCES agents (id) ON DELETE SET NULL,
	agent    TEXT    NOT NULL DEFAULT '',
	assigned INTEGER NOT NULL,
	started  INTEGER,
	finished INTEGER,
	outcome  TEXT    NOT NULL DEFAULT '',
	message  TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (job_id, attempt)
) STRICT;
CREATE INDEX job_attempts_agent ON job_attempts (agent_id);

-- The history of jobs claimed before this migration: their current attempt
-- (earlier attempts were not recorded).
INSERT INTO job_attempts (job_id, attempt, agent_id, agent, assigned, started, finished, outcome, message)
	SELECT j.id, j.attempt, j.agent_id, coalesce(a.name, ''), coalesce(j.assigned, j.created), j.started,
		j.finished, j.result, j.message
	FROM jobs j LEFT JOIN agents a ON a.id = j.agent_id
	WHERE j.attempt > 0 AND j.state <> 'queued';

-- Log chunks are keyed by attempt too. The chunks stored so far belong to the
-- job's current attempt: requeues deleted the older ones.
CREATE TABLE log_chunks_v2 (
	job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	step    INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	data    BLOB    NOT NULL,
	PRIMARY KEY (job_id, attempt, step, seq)
) STRICT;
INSERT INTO log_chunks_v2 (job_id, attempt, step, seq, data)
	SELECT c.job_id, max(j.attempt, 1), c.step, c.seq, c.data
	FROM log_chunks c JOIN jobs j ON j.id = c.job_id;
DROP TABLE log_chunks;
ALTER TABLE log_chunks_v2 RENAME TO log_chunks;
