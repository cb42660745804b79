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

-- stages_revision counts the writes to stages (apply, update, delete, also
-- cascaded ones), so the planner notices every change, even two within one
-- microsecond. It is derived state: kkd db copy does not copy it.
CREATE TABLE stages_revision (
	id  integer PRIMARY KEY CHECK (id = 1),
	rev bigint  NOT NULL
);
INSERT INTO stages_revision (id, rev) VALUES (1, 0);
CREATE FUNCTION stages_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE stages_revision SET rev = rev + 1 WHERE id = 1;
	RETURN NULL;
END;
$$;
CREATE TRIGGER stages_revision_bump AFTER INSERT OR UPDATE OR DELETE ON stages
	FOR EACH STATEMENT EXECUTE FUNCTION stages_revision_bump();
