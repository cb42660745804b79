-- 0009_notifications: one row per notification kkd sends about a run (event
-- start or end, one channel: email, slack, discord, github). Inserting the
-- row claims the send, so with several replicas one sends it; the row then
-- records how it went (state sent or failed, message), shown by kk run show.
CREATE TABLE run_notifications (
	id      INTEGER PRIMARY KEY,
	run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	event   TEXT    NOT NULL CHECK (event IN ('start', 'end')),
	channel TEXT    NOT NULL,
	-- round tells the ends of a run apart (a rerun ends it again): the
	-- run's finish time in ms for event end, 0 for start.
	round   INTEGER NOT NULL DEFAULT 0,
	state   TEXT    NOT NULL CHECK (state IN ('sending', 'sent', 'failed', 'skipped')),
	message TEXT    NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	UNIQUE (run_id, event, round, channel)
) STRICT;
