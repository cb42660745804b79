package postgres

import (
	"context"
	"fmt"
	schema "github.com/kraken-go/kk/pkg/store/migrations"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The schema migrations are in pkg/store/migrations/postgres, named
// NNNN_description.sql and applied in version order. They mirror
// pkg/store/migrations/sqlite version for version, so `kkd migrate status`
// reads the same on both databases. A released migration is never edited:
// changes go into a new file.

// migrationLock is the key of the advisory lock that serialises migrations
// of kkd processes starting at the same time on one database ("kkmigr").
const migrationLock int64 = 0x6b6b6d696772

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
	entries, err := fs.ReadDir(schema.Postgres, "postgres")
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
		b, err := schema.Postgres.ReadFile(path.Join("postgres", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migration version %d is used twice", out[i].version)
		}
	}
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer     PRIMARY KEY,
	name    text        NOT NULL,
	applied timestamptz NOT NULL
)`

// Migrate applies the pending migrations and returns the ones it applied.
// Each migration runs in its own transaction that first takes a
// transaction-level advisory lock, so kkd processes starting together apply
// each migration once (the others wait, then find it applied), and a failed
// migration leaves the database at the previous version. The statement
// timeout does not apply to migrations (they may rewrite large tables); ctx
// bounds them. A database with a migration this binary does not know
// (written by a newer kkd) is refused.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	all, err := migrations()
	if err != nil {
		return nil, err
	}
	known := map[int]bool{}
	for _, m := range all {
		known[m.version] = true
	}
	var done []Migration
	for {
		var applied *Migration
		err := s.write(ctx, func(tx querier) error {
			applied = nil
			if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
				return fmt.Errorf("take the migration lock: %w", err)
			}
			if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			have, err := appliedMigrations(ctx, s, tx)
			if err != nil {
				return err
			}
			for v := range have {
				if !known[v] {
					return fmt.Errorf("database has schema version %d, which this kkd does not know: run a newer kkd", v)
				}
			}
			i := slices.IndexFunc(all, func(m migration) bool { _, ok := have[m.version]; return !ok })
			if i < 0 {
				return nil
			}
			m := all[i]
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.version, m.name, err)
			}
			at := s.now()
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)`,
				m.version, m.name, at); err != nil {
				return fmt.Errorf("record migration %04d_%s: %w", m.version, m.name, err)
			}
			applied = &Migration{Version: m.version, Name: m.name, Applied: &at}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("migrate: %w", err)
		}
		if applied == nil {
			return done, nil
		}
		s.log.Info("applied database migration", "db", s.where, "version", applied.Version, "name", applied.Name)
		done = append(done, *applied)
	}
}

// appliedMigrations reads schema_migrations by version.
func appliedMigrations(ctx context.Context, s *Store, q querier) (map[int]Migration, error) {
	rows, err := queryAll(ctx, s, q, func(r pgx.Row) (Migration, error) {
		var m Migration
		var at time.Time
		if err := r.Scan(&m.Version, &m.Name, &at); err != nil {
			return Migration{}, err
		}
		at = ts(at)
		m.Applied = &at
		return m, nil
	}, `SELECT version, name, applied FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	out := make(map[int]Migration, len(rows))
	for _, m := range rows {
		out[m.Version] = m
	}
	return out, nil
}

// MigrationStatus lists the embedded migrations in version order with the
// time each was applied to this database (nil: pending). A database that was
// never migrated has every migration pending. Migrations the database has
// but this binary does not know (written by a newer kkd) are listed too.
func (s *Store) MigrationStatus(ctx context.Context) ([]Migration, error) {
	all, err := migrations()
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	var have map[int]Migration
	err = s.read(ctx, func(tx querier) error {
		var table *string
		if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_migrations')::text`).Scan(&table); err != nil {
			return err
		}
		if table == nil {
			have = map[int]Migration{}
			return nil
		}
		have, err = appliedMigrations(ctx, s, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Migration, 0, len(all))
	for _, m := range all {
		st := Migration{Version: m.version, Name: m.name}
		if a, ok := have[m.version]; ok {
			st.Applied = a.Applied
			delete(have, m.version)
		}
		out = append(out, st)
	}
	for _, a := range have {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}
