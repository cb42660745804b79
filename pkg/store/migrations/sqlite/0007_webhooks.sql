-- 0007_webhooks: a project's webhook secret (sealed like project secrets,
-- AES-256-GCM bound to the project id and the name "webhook:secret") and the
-- webhook deliveries received, so that a repeated delivery id starts nothing.
CREATE TABLE webhook_secrets (
	project_id INTEGER PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
	sealed     BLOB    NOT NULL,
	created    INTEGER NOT NULL,
	updated    INTEGER NOT NULL
) STRICT;

-- One row per (project, forge, delivery id). flow_id is the flow the
-- delivery started (NULL: none; note says why).
CREATE TABLE webhook_deliveries (
	id          INTEGER PRIMARY KEY,
	project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	forge       TEXT    NOT NULL,
	delivery_id TEXT    NOT NULL,
	event       TEXT    NOT NULL DEFAULT '',
	received    INTEGER NOT NULL,
	flow_id     INTEGER REFERENCES flows (id) ON DELETE SET NULL,
	note        TEXT    NOT NULL DEFAULT '',
	UNIQUE (project_id, forge, delivery_id)
) STRICT;
CREATE INDEX webhook_deliveries_flow ON webhook_deliveries (flow_id) WHERE flow_id IS NOT NULL;
