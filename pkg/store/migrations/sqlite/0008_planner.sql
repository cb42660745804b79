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

-- stages_revision counts the writes to stages (apply, update, delete, also
-- cascaded ones), so the planner notices every change, even two within one
-- millisecond. It is derived state: kkd db copy does not copy it.
CREATE TABLE stages_revision (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	rev INTEGER NOT NULL
) STRICT;
INSERT INTO stages_revision (id, rev) VALUES (1, 0);
CREATE TRIGGER stages_revision_insert AFTER INSERT ON stages
BEGIN UPDATE stages_revision SET rev = rev + 1 WHERE id = 1; END;
CREATE TRIGGER stages_revision_update AFTER UPDATE ON stages
BEGIN UPDATE stages_revision SET rev = rev + 1 WHERE id = 1; END;
CREATE TRIGGER stages_revision_delete AFTER DELETE ON stages
BEGIN UPDATE stages_revision SET rev = rev + 1 WHERE id = 1; END;
