-- 0008_planner: the planner's state of each time or repository trigger of a
-- stage (kind interval, date, cron or repo), so that the replica that leads
-- next continues where the last one stopped. Times are Unix milliseconds.
-- last_fired is the scheduled instant of the last fire (NULL: never); the
-- planner claims a fire with a conditional update on it before it starts a
-- run, so one scheduled instant fires once. repo holds the last commits seen.
CREATE TABLE stage_triggers (
	stage_id   INTEGER NOT NULL REFERENCES stages (id) ON DELETE CASCADE,
	kind       TEXT    NOT NULL,
	rule       TEXT    NOT NULL,
	since      INTEGER NOT NULL,
	last_fired INTEGER,
	repo       TEXT    NOT NULL DEFAULT '',
	checked    INTEGER,
	PRIMARY KEY (stage_id, kind)
) STRICT;
