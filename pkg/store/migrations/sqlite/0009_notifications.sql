-- 0009_notifications: one row per notification kkd sends about a run (event
-- start or end, one channel: email, slack, discord, github). Inserting the
-- row claims the send, so with several replicas one sends it; the row then
-- records how it went (state sent or failed, message), shown by kk run show.
CREATE TABLE run_notifications (
	id      INTEGER PRIMARY KEY,
	run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	event   TEXT    NOT NULL CHECK (event IN ('start', 'end')),
	channel TEXT    NOT NULL,
	state   TEXT    NOT NULL CHECK (state IN ('sending', 'sent', 'failed')),
	message TEXT    NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	UNIQUE (run_id, event, channel)
) STRICT;
