package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// validSecretName is what a secret may be called: it appears in
// #{secrets.NAME} and in the legacy KK_SECRET_*_NAME variables.
var validSecretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// maxSecretSize bounds a secret's value (or key).
const maxSecretSize = 64 << 10

// secretRef is a reference to a secret in a stored step field, put there by
// the engine (pkg/engine SecretRefs) in place of the value: #{secrets.NAME},
// #{secrets.NAME.username}, #{secrets.NAME.key}.
var secretRef = regexp.MustCompile(`#\{secrets\.([A-Za-z_][A-Za-z0-9_-]{0,63})(?:\.(username|key))?\}`)

// credFields are the tool parameters that name a secret (Assignment.Creds).
var credFields = []string{"ssh-key", "access-token"}

func toAPISecret(sec store.Secret) api.Secret {
	return api.Secret{ID: sec.ID, Name: sec.Name, Kind: sec.Kind, Created: sec.Created, Updated: sec.Updated}
}

func (s *Server) requireCipher() error {
	if s.cfg.Secrets == nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable,
			"kkd has no secret key, so it cannot store secrets: start kkd with a data dir (it keeps the key in secret.key) or set KKD_SECRET_KEY")
	}
	return nil
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	list, err := s.cfg.Store.ListSecrets(r.Context(), p.ID)
	if err != nil {
		return err
	}
	out := make([]api.Secret, 0, len(list))
	for _, sec := range list {
		out = append(out, toAPISecret(sec))
	}
	return writeJSON(w, http.StatusOK, out)
}

// checkSecret validates a create request and returns the value to seal.
// Its errors never quote the value.
func checkSecret(req api.CreateSecret) (api.SecretValue, error) {
	if !validSecretName.MatchString(req.Name) {
		return api.SecretValue{}, badRequest("secret name %q is invalid: start with a letter or '_', then letters, digits, '_' and '-' (up to 64 characters)", req.Name)
	}
	v := api.SecretValue{Kind: req.Kind, Value: req.Value, Username: req.Username, Key: req.Key}
	switch req.Kind {
	case api.SecretSimple:
		if req.Value == "" {
			return v, badRequest("secret %q of kind simple has an empty value: give the value", req.Name)
		}
		if req.Key != "" || req.Username != "" {
			return v, badRequest("secret %q of kind simple takes only a value, not a key or username: use kind ssh-key for SSH keys", req.Name)
		}
		if len(req.Value) > maxSecretSize {
			return v, badRequest("the value of secret %q is %d bytes: at most %d are allowed", req.Name, len(req.Value), maxSecretSize)
		}
	case api.SecretSSHKey:
		if req.Value != "" {
			return v, badRequest("secret %q of kind ssh-key takes the private key in key, not value", req.Name)
		}
		if len(req.Key) > maxSecretSize {
			return v, badRequest("the key of secret %q is %d bytes: at most %d are allowed", req.Name, len(req.Key), maxSecretSize)
		}
		if len(req.Username) > 256 || strings.ContainsAny(req.Username, "\r\n") {
			return v, badRequest("the username of secret %q must be one line of at most 256 characters", req.Name)
		}
		if strings.TrimSpace(req.Key) == "" {
			return v, badRequest("secret %q of kind ssh-key has no key: give a private key (PEM or OpenSSH format)", req.Name)
		}
		if _, err := ssh.ParseRawPrivateKey([]byte(req.Key)); err != nil {
			var pme *ssh.PassphraseMissingError
			if errors.As(err, &pme) {
				return v, badRequest("the key of secret %q is protected by a passphrase: give a key without one (`ssh-keygen -p -N '' -f KEYFILE` on a copy removes it)", req.Name)
			}
			return v, badRequest("the key of secret %q is not a private key kkd can read: give a PEM or OpenSSH private key (the file ssh-keygen wrote, not the .pub)", req.Name)
		}
	default:
		return v, badRequest("secret kind %q is invalid: use %s or %s", req.Kind, api.SecretSimple, api.SecretSSHKey)
	}
	return v, nil
}

// sealSecret validates req and returns the store row of it.
func (s *Server) sealSecret(projectID int64, req api.CreateSecret) (store.Secret, error) {
	v, err := checkSecret(req)
	if err != nil {
		return store.Secret{}, err
	}
	if err := s.requireCipher(); err != nil {
		return store.Secret{}, err
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return store.Secret{}, fmt.Errorf("encode secret %q: %w", req.Name, err)
	}
	sealed, err := s.cfg.Secrets.Seal(projectID, req.Name, plain)
	if err != nil {
		return store.Secret{}, err
	}
	return store.Secret{ProjectID: projectID, Name: req.Name, Kind: req.Kind, Sealed: sealed}, nil
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	var req api.CreateSecret
	if err := decode(r, &req); err != nil {
		return err
	}
	sec, err := s.sealSecret(p.ID, req)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.CreateSecret(r.Context(), &sec); err != nil {
		if errors.Is(err, ci.ErrConflict) {
			return conflictf("project %q already has a secret %q: replace it with `kk secret create %s %s --force` or delete it first",
				p.Name, req.Name, p.Name, req.Name)
		}
		return err
	}
	s.cfg.Logger.Info("secret created", "project", p.Name, "secret", sec.Name, "kind", sec.Kind, "user", userFrom(r).Name)
	return writeJSON(w, http.StatusCreated, toAPISecret(sec))
}

func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	var req api.CreateSecret
	if err := decode(r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	if req.Name != "" && req.Name != name {
		return badRequest("the body names secret %q but the path %q: leave name out of the body or make them equal", req.Name, name)
	}
	req.Name = name
	sec, err := s.sealSecret(p.ID, req)
	if err != nil {
		return err
	}
	created, err := s.cfg.Store.PutSecret(r.Context(), &sec)
	if err != nil {
		return err
	}
	status, what := http.StatusOK, "secret replaced"
	if created {
		status, what = http.StatusCreated, "secret created"
	}
	s.cfg.Logger.Info(what, "project", p.Name, "secret", sec.Name, "kind", sec.Kind, "user", userFrom(r).Name)
	return writeJSON(w, status, toAPISecret(sec))
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := s.cfg.Store.DeleteSecret(r.Context(), p.ID, name); err != nil {
		if errors.Is(err, ci.ErrNotFound) {
			return notFoundf("project %q has no secret %q: see `kk secret list %s`", p.Name, name, p.Name)
		}
		return err
	}
	s.cfg.Logger.Info("secret deleted", "project", p.Name, "secret", name, "user", userFrom(r).Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// unresolvableError: a job's secrets cannot be handed out (a secret it
// names is missing, of the wrong kind, or cannot be decrypted). The job
// fails with this message instead of running with an empty value.
type unresolvableError struct{ msg string }

func (e *unresolvableError) Error() string { return e.msg }

// projectSecrets decrypts the project's secrets, by name.
func (s *Server) projectSecrets(ctx context.Context, p ci.Project) (map[string]api.SecretValue, error) {
	list, err := s.cfg.Store.ListSealedSecrets(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]api.SecretValue, len(list))
	if len(list) == 0 {
		return out, nil
	}
	if s.cfg.Secrets == nil {
		return nil, &unresolvableError{"kkd has no secret key, so it cannot decrypt the secrets of project " + p.Name +
			": start kkd with its data dir (secret.key) or KKD_SECRET_KEY"}
	}
	for _, sec := range list {
		plain, err := s.cfg.Secrets.Open(p.ID, sec.Name, sec.Sealed)
		if err != nil {
			s.cfg.Logger.Error("cannot decrypt a secret", "project", p.Name, "secret", sec.Name, "err", err)
			return nil, &unresolvableError{fmt.Sprintf("secret %q of project %s cannot be decrypted (kkd's secret key changed or the row was altered): create it again with `kk secret create %s %s --force`",
				sec.Name, p.Name, p.Name, sec.Name)}
		}
		var v api.SecretValue
		if err := json.Unmarshal(plain, &v); err != nil || v.Kind != sec.Kind {
			return nil, &unresolvableError{fmt.Sprintf("secret %q of project %s is damaged: create it again with `kk secret create %s %s --force`",
				sec.Name, p.Name, p.Name, sec.Name)}
		}
		out[sec.Name] = v
	}
	return out, nil
}

// resolveSecrets completes an assignment of project p with its secrets:
// every #{secrets.NAME[.username|.key]} reference in the step fields is
// replaced by the value, the secrets named by tool parameters (ssh-key,
// access-token) go to Creds, and every secret value of the project goes to
// Secrets, for the agent to redact. A reference to a secret that does not
// exist (or of the wrong kind) is an *unresolvableError.
func (s *Server) resolveSecrets(ctx context.Context, p ci.Project, asg *api.Assignment) error {
	vals, err := s.projectSecrets(ctx, p)
	if err != nil {
		return err
	}
	missing := func(name string) error {
		return &unresolvableError{fmt.Sprintf("the job uses secret %q, which project %s does not have: create it with `kk secret create %s %s` and rerun the job",
			name, p.Name, p.Name, name)}
	}
	for i, st := range asg.Steps {
		fields, err := resolveValue(st.Fields, func(name, part string) (string, error) {
			v, ok := vals[name]
			if !ok {
				return "", missing(name)
			}
			switch {
			case v.Kind == api.SecretSimple && part == "":
				return v.Value, nil
			case v.Kind == api.SecretSSHKey && part == "key":
				return v.Key, nil
			case v.Kind == api.SecretSSHKey && part == "username":
				return v.Username, nil
			case v.Kind == api.SecretSSHKey:
				return "", &unresolvableError{fmt.Sprintf("step %d uses ssh-key secret %q as a value: use #{secrets.%s.key} or #{secrets.%s.username}", st.Index, name, name, name)}
			}
			return "", &unresolvableError{fmt.Sprintf("step %d uses #{secrets.%s.%s}, but %q is a simple secret: use #{secrets.%s}", st.Index, name, part, name, name)}
		})
		if err != nil {
			return err
		}
		asg.Steps[i].Fields, _ = fields.(map[string]any)
		for _, f := range credFields {
			name, ok := st.Fields[f].(string)
			if !ok || name == "" {
				continue
			}
			v, ok := vals[name]
			if !ok {
				return &unresolvableError{fmt.Sprintf("step %d: %s names secret %q, which project %s does not have: create it with `kk secret create %s %s` and rerun the job",
					st.Index, f, name, p.Name, p.Name, name)}
			}
			if asg.Creds == nil {
				asg.Creds = map[string]api.SecretValue{}
			}
			asg.Creds[name] = v
		}
	}
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		v := vals[name]
		for _, x := range []string{v.Value, v.Key} {
			if x != "" && !slices.Contains(asg.Secrets, x) {
				asg.Secrets = append(asg.Secrets, x)
			}
		}
	}
	return nil
}

// resolveValue replaces the secret references in every string inside x
// (maps and lists, nested), returning a copy; value gives a reference's
// value. Values are inserted as they are, never resolved again.
func resolveValue(x any, value func(name, part string) (string, error)) (any, error) {
	switch x := x.(type) {
	case string:
		if !strings.Contains(x, "#{secrets.") {
			return x, nil
		}
		var err error
		out := secretRef.ReplaceAllStringFunc(x, func(ref string) string {
			m := secretRef.FindStringSubmatch(ref)
			v, e := value(m[1], m[2])
			if e != nil && err == nil {
				err = e
			}
			return v
		})
		return out, err
	case map[string]any:
		if x == nil {
			return x, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			v, err := resolveValue(e, value)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			v, err := resolveValue(e, value)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return x, nil
}

// writeUnresolvable fails job j, whose secrets cannot be handed out, and
// tells the agent there is no work for it this time.
func (s *Server) writeUnresolvable(w http.ResponseWriter, r *http.Request, j ci.Job, ue *unresolvableError) error {
	s.cfg.Logger.Warn("job failed: its secrets cannot be handed out", "job_id", j.ID, "err", ue.msg)
	if _, err := s.cfg.Engine.CompleteJob(r.Context(), j.ID, 0, ci.JobError, ue.msg); err != nil {
		return fmt.Errorf("fail job %d: %w", j.ID, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
