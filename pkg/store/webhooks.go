package store

import (
	"context"
	"time"
)

// Delivery is a webhook delivery that kkd received and acted on.
type Delivery struct {
	ID         int64
	ProjectID  int64
	Forge      string // github, gitlab or gitea
	DeliveryID string // the forge's delivery id (or a hash of the body)
	Event      string
	Received   time.Time
	FlowID     int64  // the flow it started; 0: none
	Note       string // why it started none (ignored event, no branch tracks the ref)
}

// WebhookStore holds the projects' webhook secrets and the deliveries
// received. Both are deleted with their project.
type WebhookStore interface {
	// PutWebhookSecret stores sealed as the project's webhook secret when it
	// has none, or when replace is set, and returns the sealed secret the
	// project has afterwards: two concurrent first calls agree on one.
	// ErrNotFound if the project does not exist; ErrInvalid if sealed is empty.
	PutWebhookSecret(ctx context.Context, projectID int64, sealed []byte, replace bool) ([]byte, error)
	// GetWebhookSecret returns the project's sealed webhook secret;
	// ErrNotFound when it has none.
	GetWebhookSecret(ctx context.Context, projectID int64) ([]byte, error)

	// RecordDelivery inserts d (FlowID and Note as given) and sets d.ID and
	// d.Received. ErrConflict when the project already has a delivery with
	// this forge and delivery id: that is how a repeated delivery is told
	// apart, atomically, also between kkd replicas. ErrNotFound if the
	// project does not exist.
	RecordDelivery(ctx context.Context, d *Delivery) error
	// SetDeliveryResult stores the flow a recorded delivery started (0:
	// none) and a note.
	SetDeliveryResult(ctx context.Context, id, flowID int64, note string) error
	// DeleteDelivery forgets a delivery (its flow could not be created, so
	// the forge's retry must be able to start it). ErrNotFound if none.
	DeleteDelivery(ctx context.Context, id int64) error
	// GetDelivery returns the project's delivery of forge with this id.
	GetDelivery(ctx context.Context, projectID int64, forge, deliveryID string) (Delivery, error)
}
