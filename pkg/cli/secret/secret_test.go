package secret_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

const value = "the-s3cret-value"

// fakeAPI records the secrets sent to it.
type fakeAPI struct {
	*clitest.API
	mu   sync.Mutex
	sent []string // "METHOD name kind value|key username"
}

func newFakeAPI(t *testing.T) *fakeAPI {
	a := &fakeAPI{API: clitest.NewAPI(t)}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	save := func(w http.ResponseWriter, r *http.Request, name string, status int) {
		var in api.CreateSecret
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		if name == "" {
			name = in.Name
		}
		if name == "taken" && r.Method == http.MethodPost {
			clitest.Error(w, 409, api.CodeConflict, `project "p" already has a secret "taken": replace it with --force`)
			return
		}
		a.mu.Lock()
		a.sent = append(a.sent, r.Method+" "+name+" "+in.Kind+" "+in.Value+in.Key+" "+in.Username)
		a.mu.Unlock()
		clitest.JSON(w, status, api.Secret{ID: 7, Name: name, Kind: in.Kind, Created: now, Updated: now})
	}
	a.Handle("POST /api/v1/projects/p/secrets", func(w http.ResponseWriter, r *http.Request) { save(w, r, "", 201) })
	a.Handle("PUT /api/v1/projects/p/secrets/{name}", func(w http.ResponseWriter, r *http.Request) { save(w, r, r.PathValue("name"), 200) })
	a.Reply("GET /api/v1/projects/p/secrets", 200, []api.Secret{{ID: 1, Name: "deploy", Kind: "ssh-key", Created: now, Updated: now}, {ID: 2, Name: "token", Kind: "simple", Created: now, Updated: now}})
	a.Reply("GET /api/v1/projects/empty/secrets", 200, []api.Secret{})
	a.Handle("DELETE /api/v1/projects/p/secrets/{name}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	return a
}

func (a *fakeAPI) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.sent...)
}

func TestCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "v.txt")
	require.NoError(t, os.WriteFile(file, []byte(value+"\n"), 0o600))
	keyFile := filepath.Join(dir, "id")
	require.NoError(t, os.WriteFile(keyFile, []byte("-----BEGIN KEY-----\nabc\n-----END KEY-----\n"), 0o600))
	for _, tc := range []struct {
		name  string
		args  string
		stdin string
		tty   bool
		want  string
		out   string
	}{
		{"stdin pipe drops one newline", "secret create p token", value + "\n\n", false, "POST token simple " + value + "\n ", "created secret token (simple) in project p"},
		{"stdin without newline", "secret create p token", value, false, "POST token simple " + value + " ", "created"},
		{"from file", "secret create p token --from-file " + file, "ignored", false, "POST token simple " + value + " ", "created"},
		{"force replaces", "secret create p token --force --from-file " + file, "", false, "PUT token simple " + value + " ", "saved secret token"},
		{"terminal prompt", "secret create p token", "", true, "POST token simple typed-value ", "Value of secret token: "},
		{"ssh key keeps newlines", "secret create p deploy --kind ssh-key --username git --from-file " + keyFile, "", false,
			"POST deploy ssh-key -----BEGIN KEY-----\nabc\n-----END KEY-----\n git", "created secret deploy (ssh-key)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newFakeAPI(t)
			e := clitest.NewEnv(t, a.API)
			e.Stdin, e.TTY = tc.stdin, tc.tty
			e.Setup = func(ios *iostreams.IOStreams) {
				ios.SetPasswordReader(func() ([]byte, error) { return []byte("typed-value"), nil })
			}
			res := e.Run(t, clitest.Args(tc.args)...)
			require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
			assert.Equal(t, []string{tc.want}, a.got())
			assert.Contains(t, res.Stderr, tc.out)
			assert.NotContains(t, res.Stdout+res.Stderr, value)
			assert.NotContains(t, res.Stdout+res.Stderr, "typed-value")
		})
	}
}

func TestCreateJSON(t *testing.T) {
	t.Parallel()
	a := newFakeAPI(t)
	e := clitest.NewEnv(t, a.API)
	e.Stdin = value
	res := e.Run(t, "secret", "create", "p", "token", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var s map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &s))
	assert.Equal(t, "token", s["name"])
	assert.EqualValues(t, 7, s["id"])
	assert.NotContains(t, res.Stdout, value)
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  string
		stdin string
		tty   bool
		code  cmdutil.ExitCode
		want  string
	}{
		{"no name", "secret create p", "", false, cmdutil.ExitUsage, "missing project or secret name"},
		{"bad kind", "secret create p x --kind password", "v", false, cmdutil.ExitUsage, `--kind "password"`},
		{"username for simple", "secret create p x --username u", "v", false, cmdutil.ExitUsage, "--username is for --kind ssh-key"},
		{"empty stdin", "secret create p x", "\n", false, cmdutil.ExitError, "is empty"},
		{"missing file", "secret create p x --from-file /nonexistent/file", "", false, cmdutil.ExitError, "no such file"},
		{"ssh key on a terminal", "secret create p x --kind ssh-key", "", true, cmdutil.ExitUsage, "--from-file KEYFILE"},
		{"conflict", "secret create p taken", "v4lue", false, cmdutil.ExitError, "--force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newFakeAPI(t)
			e := clitest.NewEnv(t, a.API)
			e.Stdin, e.TTY = tc.stdin, tc.tty
			res := e.Run(t, clitest.Args(tc.args)...)
			require.Equal(t, tc.code, res.Code, res.Stderr)
			assert.Contains(t, res.Stderr, tc.want)
			assert.Empty(t, a.got(), "nothing was stored")
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	a := newFakeAPI(t)
	e := clitest.NewEnv(t, a.API)
	res := e.Run(t, "secret", "list", "p", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 2)
	for _, s := range got {
		assert.Contains(t, s, "id")
		assert.Contains(t, s, "name")
		assert.NotContains(t, s, "value")
	}
	res = e.Run(t, "secret", "list", "p")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "deploy")
	assert.Contains(t, res.Stdout, "ssh-key")
	res = e.Run(t, "secret", "list", "empty")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Empty(t, res.Stdout)
	assert.Contains(t, res.Stderr, "kk secret create empty NAME")
	res = e.Run(t, "secret", "list", "empty", "-o", "json")
	assert.JSONEq(t, "[]", res.Stdout)
}

func TestDelete(t *testing.T) {
	t.Parallel()
	a := newFakeAPI(t)
	res := clitest.NewEnv(t, a.API).Run(t, "secret", "delete", "p", "token")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "DELETE /api/v1/projects/p/secrets/token")
	assert.Contains(t, res.Stderr, "deleted secret token of project p")
}
