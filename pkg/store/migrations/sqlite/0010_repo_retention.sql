-- 0010_repo_retention: stages whose code lives in a git repository, per-branch
-- retention settings, and a mark on jobs whose log retention deleted.
--
-- stages.repo is NULL for a stage applied from a file, else a JSON object
-- (ci.StageRepo): url, branch, path, token secret name, refresh interval and
-- the state of the last refresh (version = commit sha, error, refreshed).
ALTER TABLE stages ADD COLUMN repo TEXT;

-- Retention of the branch's data in days; 0 means the default (docs/retention.md).
ALTER TABLE branches ADD COLUMN keep_flows_days     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE branches ADD COLUMN keep_logs_days      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE branches ADD COLUMN keep_artifacts_days INTEGER NOT NULL DEFAULT 0;

-- 1 once retention deleted the job's log (chunks and archive).
ALTER TABLE jobs ADD COLUMN logs_purged INTEGER NOT NULL DEFAULT 0;

-- Completed flows by age, for retention.
CREATE INDEX flows_finished ON flows (branch_id, finished) WHERE state = 'completed';

-- The blob GC asks which blob keys rows still name.
CREATE INDEX artifacts_blob ON artifacts (blob_key);
CREATE INDEX caches_blob ON caches (blob_key);
