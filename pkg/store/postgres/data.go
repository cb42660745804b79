package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// dataOwner returns the owner column and table of a scope kind.
func dataOwner(kind string) (col, table string, err error) {
	switch kind {
	case "flow":
		return "flow_id", "flows", nil
	case "branch", "branch-ci", "branch-dev":
		return "branch_id", "branches", nil
	case "project":
		return "project_id", "projects", nil
	}
	return "", "", fmt.Errorf("data scope %q: use one of %v: %w", kind, store.DataScopeKinds, ci.ErrInvalid)
}

// GetData returns the scope's document (byte for byte as stored: the column
// is json, not jsonb) and its version, in one snapshot with the owner check.
func (s *Store) GetData(ctx context.Context, scope store.DataScope) (json.RawMessage, int64, error) {
	_, table, err := dataOwner(scope.Kind)
	if err != nil {
		return nil, 0, err
	}
	var doc json.RawMessage
	var version int64
	err = s.read(ctx, func(tx querier) error {
		doc, version = nil, 0
		var text string
		err := tx.QueryRow(ctx, `SELECT doc::text, version FROM data_docs WHERE scope = $1 AND owner_id = $2`, scope.Kind, scope.OwnerID).
			Scan(&text, &version)
		if err == nil {
			doc = json.RawMessage(text)
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM `+table+` WHERE id = $1`, scope.OwnerID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s %d: %w", table[:len(table)-1], scope.OwnerID, ci.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("get %s data of %d: %w", scope.Kind, scope.OwnerID, err)
	}
	return doc, version, nil
}

// PutData stores the document when its version is unchanged: an insert that
// does nothing when a document exists (version 0), else an update
// conditional on the version. Of concurrent writers of one version, the
// first to commit wins; the others wait for it and then change no row
// (ErrConflict).
func (s *Store) PutData(ctx context.Context, scope store.DataScope, doc json.RawMessage, version int64) (int64, error) {
	col, table, err := dataOwner(scope.Kind)
	if err != nil {
		return 0, err
	}
	if !json.Valid(doc) {
		return 0, fmt.Errorf("put %s data of %d: the document is not valid JSON: %w", scope.Kind, scope.OwnerID, ci.ErrInvalid)
	}
	next := version + 1
	err = s.write(ctx, func(tx querier) error {
		var changed int64
		if version == 0 {
			tag, err := tx.Exec(ctx, `INSERT INTO data_docs (scope, owner_id, `+col+`, doc, version, updated)
				VALUES ($1, $2, $2, $3, 1, $4) ON CONFLICT (scope, owner_id) DO NOTHING`,
				scope.Kind, scope.OwnerID, string(doc), s.now())
			if isForeignKey(err) {
				return fmt.Errorf("%s %d: %w", table[:len(table)-1], scope.OwnerID, ci.ErrNotFound)
			}
			if err != nil {
				return err
			}
			changed = tag.RowsAffected()
		} else {
			tag, err := tx.Exec(ctx, `UPDATE data_docs SET doc = $1, version = $2, updated = $3
				WHERE scope = $4 AND owner_id = $5 AND version = $6`,
				string(doc), next, s.now(), scope.Kind, scope.OwnerID, version)
			if err != nil {
				return err
			}
			changed = tag.RowsAffected()
		}
		if changed == 0 {
			return fmt.Errorf("the document changed since version %d: %w", version, ci.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("put %s data of %d: %w", scope.Kind, scope.OwnerID, err)
	}
	return next, nil
}
