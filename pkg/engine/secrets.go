package engine

import (
	"context"
	"regexp"

	"github.com/kraken-go/kk/pkg/api"
)

// Ways stage code names a secret: ctx.secrets.NAME, secrets.NAME in #{...},
// secrets["NAME"], and Kraken's legacy KK_SECRET_{SIMPLE,USER,KEY}_NAME.
var (
	secretAttr   = regexp.MustCompile(`secrets\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)(\s*\.\s*(?:key|username|user)\b)?`)
	secretIndex  = regexp.MustCompile(`secrets\s*\[\s*["']([A-Za-z_][A-Za-z0-9_-]{0,63})["']\s*\](\s*(?:\.\s*(?:key|username|user)\b|\[\s*["'](?:key|username|user)["']))?`)
	secretLegacy = regexp.MustCompile(`KK_SECRET_(SIMPLE|USER|KEY)_([A-Za-z_][A-Za-z0-9_-]{0,63})`)
	// mapMethods of the secrets dict take precedence over keys of the same name.
	secretMethods = map[string]bool{"get": true, "items": true, "keys": true, "values": true}
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
// A secret the stage code names (see secretAttr, secretIndex, secretLegacy)
// that the project does not have gets a reference too: whether it exists is
// decided at hand-out, which fails the job with a message saying how to
// create it, instead of running it with an empty value. When the secrets
// cannot be listed the error is logged and only the named ones are seen.
func (e *Engine) SecretRefs(ctx context.Context, projectID int64, code string) map[string]any {
	refs := map[string]any{}
	simple := func(name string) string { return "#{secrets." + name + "}" }
	keyRef := func(name string) map[string]any {
		return map[string]any{"username": "#{secrets." + name + ".username}", "key": "#{secrets." + name + ".key}"}
	}
	// Named in the code: a reference of the kind the code uses.
	named := func(name string, asKey bool) {
		if secretMethods[name] {
			return
		}
		if _, seen := refs[name]; seen && !asKey {
			return
		}
		if asKey {
			refs[name] = keyRef(name)
		} else {
			refs[name] = simple(name)
		}
	}
	for _, m := range secretAttr.FindAllStringSubmatch(code, -1) {
		named(m[1], m[2] != "")
	}
	for _, m := range secretIndex.FindAllStringSubmatch(code, -1) {
		named(m[1], m[2] != "")
	}
	for _, m := range secretLegacy.FindAllStringSubmatch(code, -1) {
		named(m[2], m[1] != "SIMPLE")
	}
	list, err := e.cfg.Store.ListSecrets(ctx, projectID)
	if err != nil {
		e.cfg.Logger.Error("list the project's secrets for a stage context", "project_id", projectID, "err", err)
	}
	// Existing secrets: a reference of their kind.
	for _, s := range list {
		if s.Kind == api.SecretSSHKey {
			refs[s.Name] = keyRef(s.Name)
		} else {
			refs[s.Name] = simple(s.Name)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	return refs
}
