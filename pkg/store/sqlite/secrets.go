package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Secrets.

func scanSecret(withSealed bool) func(sc scanner) (store.Secret, error) {
	return func(sc scanner) (store.Secret, error) {
		var s store.Secret
		var created, updated int64
		dest := []any{&s.ID, &s.ProjectID, &s.Name, &s.Kind, &created, &updated}
		if withSealed {
			dest = append(dest, &s.Sealed)
		}
		if err := sc.Scan(dest...); err != nil {
			return store.Secret{}, err
		}
		s.Created, s.Updated = fromMS(created), fromMS(updated)
		return s, nil
	}
}

const secretCols = `id, project_id, name, kind, created, updated`

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

// PutSecret creates the secret or replaces the value of the existing one.
func (s *Store) PutSecret(ctx context.Context, sec *store.Secret) (bool, error) {
	if err := checkSecret(sec); err != nil {
		return false, fmt.Errorf("put secret: %w", err)
	}
	now := s.now()
	var created bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM projects WHERE id = ?`, sec.ProjectID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("project %d: %w", sec.ProjectID, ci.ErrNotFound)
		}
		var createdMS int64
		err = tx.QueryRowContext(ctx,
			`UPDATE secrets SET kind = ?, sealed = ?, updated = ? WHERE project_id = ? AND name = ? RETURNING id, created`,
			sec.Kind, sec.Sealed, ms(now), sec.ProjectID, sec.Name).Scan(&sec.ID, &createdMS)
		if err == nil {
			sec.Created = fromMS(createdMS)
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		created = true
		sec.Created = now
		return tx.QueryRowContext(ctx,
			`INSERT INTO secrets (project_id, name, kind, sealed, created, updated) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			sec.ProjectID, sec.Name, sec.Kind, sec.Sealed, ms(now), ms(now)).Scan(&sec.ID)
	})
	if err != nil {
		return false, fmt.Errorf("put secret %q: %w", sec.Name, err)
	}
	sec.Updated = now
	return created, nil
}

// CreateSecret inserts the secret; ErrConflict if the name is taken.
func (s *Store) CreateSecret(ctx context.Context, sec *store.Secret) error {
	if err := checkSecret(sec); err != nil {
		return fmt.Errorf("create secret: %w", err)
	}
	now := s.now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM projects WHERE id = ?`, sec.ProjectID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("project %d: %w", sec.ProjectID, ci.ErrNotFound)
		}
		err = tx.QueryRowContext(ctx,
			`INSERT INTO secrets (project_id, name, kind, sealed, created, updated) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			sec.ProjectID, sec.Name, sec.Kind, sec.Sealed, ms(now), ms(now)).Scan(&sec.ID)
		if isUnique(err) {
			return fmt.Errorf("the project has a secret with this name: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create secret %q: %w", sec.Name, err)
	}
	sec.Created, sec.Updated = now, now
	return nil
}

// GetSecret returns the project's secret with its sealed value.
func (s *Store) GetSecret(ctx context.Context, projectID int64, name string) (store.Secret, error) {
	sec, err := scanSecret(true)(s.r.QueryRowContext(ctx,
		`SELECT `+secretCols+`, sealed FROM secrets WHERE project_id = ? AND name = ?`, projectID, name))
	if err != nil {
		return store.Secret{}, fmt.Errorf("get secret: %w", notFound(err, "secret", fmt.Sprintf("%q", name)))
	}
	return sec, nil
}

// ListSecrets returns the project's secrets without their values.
func (s *Store) ListSecrets(ctx context.Context, projectID int64) ([]store.Secret, error) {
	out, err := queryAll(ctx, s.r, scanSecret(false),
		`SELECT `+secretCols+` FROM secrets WHERE project_id = ? ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// ListSealedSecrets returns the project's secrets with their sealed values.
func (s *Store) ListSealedSecrets(ctx context.Context, projectID int64) ([]store.Secret, error) {
	out, err := queryAll(ctx, s.r, scanSecret(true),
		`SELECT `+secretCols+`, sealed FROM secrets WHERE project_id = ? ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// DeleteSecret deletes the project's secret.
func (s *Store) DeleteSecret(ctx context.Context, projectID int64, name string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE project_id = ? AND name = ?`, projectID, name)
		if err != nil {
			return err
		}
		return mustAffect(res, "secret", fmt.Sprintf("%q", name))
	})
	if err != nil {
		return fmt.Errorf("delete secret: %w", err)
	}
	return nil
}
