-- 0001_init: the initial schema of kkd.
--
-- Conventions: times are INTEGER unix milliseconds UTC (NULL when unset);
-- JSON documents are TEXT; booleans are INTEGER 0/1. Tables are STRICT so a
-- wrongly typed value fails loudly instead of being stored as something else.
-- Deleting a project or a branch removes everything below it through
-- ON DELETE CASCADE (the store opens every connection with foreign_keys=ON).

CREATE TABLE projects (
	id          INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL UNIQUE,
	description TEXT    NOT NULL DEFAULT '',
	created     INTEGER NOT NULL
) STRICT;

CREATE TABLE branches (
	id          INTEGER PRIMARY KEY,
	project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	name        TEXT    NOT NULL,
	repo_branch TEXT    NOT NULL DEFAULT '',
	env         TEXT    NOT NULL DEFAULT '{}',
	created     INTEGER NOT NULL,
	UNIQUE (project_id, name)
) STRICT;

CREATE TABLE stages (
	id        INTEGER PRIMARY KEY,
	branch_id INTEGER NOT NULL REFERENCES branches (id) ON DELETE CASCADE,
	name      TEXT    NOT NULL,
	enabled   INTEGER NOT NULL DEFAULT 1,
	code      TEXT    NOT NULL DEFAULT '',
	schema    TEXT,
	parent    TEXT    NOT NULL DEFAULT '',
	created   INTEGER NOT NULL,
	updated   INTEGER NOT NULL,
	UNIQUE (branch_id, name)
) STRICT;

-- Counters behind flow and run numbers. kind is 'flow' (shared by CI and DEV
-- flows), 'flow_ci', 'flow_dev' (per flow kind, stage '') or 'run' (per stage
-- name). value is the last number handed out.
CREATE TABLE branch_sequences (
	branch_id INTEGER NOT NULL REFERENCES branches (id) ON DELETE CASCADE,
	kind      TEXT    NOT NULL,
	stage     TEXT    NOT NULL DEFAULT '',
	value     INTEGER NOT NULL,
	PRIMARY KEY (branch_id, kind, stage)
) STRICT;

CREATE TABLE flows (
	id           INTEGER PRIMARY KEY,
	branch_id    INTEGER NOT NULL REFERENCES branches (id) ON DELETE CASCADE,
	kind         TEXT    NOT NULL CHECK (kind IN ('ci', 'dev')),
	state        TEXT    NOT NULL CHECK (state IN ('in_progress', 'completed')),
	label        TEXT    NOT NULL DEFAULT '',
	seq          INTEGER NOT NULL,
	kind_seq     INTEGER NOT NULL,
	args         TEXT    NOT NULL DEFAULT '{}',
	trigger_data TEXT,
	created      INTEGER NOT NULL,
	finished     INTEGER
) STRICT;
CREATE INDEX flows_branch ON flows (branch_id, id);

CREATE TABLE runs (
	id         INTEGER PRIMARY KEY,
	flow_id    INTEGER NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
	-- NULL when the run has no stage or the stage was deleted (the run keeps
	-- its stage_name).
	stage_id   INTEGER REFERENCES stages (id) ON DELETE SET NULL,
	stage_name TEXT    NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('manual', 'in_progress', 'completed')),
	reason     TEXT    NOT NULL DEFAULT '',
	label      TEXT    NOT NULL DEFAULT '',
	seq        INTEGER NOT NULL,
	args       TEXT    NOT NULL DEFAULT '{}',
	note       TEXT    NOT NULL DEFAULT '',
	jobs_total INTEGER NOT NULL DEFAULT 0,
	jobs_error INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL,
	started    INTEGER,
	finished   INTEGER
) STRICT;
CREATE INDEX runs_flow ON runs (flow_id, id);
CREATE INDEX runs_stage ON runs (stage_id);

CREATE TABLE agents (
	id              INTEGER PRIMARY KEY,
	uuid            TEXT    NOT NULL UNIQUE,
	name            TEXT    NOT NULL UNIQUE,
	address         TEXT    NOT NULL DEFAULT '',
	authorized      INTEGER NOT NULL DEFAULT 0,
	disabled        INTEGER NOT NULL DEFAULT 0,
	host_info       TEXT    NOT NULL DEFAULT '{}',
	-- The current job; cleared when the job completes, is requeued or is deleted.
	job_id          INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
	last_seen       INTEGER,
	created         INTEGER NOT NULL,
	enroll_hash     TEXT    NOT NULL DEFAULT '',
	credential_hash TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX agents_credential ON agents (credential_hash) WHERE credential_hash <> '';
CREATE INDEX agents_job ON agents (job_id);

CREATE TABLE jobs (
	id           INTEGER PRIMARY KEY,
	run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	-- Denormalised from the run; removed with it.
	flow_id      INTEGER NOT NULL,
	name         TEXT    NOT NULL,
	state        TEXT    NOT NULL CHECK (state IN ('queued', 'assigned', 'running', 'completed')),
	result       TEXT    NOT NULL DEFAULT '',
	message      TEXT    NOT NULL DEFAULT '',
	agents_group TEXT    NOT NULL DEFAULT '',
	system       TEXT    NOT NULL DEFAULT '',
	executor     TEXT    NOT NULL DEFAULT '',
	timeout      INTEGER NOT NULL DEFAULT 0,
	covered      INTEGER NOT NULL DEFAULT 0,
	-- The agent of the current (or last) attempt.
	agent_id     INTEGER REFERENCES agents (id) ON DELETE SET NULL,
	attempt      INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL,
	assigned     INTEGER,
	started      INTEGER,
	finished     INTEGER,
	lease_until  INTEGER
) STRICT;
CREATE INDEX jobs_run ON jobs (run_id, id);
CREATE INDEX jobs_agent ON jobs (agent_id);
-- The queue: run IDs grow with run creation, so (run_id, id) is FIFO order
-- "by run creation, then job ID" and ListQueuedJobs reads it without sorting.
CREATE INDEX jobs_queue ON jobs (run_id, id) WHERE state = 'queued';
-- Jobs that keep their run open, for CompleteRunIfDone.
CREATE INDEX jobs_open ON jobs (run_id) WHERE covered = 0 AND state <> 'completed';
-- Active jobs by lease expiry, for the watchdog.
CREATE INDEX jobs_active ON jobs (lease_until) WHERE state IN ('assigned', 'running');

CREATE TABLE steps (
	job_id    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	idx       INTEGER NOT NULL,
	tool      TEXT    NOT NULL DEFAULT '',
	name      TEXT    NOT NULL DEFAULT '',
	fields    TEXT    NOT NULL DEFAULT '{}',
	status    TEXT    NOT NULL,
	exit_code INTEGER,
	reason    TEXT    NOT NULL DEFAULT '',
	message   TEXT    NOT NULL DEFAULT '',
	started   INTEGER,
	finished  INTEGER,
	PRIMARY KEY (job_id, idx)
) STRICT;

-- Step output as ordered chunks of bytes, never one row per line. A rowid
-- table (not WITHOUT ROWID) because chunks are large.
CREATE TABLE log_chunks (
	job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	step   INTEGER NOT NULL,
	seq    INTEGER NOT NULL,
	data   BLOB    NOT NULL,
	PRIMARY KEY (job_id, step, seq)
) STRICT;

CREATE TABLE groups (
	id      INTEGER PRIMARY KEY,
	name    TEXT    NOT NULL UNIQUE,
	created INTEGER NOT NULL
) STRICT;

CREATE TABLE agent_groups (
	group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	agent_id INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
	PRIMARY KEY (group_id, agent_id)
) STRICT;
CREATE INDEX agent_groups_agent ON agent_groups (agent_id);

-- The built-in group every authorized agent joins.
INSERT INTO groups (name, created) VALUES ('all', CAST(unixepoch('subsec') * 1000 AS INTEGER));

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	name          TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL DEFAULT '',
	admin         INTEGER NOT NULL DEFAULT 0,
	created       INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
	id        INTEGER PRIMARY KEY,
	user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	hash      TEXT    NOT NULL UNIQUE,
	name      TEXT    NOT NULL DEFAULT '',
	created   INTEGER NOT NULL,
	last_used INTEGER
) STRICT;
CREATE INDEX tokens_user ON tokens (user_id);
