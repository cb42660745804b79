// Package migrations holds the schema migrations of both store dialects in
// one place: sqlite/ and postgres/, each named NNNN_description.sql. A change
// of the schema is one version number with a file in each directory, of the
// same name (a test in pkg/daemon enforces it), applied in version order by
// pkg/store/sqlite and pkg/store/postgres when they open a database.
package migrations

import "embed"

// SQLite holds sqlite/*.sql.
//
//go:embed sqlite/*.sql
var SQLite embed.FS

// Postgres holds postgres/*.sql.
//
//go:embed postgres/*.sql
var Postgres embed.FS
