package store

import (
	"context"
	"time"
)

// Secret is a project secret as stored: its value only in sealed form
// (encrypted by pkg/secrets, bound to ProjectID and Name). The store never
// sees a plaintext value.
type Secret struct {
	ID        int64
	ProjectID int64
	Name      string
	Kind      string // api.SecretSimple or api.SecretSSHKey
	// Sealed is the encrypted value; empty in ListSecrets results.
	Sealed  []byte
	Created time.Time
	Updated time.Time
}

// SecretStore holds project secrets. Secrets are deleted with their project.
type SecretStore interface {
	// PutSecret creates the secret, or replaces Kind and Sealed of the
	// project's secret of the same name (keeping ID and Created). It sets
	// s.ID, s.Created and s.Updated; created tells whether it was new.
	// ErrNotFound if the project does not exist; ErrInvalid for an empty
	// name or kind.
	PutSecret(ctx context.Context, s *Secret) (created bool, err error)
	// CreateSecret inserts the secret and sets s.ID, s.Created and s.Updated.
	// ErrConflict if the project has a secret of that name; ErrNotFound if
	// the project does not exist.
	CreateSecret(ctx context.Context, s *Secret) error
	// GetSecret returns the project's secret with its sealed value.
	GetSecret(ctx context.Context, projectID int64, name string) (Secret, error)
	// ListSecrets returns the project's secrets ordered by name, without
	// their sealed values.
	ListSecrets(ctx context.Context, projectID int64) ([]Secret, error)
	// ListSealedSecrets returns the project's secrets ordered by name, with
	// their sealed values (to hand them out with a job).
	ListSealedSecrets(ctx context.Context, projectID int64) ([]Secret, error)
	// DeleteSecret deletes the project's secret. ErrNotFound if there is none.
	DeleteSecret(ctx context.Context, projectID int64, name string) error
}
