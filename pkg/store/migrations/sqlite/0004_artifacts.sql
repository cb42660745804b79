-- 0004_artifacts: records of artifacts (files stored by jobs) and caches
-- (archives saved by the jobs of a branch). Their bytes are blobs in the blob
-- store (kkd --storage), named by blob_key, which is unique per upload. Rows
-- go away with their job or branch (ON DELETE CASCADE); their blobs are left
-- for a retention task.

CREATE TABLE artifacts (
	id           INTEGER PRIMARY KEY,
	job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	-- Denormalised from the job; removed with it.
	run_id       INTEGER NOT NULL,
	flow_id      INTEGER NOT NULL,
	path         TEXT    NOT NULL,
	size         INTEGER NOT NULL,
	sha256       TEXT    NOT NULL,
	public       INTEGER NOT NULL DEFAULT 0,
	report_entry INTEGER NOT NULL DEFAULT 0,
	blob_key     TEXT    NOT NULL,
	created      INTEGER NOT NULL,
	-- A path uploaded again by the job replaces its artifact.
	UNIQUE (job_id, path)
) STRICT;
CREATE INDEX artifacts_run ON artifacts (run_id);
CREATE INDEX artifacts_flow ON artifacts (flow_id);

CREATE TABLE caches (
	branch_id INTEGER NOT NULL REFERENCES branches (id) ON DELETE CASCADE,
	key       TEXT    NOT NULL,
	size      INTEGER NOT NULL,
	sha256    TEXT    NOT NULL,
	blob_key  TEXT    NOT NULL,
	created   INTEGER NOT NULL,
	expires   INTEGER NOT NULL,
	PRIMARY KEY (branch_id, key)
) STRICT;
CREATE INDEX caches_expires ON caches (expires);
