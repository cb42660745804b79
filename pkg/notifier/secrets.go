package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
)

// secretRef is a secret reference left in a notification value by the
// engine: #{secrets.NAME}, #{secrets.NAME.username}, #{secrets.NAME.key}.
var secretRef = regexp.MustCompile(`#\{secrets\.([A-Za-z_][A-Za-z0-9_-]{0,63})(?:\.(username|key))?\}`)

// projectSecrets opens the project's secrets. An error is returned only
// when a value names a secret (see resolveValue).
func (n *Notifier) projectSecrets(ctx context.Context, projectID int64, project string) (map[string]api.SecretValue, error) {
	list, err := n.cfg.Store.ListSealedSecrets(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("list the secrets of project %s: %w", project, err)
	}
	out := make(map[string]api.SecretValue, len(list))
	if len(list) == 0 {
		return out, nil
	}
	if n.cfg.Secrets == nil {
		return nil, errors.New("kkd has no secret key, so it cannot decrypt the secrets of project " + project + ": start kkd with its data dir (secret.key) or KKD_SECRET_KEY")
	}
	for _, sec := range list {
		plain, err := n.cfg.Secrets.Open(projectID, sec.Name, sec.Sealed)
		if err != nil {
			return nil, fmt.Errorf("secret %q of project %s cannot be decrypted: create it again with `kk secret create %s %s --force`", sec.Name, project, project, sec.Name)
		}
		var v api.SecretValue
		if err := json.Unmarshal(plain, &v); err != nil {
			return nil, fmt.Errorf("secret %q of project %s is damaged: create it again with `kk secret create %s %s --force`", sec.Name, project, project, sec.Name)
		}
		out[sec.Name] = v
	}
	return out, nil
}

// resolveValue replaces the secret references in every string of x with
// the secrets' values. loadErr is the error of loading them, reported only
// when x names a secret.
func resolveValue(x any, vals map[string]api.SecretValue, loadErr error, project string) (any, error) {
	switch x := x.(type) {
	case string:
		if !strings.Contains(x, "#{secrets.") {
			return x, nil
		}
		if loadErr != nil {
			return nil, loadErr
		}
		var err error
		out := secretRef.ReplaceAllStringFunc(x, func(ref string) string {
			m := secretRef.FindStringSubmatch(ref)
			v, ok := vals[m[1]]
			if !ok {
				if err == nil {
					err = fmt.Errorf("the notification uses secret %q, which project %s does not have: create it with `kk secret create %s %s`", m[1], project, project, m[1])
				}
				return ""
			}
			switch m[2] {
			case "key":
				return v.Key
			case "username":
				return v.Username
			}
			return v.Value
		})
		return out, err
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			v, err := resolveValue(e, vals, loadErr, project)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			v, err := resolveValue(e, vals, loadErr, project)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return x, nil
}
