package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/kraken-go/kk/pkg/secrets"
)

// openSecrets loads the key that encrypts project secrets: KKD_SECRET_KEY,
// else the key file in the data dir (created on first start).
func openSecrets(o Options, log *slog.Logger) (*secrets.Cipher, error) {
	c, created, err := secrets.Load(o.DataDir, o.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("load the secret key: %w", err)
	}
	switch {
	case created:
		log.Warn("created a new key for project secrets: back it up together with the database (without it the secrets cannot be decrypted)",
			"path", filepath.Join(o.DataDir, secrets.KeyFile))
	case o.SecretKey != "":
		log.Info("project secrets are encrypted with the key from " + secrets.KeyEnv)
	}
	return c, nil
}
