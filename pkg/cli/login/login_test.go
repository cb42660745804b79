package login_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/config"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	a.Handle("POST /api/v1/login", func(w http.ResponseWriter, r *http.Request) {
		var in api.LoginRequest
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		if in.User != "admin" || in.Password != "s3cret" {
			clitest.Error(w, 401, api.CodeUnauthorized, "wrong user name or password")
			return
		}
		clitest.JSON(w, 200, api.LoginResponse{Token: clitest.Token, User: api.User{ID: 1, Name: "admin", Admin: true}})
	})
	a.Reply("GET /api/v1/projects", 200, []ci.Project{{ID: 1, Name: "demo"}})
	return a
}

// loggedOut is an environment without KK_SERVER and KK_TOKEN.
func loggedOut(t *testing.T) *clitest.Env {
	return clitest.NewEnv(t, nil)
}

func TestLoginStoresConfigAndLaterCommandsUseIt(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := loggedOut(t)
	e.Vars["KK_CONFIG"] = filepath.Join(t.TempDir(), "sub", "dir", "config.yaml")
	e.Stdin = "s3cret\n"
	res := e.Run(t, "login", "--server", a.URL+"/", "--user", "admin", "--password-stdin")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Empty(t, res.Stdout)
	assert.Contains(t, res.Stderr, "logged in to "+a.URL+" as admin")

	st, err := os.Stat(e.ConfigPath())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	cfg, err := config.Load(e.ConfigPath())
	require.NoError(t, err)
	assert.Equal(t, &config.Config{Server: a.URL, Token: clitest.Token}, cfg)

	e.Stdin = ""
	res = e.Run(t, "project", "list", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, `[{"id":1,"name":"demo","created":"0001-01-01T00:00:00Z"}]`, res.Stdout)
}

func TestConfigTokenIsNotSentToAnotherServer(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	other := fakeAPI(t)
	e := loggedOut(t)
	require.NoError(t, config.Save(e.ConfigPath(), &config.Config{Server: a.URL, Token: clitest.Token}))
	res := e.Run(t, "--server", other.URL, "project", "list")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "kk login --server "+other.URL)
	e.Vars["KK_SERVER"] = a.URL
	res = e.Run(t, "project", "list")
	assert.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
}

func TestLoginWrongPassword(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := loggedOut(t)
	e.Stdin = "nope\n"
	res := e.Run(t, "login", "--server", a.URL, "--user", "admin", "--password-stdin")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "wrong user name or password")
	assert.Contains(t, res.Stderr, "check the user name and password")
	_, err := os.Stat(e.ConfigPath())
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing stored")
}

func TestLoginPromptsOnTTY(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := loggedOut(t)
	e.TTY = true
	e.Stdin = "admin\n"
	e.Setup = func(ios *iostreams.IOStreams) {
		ios.SetPasswordReader(func() ([]byte, error) { return []byte("s3cret"), nil })
	}
	res := e.Run(t, "login", "--server", a.URL)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stderr, "User: ")
	assert.Contains(t, res.Stderr, "Password: ")
	assert.NotContains(t, res.Stderr, "s3cret")
}

func TestLoginUnreachable(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	url := a.URL
	a.Close()
	e := loggedOut(t)
	e.Stdin = "s3cret\n"
	res := e.Run(t, "login", "--server", url, "--user", "admin", "--password-stdin")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "cannot reach the kk server at "+url)
	assert.Contains(t, res.Stderr, "kkd serve")
}

func TestLoginUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{
		"login --user admin",            // stdin is not a terminal and no --password-stdin
		"login --password-stdin",        // no user and no terminal to ask
		"login extra --password-stdin",  // no arguments
		"login --user admin --password", // unknown flag
	} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := loggedOut(t).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}
