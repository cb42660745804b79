package engine

import (
	"context"

	"github.com/kraken-go/kk/pkg/api"
)

// SecretRefs is what a stage sees of its project's secrets: references, not
// values. A simple secret x reads as the string "#{secrets.x}", an ssh-key
// secret k as {"username": "#{secrets.k.username}", "key": "#{secrets.k.key}"}
// (the legacy KK_SECRET_SIMPLE_x, KK_SECRET_USER_k and KK_SECRET_KEY_k map to
// the same). Interpolated step fields therefore store references, which
// users may see; kkd replaces them by the values only when it hands the job
// to an agent (pkg/server resolveSecrets), so no value is ever stored in a
// job or shown by the API.
//
// A reference to a secret the project does not have reads as None (empty),
// like any missing key of ctx.secrets. When the secrets cannot be listed the
// error is logged and the stage sees none.
func (e *Engine) SecretRefs(ctx context.Context, projectID int64) map[string]any {
	list, err := e.cfg.Store.ListSecrets(ctx, projectID)
	if err != nil {
		e.cfg.Logger.Error("list the project's secrets for a stage context", "project_id", projectID, "err", err)
		return nil
	}
	if len(list) == 0 {
		return nil
	}
	refs := make(map[string]any, len(list))
	for _, s := range list {
		ref := "#{secrets." + s.Name
		if s.Kind == api.SecretSSHKey {
			refs[s.Name] = map[string]any{"username": ref + ".username}", "key": ref + ".key}"}
			continue
		}
		refs[s.Name] = ref + "}"
	}
	return refs
}
