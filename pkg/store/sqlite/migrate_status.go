package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
)

// ReadMigrationStatus lists the embedded migrations in version order with the
// time each was applied to the database file at path (nil: pending), without
// creating, changing or migrating the database: a missing file has every
// migration pending. Versions the database has but this binary does not know
// (written by a newer kkd) are listed too.
func ReadMigrationStatus(ctx context.Context, path string) ([]Migration, error) {
	all, err := migrations()
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Migration, 0, len(all))
	for _, m := range all {
		out = append(out, Migration{Version: m.version, Name: m.name})
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return nil, fmt.Errorf("migration status of %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, "_pragma=query_only(1)"))
	if err != nil {
		return nil, fmt.Errorf("migration status of %s: %w", path, err)
	}
	defer db.Close()
	have, err := exists(ctx, db, `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`)
	if err != nil {
		return nil, fmt.Errorf("migration status of %s: %w", path, err)
	}
	if !have {
		return out, nil
	}
	applied, err := queryAll(ctx, db, func(sc scanner) (Migration, error) {
		var m Migration
		var at int64
		if err := sc.Scan(&m.Version, &m.Name, &at); err != nil {
			return Migration{}, err
		}
		t := fromMS(at)
		m.Applied = &t
		return m, nil
	}, `SELECT version, name, applied FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migration status of %s: read schema_migrations: %w", path, err)
	}
	for _, a := range applied {
		if i := slices.IndexFunc(out, func(m Migration) bool { return m.Version == a.Version }); i >= 0 {
			out[i].Applied = a.Applied
		} else {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// Migrate applies the pending migrations to the database file at path
// (creating it when missing), as Open does, and returns the ones it applied.
func Migrate(ctx context.Context, path string, logger *slog.Logger) ([]Migration, error) {
	before, err := ReadMigrationStatus(ctx, path)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, path, logger)
	if err != nil {
		return nil, err
	}
	after, err := s.MigrationStatus(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	pending := map[int]bool{}
	for _, m := range before {
		pending[m.Version] = m.Applied == nil
	}
	var done []Migration
	for _, m := range after {
		if pending[m.Version] && m.Applied != nil {
			done = append(done, m)
		}
	}
	return done, nil
}
