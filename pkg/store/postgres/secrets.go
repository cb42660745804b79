package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Secrets.

const secretCols = `id, project_id, name, kind, created, updated`

func scanSecret(withSealed bool) func(sc pgx.Row) (store.Secret, error) {
	return func(sc pgx.Row) (store.Secret, error) {
		var s store.Secret
		dest := []any{&s.ID, &s.ProjectID, &s.Name, &s.Kind, &s.Created, &s.Updated}
		if withSealed {
			dest = append(dest, &s.Sealed)
		}
		if err := sc.Scan(dest...); err != nil {
			return store.Secret{}, err
		}
		return s, nil
	}
}

func checkSecret(s *store.Secret) error {
	if err := checkName("secret", s.Name); err != nil {
		return err
	}
	if s.Kind == "" {
		return fmt.Errorf("secret kind is empty: %w", ci.ErrInvalid)
	}
	if len(s.Sealed) == 0 {
		return fmt.Errorf("secret has no sealed value: %w", ci.ErrInvalid)
	}
	return nil
}

// lockProject key-share-locks the project (as a foreign key check does), so
// it cannot be deleted before the transaction ends; ErrNotFound when it does
// not exist.
func lockProject(ctx context.Context, tx querier, id int64) error {
	ok, err := exists(ctx, tx, `SELECT 1 FROM projects WHERE id = $1 FOR KEY SHARE`, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("project %d: %w", id, ci.ErrNotFound)
	}
	return nil
}

// PutSecret creates the secret or replaces the value of the existing one.
// It inserts unless the name exists and then updates: a concurrent creator
// of the name makes the insert wait for its commit and do nothing, and the
// update then replaces what it stored.
func (s *Store) PutSecret(ctx context.Context, sec *store.Secret) (bool, error) {
	if err := checkSecret(sec); err != nil {
		return false, fmt.Errorf("put secret: %w", err)
	}
	now := s.now()
	var created bool
	var id int64
	var createdAt time.Time
	err := s.write(ctx, func(tx querier) error {
		if err := lockProject(ctx, tx, sec.ProjectID); err != nil {
			return err
		}
		for range maxUpsertTries {
			err := tx.QueryRow(ctx, `
				INSERT INTO secrets (project_id, name, kind, sealed, created, updated) VALUES ($1, $2, $3, $4, $5, $5)
				ON CONFLICT (project_id, name) DO NOTHING RETURNING id`,
				sec.ProjectID, sec.Name, sec.Kind, sec.Sealed, now).Scan(&id)
			if err == nil {
				created, createdAt = true, now
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			err = tx.QueryRow(ctx, `
				UPDATE secrets SET kind = $1, sealed = $2, updated = $3 WHERE project_id = $4 AND name = $5
				RETURNING id, created`,
				sec.Kind, sec.Sealed, now, sec.ProjectID, sec.Name).Scan(&id, &createdAt)
			if !errors.Is(err, pgx.ErrNoRows) {
				created = false
				return err
			}
			// Deleted between the two statements: insert it again.
		}
		return fmt.Errorf("concurrent changes of the secret kept it moving: try again: %w", ci.ErrConflict)
	})
	if err != nil {
		return false, fmt.Errorf("put secret %q: %w", sec.Name, err)
	}
	sec.ID, sec.Created, sec.Updated = id, createdAt, now
	return created, nil
}

// CreateSecret inserts the secret; ErrConflict if the name is taken.
func (s *Store) CreateSecret(ctx context.Context, sec *store.Secret) error {
	if err := checkSecret(sec); err != nil {
		return fmt.Errorf("create secret: %w", err)
	}
	now := s.now()
	var id int64
	err := s.write(ctx, func(tx querier) error {
		if err := lockProject(ctx, tx, sec.ProjectID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx,
			`INSERT INTO secrets (project_id, name, kind, sealed, created, updated) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id`,
			sec.ProjectID, sec.Name, sec.Kind, sec.Sealed, now).Scan(&id)
		if isUnique(err) {
			return fmt.Errorf("the project has a secret with this name: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create secret %q: %w", sec.Name, err)
	}
	sec.ID, sec.Created, sec.Updated = id, now, now
	return nil
}

// GetSecret returns the project's secret with its sealed value.
func (s *Store) GetSecret(ctx context.Context, projectID int64, name string) (store.Secret, error) {
	sec, err := scanSecret(true)(s.q().QueryRow(ctx,
		`SELECT `+secretCols+`, sealed FROM secrets WHERE project_id = $1 AND name = $2`, projectID, name))
	if err != nil {
		return store.Secret{}, fmt.Errorf("get secret: %w", notFound(err, "secret", fmt.Sprintf("%q", name)))
	}
	return sec, nil
}

// ListSecrets returns the project's secrets without their values.
func (s *Store) ListSecrets(ctx context.Context, projectID int64) ([]store.Secret, error) {
	out, err := queryAll(ctx, s, s.q(), scanSecret(false),
		`SELECT `+secretCols+` FROM secrets WHERE project_id = $1 ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// ListSealedSecrets returns the project's secrets with their sealed values.
func (s *Store) ListSealedSecrets(ctx context.Context, projectID int64) ([]store.Secret, error) {
	out, err := queryAll(ctx, s, s.q(), scanSecret(true),
		`SELECT `+secretCols+`, sealed FROM secrets WHERE project_id = $1 ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// DeleteSecret deletes the project's secret.
func (s *Store) DeleteSecret(ctx context.Context, projectID int64, name string) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `DELETE FROM secrets WHERE project_id = $1 AND name = $2`, projectID, name)
		if err != nil {
			return err
		}
		return mustAffect(tag, "secret", fmt.Sprintf("%q", name))
	})
	if err != nil {
		return fmt.Errorf("delete secret: %w", err)
	}
	return nil
}
