package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	schema "github.com/kraken-go/kk/pkg/store/migrations"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The schema migrations are in pkg/store/migrations/sqlite, named
// NNNN_description.sql and applied in version order. A released migration is
// never edited: changes go into a new file.

// Migration is one schema migration and whether this database has it.
type Migration struct {
	Version int
	Name    string
	// Applied is when the migration was applied; nil while it is pending.
	Applied *time.Time
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(schema.SQLite, "sqlite")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := schema.SQLite.ReadFile(path.Join("sqlite", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		if len(out) > 0 && out[len(out)-1].version == v {
			return nil, fmt.Errorf("migration version %d is used twice", v)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	name    TEXT    NOT NULL,
	applied INTEGER NOT NULL
) STRICT`

// migrate applies the pending migrations in one write transaction: either the
// database reaches the newest schema or it stays as it was. A database with a
// migration this binary does not know (written by a newer kkd) is refused.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrations()
	if err != nil {
		return err
	}
	known := map[int]bool{}
	for _, m := range all {
		known[m.version] = true
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		applied, err := appliedMigrations(ctx, tx)
		if err != nil {
			return err
		}
		for v := range applied {
			if !known[v] {
				return fmt.Errorf("database has schema version %d, which this kkd does not know: run a newer kkd", v)
			}
		}
		now := s.now()
		for _, m := range all {
			if _, ok := applied[m.version]; ok {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.version, m.name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				m.version, m.name, ms(now)); err != nil {
				return fmt.Errorf("record migration %04d_%s: %w", m.version, m.name, err)
			}
			s.log.Info("applied database migration", "path", s.path, "version", m.version, "name", m.name)
		}
		return nil
	})
}

func appliedMigrations(ctx context.Context, q querier) (map[int]time.Time, error) {
	rows, err := q.QueryContext(ctx, `SELECT version, applied FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out[v] = fromMS(at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// MigrationStatus lists the embedded migrations in version order with the
// time each was applied to this database (nil: pending).
func (s *Store) MigrationStatus(ctx context.Context) ([]Migration, error) {
	all, err := migrations()
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	applied, err := appliedMigrations(ctx, s.r)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Migration, 0, len(all))
	for _, m := range all {
		st := Migration{Version: m.version, Name: m.name}
		if at, ok := applied[m.version]; ok {
			st.Applied = &at
		}
		out = append(out, st)
	}
	return out, nil
}
