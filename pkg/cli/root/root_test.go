package root_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func TestBareKKShowsHelp(t *testing.T) {
	t.Parallel()
	res := clitest.NewEnv(t, nil).Run(t)
	assert.Equal(t, cmdutil.ExitOK, res.Code)
	assert.Contains(t, res.Stdout, "Available Commands:")
	assert.Contains(t, res.Stdout, "project")
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	res := clitest.NewEnv(t, nil).Run(t, "projet", "list")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	assert.Contains(t, res.Stderr, `unknown command "projet"`)
	assert.Contains(t, res.Stderr, `did you mean "project"?`)
}

func TestUnknownFlag(t *testing.T) {
	t.Parallel()
	res := clitest.NewEnv(t, nil).Run(t, "--bogus")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	assert.Contains(t, res.Stderr, "unknown flag: --bogus")
}

func TestBadOutputFormat(t *testing.T) {
	t.Parallel()
	res := clitest.NewEnv(t, nil).Run(t, "version", "-o", "xml")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	assert.Contains(t, res.Stderr, `invalid output format "xml": want table, json or yaml`)
}

func TestVersion(t *testing.T) {
	t.Parallel()
	e := clitest.NewEnv(t, nil)
	res := e.Run(t, "version")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, "kk version test\n", res.Stdout)
	res = e.Run(t, "version", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, `{"version":"test"}`, res.Stdout)
	res = e.Run(t, "--version")
	assert.Equal(t, "kk version test\n", res.Stdout)
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	e := clitest.NewEnv(t, nil)
	e.Vars["KK_SERVER"] = url
	res := e.Run(t, "project", "list")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "cannot reach the kk server at "+url)
	assert.Contains(t, res.Stderr, "kkd serve")
	assert.Contains(t, res.Stderr, "--server")
}

func TestServerFlagBeatsEnv(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/groups", 200, []any{})
	e := clitest.NewEnv(t, a)
	e.Vars["KK_SERVER"] = "http://127.0.0.1:1" // would fail
	res := e.Run(t, "--server", a.URL, "group", "list", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.JSONEq(t, "[]", res.Stdout)
}

func TestTokenFlagBeatsEnv(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/groups", 200, []any{})
	e := clitest.NewEnv(t, a)
	e.Vars["KK_TOKEN"] = "stale"
	res := e.Run(t, "--token", clitest.Token, "group", "list")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
}

func TestInvalidServerURL(t *testing.T) {
	t.Parallel()
	res := clitest.NewEnv(t, nil).Run(t, "--server", "localhost:6363", "project", "list")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "want http://HOST:PORT")
}

func TestHelpListsContractCommands(t *testing.T) {
	t.Parallel()
	e := clitest.NewEnv(t, nil)
	for _, args := range [][]string{
		{"login", "--help"}, {"schema", "check", "--help"}, {"project", "create", "--help"},
		{"branch", "create", "--help"}, {"stage", "apply", "--help"}, {"flow", "run", "--help"},
		{"run", "rerun", "--help"}, {"job", "logs", "--help"}, {"agent", "authorize", "--help"},
		{"group", "add", "--help"}, {"completion", "--help"},
	} {
		res := e.Run(t, args...)
		assert.Equal(t, cmdutil.ExitOK, res.Code, "%v: %s", args, res.Stderr)
		assert.Contains(t, res.Stdout, "Usage:", args)
	}
}

func TestCompletionCommand(t *testing.T) {
	t.Parallel()
	e := clitest.NewEnv(t, nil)
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		res := e.Run(t, "completion", sh)
		assert.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
		assert.Contains(t, res.Stdout, "kk", sh)
	}
	res := e.Run(t, "completion", "tcsh")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	res = e.Run(t, "completion")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
}

func TestDynamicCompletion(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects", 200, []map[string]any{{"id": 1, "name": "demo"}})
	a.Reply("GET /api/v1/projects/demo/branches", 200, []map[string]any{{"id": 7, "name": "feature/x"}})
	e := clitest.NewEnv(t, a)
	res := e.Run(t, "__complete", "flow", "run", "")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "demo/\n")
	res = e.Run(t, "__complete", "flow", "run", "demo/")
	assert.Contains(t, res.Stdout, "demo/feature/x\n")
	res = e.Run(t, "__complete", "project", "show", "")
	assert.Contains(t, res.Stdout, "demo\n")
}

func TestJSONGoesToStdoutMessagesToStderr(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("POST /api/v1/groups", 201, map[string]any{"id": 5, "name": "g"})
	res := clitest.NewEnv(t, a).Run(t, "group", "create", "g", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &v), "stdout is pure JSON")
	assert.Contains(t, res.Stderr, "created group g")
}
