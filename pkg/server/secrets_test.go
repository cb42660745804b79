package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/server"
	"github.com/kraken-go/kk/pkg/store"
)

const (
	tokenValue = "tok-3f9a8c7e-VALUE"
	otherValue = "replaced-VALUE-77"
)

// newSecretEnv is an env with a secret key.
func newSecretEnv(t *testing.T) *env {
	t.Helper()
	c, err := secrets.New(bytes.Repeat([]byte{1}, secrets.KeySize))
	require.NoError(t, err)
	return newEnv(t, func(cfg *server.Config) { cfg.Secrets = c })
}

// testSSHKey returns a new OpenSSH private key (PEM) and, protected by a
// passphrase, another one.
func testSSHKey(t *testing.T) (plain, protected string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	b, err := ssh.MarshalPrivateKey(priv, "test key")
	require.NoError(t, err)
	pb, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte("pass"))
	require.NoError(t, err)
	return string(pem.EncodeToMemory(b)), string(pem.EncodeToMemory(pb))
}

// noValue requires that none of the values appears in body.
func noValue(t *testing.T, body []byte, values ...string) {
	t.Helper()
	for _, v := range values {
		require.NotContains(t, string(body), v)
		for _, line := range strings.Split(v, "\n") {
			if len(line) > 20 {
				require.NotContains(t, string(body), line)
			}
		}
	}
}

func (e *env) sealed(t *testing.T, projectID int64) []store.Secret {
	t.Helper()
	list, err := e.st.ListSealedSecrets(context.Background(), projectID)
	require.NoError(t, err)
	return list
}

func TestSecretRoutes(t *testing.T) {
	t.Parallel()
	e := newSecretEnv(t)
	p := e.project(t, "proj")
	key, _ := testSSHKey(t)
	values := []string{tokenValue, otherValue, key}

	var sec api.Secret
	r := e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "token", Kind: "simple", Value: tokenValue})
	r.ok(t, http.StatusCreated, &sec)
	noValue(t, r.body, values...)
	require.Equal(t, api.Secret{ID: sec.ID, Name: "token", Kind: "simple", Created: sec.Created, Updated: sec.Updated}, sec)
	require.NotZero(t, sec.ID)

	r = e.user(t, "PUT", fmt.Sprintf("/projects/%d/secrets/deploy_key", p.ID), api.CreateSecret{Kind: "ssh-key", Key: key, Username: "git"})
	r.ok(t, http.StatusCreated, &sec)
	noValue(t, r.body, values...)
	require.Equal(t, "ssh-key", sec.Kind)

	r = e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "token", Kind: "simple", Value: otherValue})
	require.Contains(t, r.envelope(t, http.StatusConflict, api.CodeConflict).Message, "--force")
	noValue(t, r.body, values...)

	r = e.user(t, "PUT", "/projects/proj/secrets/token", api.CreateSecret{Name: "token", Kind: "simple", Value: otherValue})
	r.ok(t, http.StatusOK, &sec)
	noValue(t, r.body, values...)

	var list []api.Secret
	r = e.user(t, "GET", "/projects/proj/secrets", nil)
	r.ok(t, http.StatusOK, &list)
	noValue(t, r.body, values...)
	require.Len(t, list, 2)
	require.Equal(t, []string{"deploy_key", "token"}, []string{list[0].Name, list[1].Name})
	require.True(t, list[1].Updated.After(list[1].Created) || list[1].Updated.Equal(list[1].Created))

	// At rest only ciphertext.
	for _, s := range e.sealed(t, p.ID) {
		noValue(t, s.Sealed, values...)
	}

	e.user(t, "DELETE", "/projects/proj/secrets/token", nil).ok(t, http.StatusNoContent, nil)
	r = e.user(t, "DELETE", "/projects/proj/secrets/token", nil)
	require.Contains(t, r.envelope(t, http.StatusNotFound, api.CodeNotFound).Message, "kk secret list proj")
	e.user(t, "GET", "/projects/proj/secrets", nil).ok(t, http.StatusOK, &list)
	require.Len(t, list, 1)

	r = e.user(t, "GET", "/projects/nope/secrets", nil)
	r.envelope(t, http.StatusNotFound, api.CodeNotFound)
	r = e.call(t, "GET", "/projects/proj/secrets", nil, "")
	r.envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
}

func TestSecretValidation(t *testing.T) {
	t.Parallel()
	e := newSecretEnv(t)
	p := e.project(t, "proj")
	e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "token", Kind: "simple", Value: tokenValue}).ok(t, http.StatusCreated, nil)
	key, protected := testSSHKey(t)
	big := strings.Repeat("x", 64<<10+1)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		want   string
	}{
		{"bad name", "POST", "", api.CreateSecret{Name: "1abc", Kind: "simple", Value: otherValue}, 400, "secret name \"1abc\" is invalid"},
		{"name with dot", "POST", "", api.CreateSecret{Name: "a.b", Kind: "simple", Value: otherValue}, 400, "is invalid"},
		{"long name", "POST", "", api.CreateSecret{Name: strings.Repeat("a", 65), Kind: "simple", Value: otherValue}, 400, "up to 64"},
		{"bad kind", "POST", "", api.CreateSecret{Name: "x", Kind: "password", Value: otherValue}, 400, "use simple or ssh-key"},
		{"no kind", "POST", "", api.CreateSecret{Name: "x", Value: otherValue}, 400, "secret kind \"\" is invalid"},
		{"empty value", "POST", "", api.CreateSecret{Name: "x", Kind: "simple"}, 400, "empty value"},
		{"simple with key", "POST", "", api.CreateSecret{Name: "x", Kind: "simple", Value: otherValue, Key: key}, 400, "use kind ssh-key"},
		{"too large", "POST", "", api.CreateSecret{Name: "x", Kind: "simple", Value: big}, 400, "at most 65536"},
		{"ssh-key without key", "POST", "", api.CreateSecret{Name: "x", Kind: "ssh-key"}, 400, "has no key"},
		{"ssh-key not a key", "POST", "", api.CreateSecret{Name: "x", Kind: "ssh-key", Key: otherValue}, 400, "not a private key"},
		{"ssh-key with passphrase", "POST", "", api.CreateSecret{Name: "x", Kind: "ssh-key", Key: protected}, 400, "passphrase"},
		{"ssh-key with value", "POST", "", api.CreateSecret{Name: "x", Kind: "ssh-key", Value: otherValue}, 400, "not value"},
		{"ssh-key username lines", "POST", "", api.CreateSecret{Name: "x", Kind: "ssh-key", Key: key, Username: "a\nb"}, 400, "one line"},
		{"put replacing with bad input", "PUT", "/token", api.CreateSecret{Kind: "simple"}, 400, "empty value"},
		{"put name mismatch", "PUT", "/token", api.CreateSecret{Name: "other", Kind: "simple", Value: otherValue}, 400, "leave name out"},
		{"put bad path name", "PUT", "/9x", api.CreateSecret{Kind: "simple", Value: otherValue}, 400, "is invalid"},
		{"unknown field", "POST", "", `{"name":"x","kind":"simple","value":"v","extra":1}`, 400, "unknown field"},
		{"not json", "POST", "", `{"name":`, 400, "malformed JSON"},
		{"conflict", "POST", "", api.CreateSecret{Name: "token", Kind: "simple", Value: otherValue}, 409, "already has a secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			sealedBefore := e.sealed(t, p.ID)
			r := e.user(t, tc.method, "/projects/proj/secrets"+tc.path, tc.body)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			require.Contains(t, requireEnvelope(t, tc.status, r.body, "").Message, tc.want)
			noValue(t, r.body, tokenValue, otherValue, key, protected)
			e.unchanged(t, before)
			require.Equal(t, sealedBefore, e.sealed(t, p.ID), "a bad request changes no secret")
		})
	}
}

func TestSecretsWithoutKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.project(t, "proj")
	r := e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "x", Kind: "simple", Value: otherValue})
	require.Contains(t, r.envelope(t, http.StatusServiceUnavailable, api.CodeUnavailable).Message, "KKD_SECRET_KEY")
}

// secretStage uses secrets in every way a stage can.
const secretStage = `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "steps": [
                {"tool": "shell", "cmd": "echo #{secrets.token} #{KK_SECRET_USER_deploy}", "env": {"TOKEN": "#{secrets.token}", "LEGACY": "#{KK_SECRET_SIMPLE_token}"},
                 "ssh-key": "deploy"},
                {"tool": "shell", "cmd": "echo %s" % ctx.secrets.deploy.key, "user": "#{secrets.deploy.username}"},
                {"tool": "git", "checkout": "https://example.invalid/x.git", "access-token": "token"},
            ],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

func TestSecretsResolvedAtHandOut(t *testing.T) {
	t.Parallel()
	e := newSecretEnv(t)
	e.project(t, "proj")
	b := e.branch(t, "proj", "main")
	key, _ := testSSHKey(t)
	e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "token", Kind: "simple", Value: tokenValue}).ok(t, http.StatusCreated, nil)
	e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "deploy", Kind: "ssh-key", Key: key, Username: "gituser"}).ok(t, http.StatusCreated, nil)
	e.stage(t, b.ID, "build", secretStage)

	f := e.flow(t, b.ID)
	require.Len(t, f.Runs, 1)
	require.Len(t, f.Runs[0].Jobs, 1, "note: %s", f.Runs[0].Note)
	jobID := f.Runs[0].Jobs[0].ID

	// What users see: references, no values.
	r := e.user(t, "GET", fmt.Sprintf("/jobs/%d", jobID), nil)
	var jd api.JobDetail
	r.ok(t, http.StatusOK, &jd)
	noValue(t, r.body, tokenValue, key)
	require.Equal(t, "echo #{secrets.token} #{secrets.deploy.username}", jd.Steps[0].Fields["cmd"])
	require.Equal(t, "echo #{secrets.deploy.key}", jd.Steps[1].Fields["cmd"])
	noValue(t, e.user(t, "GET", fmt.Sprintf("/flows/%d", f.ID), nil).body, tokenValue, key)

	a := e.agent(t, "alice")
	asg := e.claim(t, a)
	require.Equal(t, jobID, asg.JobID)
	s0, s1, s2 := asg.Steps[0].Fields, asg.Steps[1].Fields, asg.Steps[2].Fields
	require.Equal(t, "echo "+tokenValue+" gituser", s0["cmd"])
	require.Equal(t, map[string]any{"TOKEN": tokenValue, "LEGACY": tokenValue}, s0["env"])
	require.Equal(t, "echo "+key, s1["cmd"])
	require.Equal(t, "gituser", s1["user"])
	require.Equal(t, "token", s2["access-token"], "a tool parameter names the secret")
	require.Equal(t, map[string]api.SecretValue{
		"deploy": {Kind: "ssh-key", Key: key, Username: "gituser"},
		"token":  {Kind: "simple", Value: tokenValue},
	}, asg.Creds)
	require.ElementsMatch(t, []string{tokenValue, key}, asg.Secrets)

	// The stored job still holds references only.
	j := e.job(t, jobID)
	require.Equal(t, "echo #{secrets.token} #{secrets.deploy.username}", j.Steps[0].Fields["cmd"])
}

func TestMissingSecretFailsJob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		steps string
		want  string
	}{
		{"deleted before hand-out", `{"tool": "shell", "cmd": "echo #{secrets.token}"}`,
			"the job uses secret \"token\", which project proj does not have: create it with `kk secret create proj token`"},
		{"never created", `{"tool": "shell", "cmd": "echo #{secrets.ghost.key}"}`,
			"the job uses secret \"ghost\", which project proj does not have: create it with `kk secret create proj ghost`"},
		{"tool parameter names a missing secret", `{"tool": "shell", "cmd": "true", "ssh-key": "nokey"}`,
			"ssh-key names secret \"nokey\", which project proj does not have: create it with `kk secret create proj nokey`"},
		{"other secrets still resolve", `{"tool": "shell", "cmd": "echo #{secrets.keep}", "env": {"X": "#{secrets.keep}"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newSecretEnv(t)
			e.project(t, "proj")
			b := e.branch(t, "proj", "main")
			e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "token", Kind: "simple", Value: tokenValue}).ok(t, http.StatusCreated, nil)
			e.user(t, "POST", "/projects/proj/secrets", api.CreateSecret{Name: "keep", Kind: "simple", Value: otherValue}).ok(t, http.StatusCreated, nil)
			e.stage(t, b.ID, "build", strings.Replace(stageCode("all", 1), `{"tool": "shell", "name": "step0", "cmd": "echo 0"}`, tc.steps, 1))
			f := e.flow(t, b.ID)
			require.Len(t, f.Runs[0].Jobs, 1, "note: %s", f.Runs[0].Note)
			jobID := f.Runs[0].Jobs[0].ID
			e.user(t, "DELETE", "/projects/proj/secrets/token", nil).ok(t, http.StatusNoContent, nil)

			a := e.agent(t, "alice")
			r := e.call(t, "POST", "/agent/work?wait=1", nil, a.cred)
			if tc.want == "" {
				var asg api.Assignment
				r.ok(t, http.StatusOK, &asg)
				require.Equal(t, "echo "+otherValue, asg.Steps[0].Fields["cmd"])
				return
			}
			require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
			j := e.job(t, jobID)
			require.Equal(t, ci.JobCompleted, j.State)
			require.Equal(t, ci.JobError, j.Result)
			require.Contains(t, j.Message, tc.want)
			ag := e.agentState(t, "alice")
			require.Zero(t, ag.JobID, "the agent is free again")
		})
	}
}
