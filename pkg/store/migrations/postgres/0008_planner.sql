-- 0008_planner: mirrors the SQLite migration of the same version. The
-- planner's state of each time or repository trigger of a stage (kind
-- interval, date, cron or repo). last_fired is the scheduled instant of the
-- last fire (NULL: never); the planner claims a fire with a conditional
-- update on it before it starts a run, so one scheduled instant fires once.
-- repo holds the last commits seen.
CREATE TABLE stage_triggers (
	stage_id   bigint      NOT NULL REFERENCES stages (id) ON DELETE CASCADE,
	kind       text        COLLATE "C" NOT NULL,
	rule       text        NOT NULL,
	since      timestamptz NOT NULL,
	last_fired timestamptz,
	repo       text        NOT NULL DEFAULT '',
	checked    timestamptz,
	PRIMARY KEY (stage_id, kind)
);
