package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

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

// GetData returns the scope's document and version.
func (s *Store) GetData(ctx context.Context, scope store.DataScope) (json.RawMessage, int64, error) {
	_, table, err := dataOwner(scope.Kind)
	if err != nil {
		return nil, 0, err
	}
	var doc json.RawMessage
	var version int64
	err = s.read(ctx, func(tx *sql.Tx) error {
		var text string
		err := tx.QueryRowContext(ctx, `SELECT doc, version FROM data_docs WHERE scope = ? AND owner_id = ?`, scope.Kind, scope.OwnerID).
			Scan(&text, &version)
		if err == nil {
			doc = json.RawMessage(text)
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM `+table+` WHERE id = ?`, scope.OwnerID)
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

// PutData stores the document when its version is unchanged.
func (s *Store) PutData(ctx context.Context, scope store.DataScope, doc json.RawMessage, version int64) (int64, error) {
	col, table, err := dataOwner(scope.Kind)
	if err != nil {
		return 0, err
	}
	if !json.Valid(doc) {
		return 0, fmt.Errorf("put %s data of %d: the document is not valid JSON: %w", scope.Kind, scope.OwnerID, ci.ErrInvalid)
	}
	next := version + 1
	err = s.write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if version == 0 {
			res, err = tx.ExecContext(ctx, `INSERT INTO data_docs (scope, owner_id, `+col+`, doc, version, updated)
				VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (scope, owner_id) DO NOTHING`,
				scope.Kind, scope.OwnerID, scope.OwnerID, string(doc), ms(s.now()))
			if isForeignKey(err) {
				return fmt.Errorf("%s %d: %w", table[:len(table)-1], scope.OwnerID, ci.ErrNotFound)
			}
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE data_docs SET doc = ?, version = ?, updated = ?
				WHERE scope = ? AND owner_id = ? AND version = ?`,
				string(doc), next, ms(s.now()), scope.Kind, scope.OwnerID, version)
		}
		if err != nil {
			return err
		}
		ok, err := affected(res)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the document changed since version %d: %w", version, ci.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("put %s data of %d: %w", scope.Kind, scope.OwnerID, err)
	}
	return next, nil
}
