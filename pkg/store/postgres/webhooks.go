package postgres

import (
	"context"
	"fmt"

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
			INSERT INTO webhook_deliveries (project_id, forge, delivery_id, event, received, flow_id, note)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			d.ProjectID, d.Forge, d.DeliveryID, d.Event, now, nullID(d.FlowID), d.Note).Scan(&id)
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

// SetDeliveryResult stores the flow a delivery started and a note.
func (s *Store) SetDeliveryResult(ctx context.Context, id, flowID int64, note string) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET flow_id = $1, note = $2 WHERE id = $3`, nullID(flowID), note, id)
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
	var d store.Delivery
	var flowID *int64
	err := s.q().QueryRow(ctx, `
		SELECT id, project_id, forge, delivery_id, event, received, flow_id, note FROM webhook_deliveries
		WHERE project_id = $1 AND forge = $2 AND delivery_id = $3`, projectID, forge, deliveryID).
		Scan(&d.ID, &d.ProjectID, &d.Forge, &d.DeliveryID, &d.Event, &d.Received, &flowID, &d.Note)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("get delivery: %w", notFound(err, "delivery", fmt.Sprintf("%q", deliveryID)))
	}
	d.Received = ts(d.Received)
	if flowID != nil {
		d.FlowID = *flowID
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
