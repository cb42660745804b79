-- 0003_job_network: the Docker network mode of a docker job's environment
-- ('' for the engine's default).
ALTER TABLE jobs ADD COLUMN network TEXT NOT NULL DEFAULT '';
