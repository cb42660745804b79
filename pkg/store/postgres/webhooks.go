package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// Webhooks.

// PutWebhookSecret stores the project's sealed webhook secret when it has
// none or replace is set, and returns the one it has afterwards. A
// concurrent first insert makes this one wait for its commit and do
// nothing; the SELECT (a new READ COMMITTED snapshot) then sees its secret.
func (s *Store) PutWebhookSecret(ctx context.Context, projectID int64, sealed []byte, replace bool) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("put webhook secret: no sealed value: %w", ci.ErrInvalid)
	}
	now := s.now()
	var out []byte
	err := s.write(ctx, func(tx querier) error {
		if err := lockProject(ctx, tx, projectID); err != nil {
			return err
		}
		onConflict := `DO NOTHING`
		if replace {
			onConflict = `DO UPDATE SET sealed = excluded.sealed, updated = excluded.updated`
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_secrets (project_id, sealed, created, updated) VALUES ($1, $2, $3, $3)
			ON CONFLICT (project_id) `+onConflict, projectID, sealed, now); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT sealed FROM webhook_secrets WHERE project_id = $1`, projectID).Scan(&out)
	})
	if err != nil {
		return nil, fmt.Errorf("put webhook secret of project %d: %w", projectID, err)
	}
	return out, nil
}

// GetWebhookSecret returns the project's sealed webhook secret.
func (s *Store) GetWebhookSecret(ctx context.Context, projectID int64) ([]byte, error) {
	var out []byte
	err := s.q().QueryRow(ctx, `SELECT sealed FROM webhook_secrets WHERE project_id = $1`, projectID).Scan(&out)
	if err != nil {
		return nil, fmt.Errorf("get webhook secret: %w", notFound(err, "webhook secret of project", projectID))
	}
	return out, nil
}

// RecordDelivery inserts the delivery; ErrConflict when it was recorded
// before (a concurrent insert of the same id waits for the first one's
// commit and then conflicts).
func (s *Store) RecordDelivery(ctx context.Context, d *store.Delivery) error {
	if d.Forge == "" || d.DeliveryID == "" {
		return fmt.Errorf("record delivery: forge and delivery id are required: %w", ci.ErrInvalid)
	}
	now := s.now()
	var id int64
	err := s.write(ctx, func(tx querier) error {
		if err := lockProject(ctx, tx, d.ProjectID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO webhook_deliveries (project_id, forge, delivery_id, event, received, flow_id, note, outcome, flow_ids)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
			d.ProjectID, d.Forge, d.DeliveryID, d.Event, now, nullID(d.FlowID), d.Note, d.Outcome, store.JoinIDs(d.FlowIDs)).Scan(&id)
		if isUnique(err) {
			return fmt.Errorf("delivery %q was received before: %w", d.DeliveryID, ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("record %s delivery: %w", d.Forge, err)
	}
	d.ID, d.Received = id, now
	return nil
}

// SetDeliveryResult stores the flows a delivery started and a note.
func (s *Store) SetDeliveryResult(ctx context.Context, id int64, flowIDs []int64, note string) error {
	var first int64
	if len(flowIDs) > 0 {
		first = flowIDs[0]
	}
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET flow_id = $1, flow_ids = $2, note = $3,
			outcome = CASE WHEN $4 THEN 'started' ELSE outcome END WHERE id = $5`,
			nullID(first), store.JoinIDs(flowIDs), note, len(flowIDs) > 0, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "delivery", id)
	})
	if err != nil {
		return fmt.Errorf("set delivery result: %w", err)
	}
	return nil
}

// AddDeliveryDuplicate counts one more repeat of a delivery.
func (s *Store) AddDeliveryDuplicate(ctx context.Context, projectID int64, forge, deliveryID string) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET duplicates = duplicates + 1
			WHERE project_id = $1 AND forge = $2 AND delivery_id = $3`, projectID, forge, deliveryID)
		if err != nil {
			return err
		}
		return mustAffect(tag, "delivery", fmt.Sprintf("%q", deliveryID))
	})
	if err != nil {
		return fmt.Errorf("count duplicate delivery: %w", err)
	}
	return nil
}

const deliveryCols = `id, project_id, forge, delivery_id, event, received, flow_id, note, outcome, flow_ids, duplicates`

func scanDelivery(sc interface{ Scan(...any) error }) (store.Delivery, error) {
	var d store.Delivery
	var flowID *int64
	var flowIDs string
	var dups int32
	if err := sc.Scan(&d.ID, &d.ProjectID, &d.Forge, &d.DeliveryID, &d.Event, &d.Received, &flowID, &d.Note, &d.Outcome, &flowIDs, &dups); err != nil {
		return store.Delivery{}, err
	}
	ids, err := store.SplitIDs(flowIDs)
	if err != nil {
		return store.Delivery{}, err
	}
	d.Received, d.FlowIDs, d.Duplicates = ts(d.Received), ids, int(dups)
	if flowID != nil {
		d.FlowID = *flowID
	}
	return d, nil
}

// ListDeliveries returns the project's latest deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, projectID int64, limit int) ([]store.Delivery, error) {
	rows, err := s.q().Query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE project_id = $1 ORDER BY received DESC, id DESC LIMIT $2`, projectID, sqlLimit(limit))
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
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id IN (
			SELECT id FROM webhook_deliveries WHERE received < $1 ORDER BY received LIMIT $2 FOR UPDATE SKIP LOCKED)`, ts(t), sqlLimit(limit))
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete old deliveries: %w", err)
	}
	return int(n), nil
}

// DeleteDelivery forgets a delivery.
func (s *Store) DeleteDelivery(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "delivery", id)
	})
	if err != nil {
		return fmt.Errorf("delete delivery: %w", err)
	}
	return nil
}

// GetDelivery returns the project's delivery of forge with this id.
func (s *Store) GetDelivery(ctx context.Context, projectID int64, forge, deliveryID string) (store.Delivery, error) {
	d, err := scanDelivery(s.q().QueryRow(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE project_id = $1 AND forge = $2 AND delivery_id = $3`, projectID, forge, deliveryID))
	if err != nil {
		return store.Delivery{}, fmt.Errorf("get delivery: %w", notFound(err, "delivery", fmt.Sprintf("%q", deliveryID)))
	}
	return d, nil
}

// nullID is NULL for 0.
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
