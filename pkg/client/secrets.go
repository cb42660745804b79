package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kraken-go/kk/pkg/api"
)

// ListSecrets lists a project's secrets (names and kinds, never values).
func (c *Client) ListSecrets(ctx context.Context, project string) ([]api.Secret, error) {
	return list[api.Secret](ctx, c, path("projects", project, "secrets"), nil)
}

// CreateSecret creates a secret in a project; it fails with a conflict when
// the project already has a secret of that name.
func (c *Client) CreateSecret(ctx context.Context, project string, in api.CreateSecret) (api.Secret, error) {
	var out api.Secret
	err := c.do(ctx, http.MethodPost, path("projects", project, "secrets"), nil, in, &out)
	return out, err
}

// PutSecret creates the secret in.Name or replaces its value.
func (c *Client) PutSecret(ctx context.Context, project string, in api.CreateSecret) (api.Secret, error) {
	var out api.Secret
	err := c.do(ctx, http.MethodPut, path("projects", project, "secrets", in.Name), nil, in, &out)
	return out, err
}

// DeleteSecret deletes a project's secret.
func (c *Client) DeleteSecret(ctx context.Context, project, name string) error {
	return c.do(ctx, http.MethodDelete, path("projects", project, "secrets", name), nil, nil, nil)
}

// WebhookSetup returns the project's webhook secret and paths, creating the
// secret on first use; rotate replaces it.
func (c *Client) WebhookSetup(ctx context.Context, project string, rotate bool) (api.WebhookSetup, error) {
	var out api.WebhookSetup
	err := c.do(ctx, http.MethodPost, path("projects", project, "webhook"), nil, api.WebhookRequest{Rotate: rotate}, &out)
	return out, err
}

// ListDeliveries returns the project's latest recorded webhook deliveries,
// newest first; limit <= 0: kkd's default.
func (c *Client) ListDeliveries(ctx context.Context, project string, limit int) ([]api.WebhookDelivery, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return list[api.WebhookDelivery](ctx, c, path("projects", project, "deliveries"), q)
}
