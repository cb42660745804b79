package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
	FlowID     int64   // the (first) flow it started; 0: none
	FlowIDs    []int64 // all the flows it started
	Outcome    string  // api.WebhookStarted, WebhookNoBranch or WebhookIgnored ("": recorded before 0011)
	Duplicates int     // later deliveries with the same id (they started nothing)
	Note       string  // why it started none, or on which branches it failed
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
	// SetDeliveryResult stores the flows a recorded delivery started (the
	// outcome becomes started when there are any) and a note. ErrNotFound
	// if there is no such delivery.
	SetDeliveryResult(ctx context.Context, id int64, flowIDs []int64, note string) error
	// AddDeliveryDuplicate counts one more repeat of the project's delivery
	// of forge with this id. ErrNotFound if there is none.
	AddDeliveryDuplicate(ctx context.Context, projectID int64, forge, deliveryID string) error
	// DeleteDelivery forgets a delivery (its flow could not be created, so
	// the forge's retry must be able to start it). ErrNotFound if none.
	DeleteDelivery(ctx context.Context, id int64) error
	// GetDelivery returns the project's delivery of forge with this id.
	GetDelivery(ctx context.Context, projectID int64, forge, deliveryID string) (Delivery, error)
	// ListDeliveries returns the project's latest deliveries, newest first,
	// at most limit (<= 0: all).
	ListDeliveries(ctx context.Context, projectID int64, limit int) ([]Delivery, error)
	// DeleteDeliveriesBefore deletes up to limit deliveries (of every
	// project) received before t and returns how many it deleted.
	DeleteDeliveriesBefore(ctx context.Context, t time.Time, limit int) (int, error)
}

// JoinIDs renders ids comma separated (a delivery's flow_ids column).
func JoinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

// SplitIDs parses JoinIDs' output ("": none).
func SplitIDs(s string) ([]int64, error) {
	if s == "" {
		return nil, nil
	}
	var ids []int64
	for part := range strings.SplitSeq(s, ",") {
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("flow ids %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
