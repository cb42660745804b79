package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Webhooks.

// PutWebhookSecret stores the project's sealed webhook secret when it has
// none or replace is set, and returns the one it has afterwards.
func (s *Store) PutWebhookSecret(ctx context.Context, projectID int64, sealed []byte, replace bool) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("put webhook secret: no sealed value: %w", ci.ErrInvalid)
	}
	now := ms(s.now())
	var out []byte
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM projects WHERE id = ?`, projectID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("project %d: %w", projectID, ci.ErrNotFound)
		}
		onConflict := `DO NOTHING`
		if replace {
			onConflict = `DO UPDATE SET sealed = excluded.sealed, updated = excluded.updated`
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_secrets (project_id, sealed, created, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (project_id) `+onConflict, projectID, sealed, now, now); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT sealed FROM webhook_secrets WHERE project_id = ?`, projectID).Scan(&out)
	})
	if err != nil {
		return nil, fmt.Errorf("put webhook secret of project %d: %w", projectID, err)
	}
	return out, nil
}

// GetWebhookSecret returns the project's sealed webhook secret.
func (s *Store) GetWebhookSecret(ctx context.Context, projectID int64) ([]byte, error) {
	var out []byte
	err := s.r.QueryRowContext(ctx, `SELECT sealed FROM webhook_secrets WHERE project_id = ?`, projectID).Scan(&out)
	if err != nil {
		return nil, fmt.Errorf("get webhook secret: %w", notFound(err, "webhook secret of project", projectID))
	}
	return out, nil
}

// RecordDelivery inserts the delivery; ErrConflict when it was recorded before.
func (s *Store) RecordDelivery(ctx context.Context, d *store.Delivery) error {
	if d.Forge == "" || d.DeliveryID == "" {
		return fmt.Errorf("record delivery: forge and delivery id are required: %w", ci.ErrInvalid)
	}
	now := s.now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM projects WHERE id = ?`, d.ProjectID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("project %d: %w", d.ProjectID, ci.ErrNotFound)
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO webhook_deliveries (project_id, forge, delivery_id, event, received, flow_id, note, outcome, flow_ids)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			d.ProjectID, d.Forge, d.DeliveryID, d.Event, ms(now), nullID(d.FlowID), d.Note, d.Outcome, store.JoinIDs(d.FlowIDs)).Scan(&d.ID)
		if isUnique(err) {
			return fmt.Errorf("delivery %q was received before: %w", d.DeliveryID, ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("record %s delivery: %w", d.Forge, err)
	}
	d.Received = now
	return nil
}

// SetDeliveryResult stores the flows a delivery started and a note.
func (s *Store) SetDeliveryResult(ctx context.Context, id int64, flowIDs []int64, note string) error {
	var first int64
	if len(flowIDs) > 0 {
		first = flowIDs[0]
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET flow_id = ?, flow_ids = ?, note = ?,
			outcome = CASE WHEN ? THEN 'started' ELSE outcome END WHERE id = ?`,
			nullID(first), store.JoinIDs(flowIDs), note, len(flowIDs) > 0, id)
		if err != nil {
			return err
		}
		return mustAffect(res, "delivery", id)
	})
	if err != nil {
		return fmt.Errorf("set delivery result: %w", err)
	}
	return nil
}

// AddDeliveryDuplicate counts one more repeat of a delivery.
func (s *Store) AddDeliveryDuplicate(ctx context.Context, projectID int64, forge, deliveryID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET duplicates = duplicates + 1
			WHERE project_id = ? AND forge = ? AND delivery_id = ?`, projectID, forge, deliveryID)
		if err != nil {
			return err
		}
		return mustAffect(res, "delivery", fmt.Sprintf("%q", deliveryID))
	})
	if err != nil {
		return fmt.Errorf("count duplicate delivery: %w", err)
	}
	return nil
}

const deliveryCols = `id, project_id, forge, delivery_id, event, received, flow_id, note, outcome, flow_ids, duplicates`

func scanDelivery(sc interface{ Scan(...any) error }) (store.Delivery, error) {
	var d store.Delivery
	var received int64
	var flowID sql.NullInt64
	var flowIDs string
	if err := sc.Scan(&d.ID, &d.ProjectID, &d.Forge, &d.DeliveryID, &d.Event, &received, &flowID, &d.Note, &d.Outcome, &flowIDs, &d.Duplicates); err != nil {
		return store.Delivery{}, err
	}
	ids, err := store.SplitIDs(flowIDs)
	if err != nil {
		return store.Delivery{}, err
	}
	d.Received, d.FlowID, d.FlowIDs = fromMS(received), flowID.Int64, ids
	return d, nil
}

// ListDeliveries returns the project's latest deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, projectID int64, limit int) ([]store.Delivery, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE project_id = ? ORDER BY received DESC, id DESC LIMIT ?`, projectID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// DeleteDeliveriesBefore deletes up to limit deliveries received before t.
func (s *Store) DeleteDeliveriesBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE id IN (
			SELECT id FROM webhook_deliveries WHERE received < ? ORDER BY received LIMIT ?)`, ms(t), sqlLimit(limit))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete old deliveries: %w", err)
	}
	return int(n), nil
}

// DeleteDelivery forgets a delivery.
func (s *Store) DeleteDelivery(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, "delivery", id)
	})
	if err != nil {
		return fmt.Errorf("delete delivery: %w", err)
	}
	return nil
}

// GetDelivery returns the project's delivery of forge with this id.
func (s *Store) GetDelivery(ctx context.Context, projectID int64, forge, deliveryID string) (store.Delivery, error) {
	d, err := scanDelivery(s.r.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE project_id = ? AND forge = ? AND delivery_id = ?`, projectID, forge, deliveryID))
	if err != nil {
		return store.Delivery{}, fmt.Errorf("get delivery: %w", notFound(err, "delivery", fmt.Sprintf("%q", deliveryID)))
	}
	return d, nil
}

// nullID is NULL for 0.
func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }
