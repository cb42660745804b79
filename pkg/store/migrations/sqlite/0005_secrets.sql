-- 0005_secrets: project secrets. Only the sealed (AES-256-GCM) value is
-- stored; it is bound to (project_id, name) by the encryption itself.
CREATE TABLE secrets (
	id         INTEGER PRIMARY KEY,
	project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	kind       TEXT    NOT NULL,
	sealed     BLOB    NOT NULL,
	created    INTEGER NOT NULL,
	updated    INTEGER NOT NULL,
	UNIQUE (project_id, name)
) STRICT;
