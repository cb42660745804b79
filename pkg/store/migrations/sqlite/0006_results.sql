-- 0006_results: test results, issues and their history analysis; the JSON
-- documents of the data tool's scopes.

-- Test cases are kept per branch, by name: the history of a test is the
-- results of its test case.
CREATE TABLE test_cases (
	id        INTEGER PRIMARY KEY,
	branch_id INTEGER NOT NULL REFERENCES branches (id) ON DELETE CASCADE,
	name      TEXT    NOT NULL,
	UNIQUE (branch_id, name)
) STRICT;

-- One result per (job, test case): a later result of the same test in the
-- job replaces the earlier one (not-run pre-registration). attempt is the
-- job attempt that stored it; a new attempt drops the older rows. flow_id is
-- the job's, for the history lookups by flow order.
CREATE TABLE test_results (
	id           INTEGER PRIMARY KEY,
	job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	test_case_id INTEGER NOT NULL REFERENCES test_cases (id) ON DELETE CASCADE,
	flow_id      INTEGER NOT NULL,
	attempt      INTEGER NOT NULL,
	step         INTEGER NOT NULL,
	status       TEXT    NOT NULL CHECK (status IN ('not-run', 'passed', 'failed', 'error', 'disabled', 'unstable')),
	message      TEXT    NOT NULL DEFAULT '',
	cmd          TEXT    NOT NULL DEFAULT '',
	duration     REAL    NOT NULL DEFAULT 0,
	vals         TEXT    NOT NULL DEFAULT '{}',
	change       TEXT    NOT NULL DEFAULT '' CHECK (change IN ('', 'new', 'fix', 'regr', 'no-change')),
	instability  INTEGER NOT NULL DEFAULT 0,
	age          INTEGER NOT NULL DEFAULT 0,
	relevancy    INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL,
	UNIQUE (job_id, test_case_id)
) STRICT;
-- History of a test by flow order (CIHistory, CIBaseline, TestHistory).
CREATE INDEX test_results_history ON test_results (test_case_id, flow_id);

-- Linter findings of a job. An identical finding is stored once.
CREATE TABLE issues (
	id      INTEGER PRIMARY KEY,
	job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	path    TEXT    NOT NULL,
	line    INTEGER NOT NULL,
	col     INTEGER NOT NULL DEFAULT 0,
	type    TEXT    NOT NULL,
	symbol  TEXT    NOT NULL DEFAULT '',
	message TEXT    NOT NULL DEFAULT '',
	age     INTEGER NOT NULL DEFAULT 0,
	UNIQUE (job_id, path, line, col, type, symbol, message)
) STRICT;

-- Jobs whose results and issues are analysed (a row per job, once).
CREATE TABLE job_analysis (
	job_id   INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
	analyzed INTEGER NOT NULL
) STRICT;

-- The previous job of the same name, group and system (issue history).
CREATE INDEX jobs_history ON jobs (name, agents_group, system, flow_id);
-- Runs of a stage by flow, for the analysis order of CI runs.
CREATE INDEX runs_stage_name ON runs (stage_name, flow_id);

-- The data tool's JSON document of a scope. Exactly the owner column of the
-- scope is set, so deleting a flow, branch or project deletes its documents.
CREATE TABLE data_docs (
	scope      TEXT    NOT NULL CHECK (scope IN ('flow', 'branch', 'branch-ci', 'branch-dev', 'project')),
	owner_id   INTEGER NOT NULL,
	flow_id    INTEGER REFERENCES flows (id) ON DELETE CASCADE,
	branch_id  INTEGER REFERENCES branches (id) ON DELETE CASCADE,
	project_id INTEGER REFERENCES projects (id) ON DELETE CASCADE,
	doc        TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	updated    INTEGER NOT NULL,
	PRIMARY KEY (scope, owner_id),
	CHECK (owner_id = coalesce(flow_id, branch_id, project_id)),
	CHECK ((flow_id IS NOT NULL) + (branch_id IS NOT NULL) + (project_id IS NOT NULL) = 1)
) STRICT;
CREATE INDEX data_docs_flow ON data_docs (flow_id) WHERE flow_id IS NOT NULL;
CREATE INDEX data_docs_branch ON data_docs (branch_id) WHERE branch_id IS NOT NULL;
CREATE INDEX data_docs_project ON data_docs (project_id) WHERE project_id IS NOT NULL;
