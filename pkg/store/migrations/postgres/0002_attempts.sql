-- 0002_attempts: every attempt of a job keeps its log and an entry in the
-- job's attempt history; cancel requests are stored with the job.

-- When a user asked to cancel the job while an agent ran it (NULL: never).
ALTER TABLE jobs ADD COLUMN cancel_requested timestamptz;

-- One row per claim of a job. agent keeps the agent's name at claim time, so
-- the history stays readable after the agent is deleted. outcome is '' while
-- the attempt runs, then the job's result (the attempt completed the job) or
-- agent_lost / error (an infrastructure failure ended it).
CREATE TABLE job_attempts (
	job_id   bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	attempt  integer     NOT NULL,
	agent_id bigint      REFERENCES agents (id) ON DELETE SET NULL,
	agent    text        NOT NULL DEFAULT '',
	assigned timestamptz NOT NULL,
	started  timestamptz,
	finished timestamptz,
	outcome  text        NOT NULL DEFAULT '',
	message  text        NOT NULL DEFAULT '',
	PRIMARY KEY (job_id, attempt)
);
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
ALTER TABLE log_chunks ADD COLUMN attempt integer;
UPDATE log_chunks c SET attempt = greatest(j.attempt, 1) FROM jobs j WHERE j.id = c.job_id;
ALTER TABLE log_chunks ALTER COLUMN attempt SET NOT NULL;
ALTER TABLE log_chunks DROP CONSTRAINT log_chunks_pkey;
ALTER TABLE log_chunks ADD PRIMARY KEY (job_id, attempt, step, seq);
