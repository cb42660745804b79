package run_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

var sampleResults = []api.TestResult{
	{ID: 1, JobID: 20, JobName: "unit", RunID: 4, Name: "pkg/b::bad", Status: "failed", Change: "regr", Instability: 1, Relevancy: 6, Analyzed: true},
	{ID: 2, JobID: 20, JobName: "unit", RunID: 4, Name: "pkg/a::ok", Status: "passed", Change: "no-change", Age: 3, Relevancy: 2, Analyzed: true},
	{ID: 3, JobID: 20, JobName: "unit", RunID: 4, Name: "pkg/c::wip", Status: "not-run"},
}

func TestResultsQuery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, args, request string
	}{
		{"default", "run results 4", "GET /api/v1/runs/4/results?sort=relevancy"},
		{"filters", "run results 4 --status failed --change regr --min-instability 2 --name pkg/* --job unit --sort name",
			"GET /api/v1/runs/4/results?change=regr&job=unit&min_instability=2&name=pkg%2F%2A&sort=name&status=failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := clitest.NewAPI(t)
			a.Reply("GET /api/v1/runs/4/results", 200, sampleResults)
			res := clitest.NewEnv(t, a).Run(t, append(clitest.Args(tc.args), "-o", "json")...)
			require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
			assert.Equal(t, []string{tc.request}, a.Requests())
			var got []map[string]any
			require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
			require.Len(t, got, 3)
			assert.EqualValues(t, 1, got[0]["id"])
			assert.Equal(t, "regr", got[0]["change"])
			assert.EqualValues(t, 1, got[0]["instability"])
		})
	}
}

func TestResultsTable(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/runs/4/results", 200, sampleResults)
	res := clitest.NewEnv(t, a).Run(t, "run", "results", "4")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, `JOB   TEST        STATUS   CHANGE     INSTABILITY  AGE  RELEVANCY
unit  pkg/b::bad  failed   regr       1            0    6
unit  pkg/a::ok   passed   no-change  0            3    2
unit  pkg/c::wip  not-run  (pending)  0            0    0
`, res.Stdout)
	assert.NotContains(t, res.Stdout, "\x1b[", "no colours without a terminal")

	env := clitest.NewEnv(t, a)
	env.TTY = true
	res = env.Run(t, "run", "results", "4")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "\x1b[", "coloured statuses on a terminal")
}

func TestResultsEmptyAndErrors(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/runs/4/results", 200, []api.TestResult{})
	a.Handle("GET /api/v1/runs/5/results", func(w http.ResponseWriter, r *http.Request) {
		clitest.Error(w, 400, api.CodeBadRequest, `status="green" is unknown`)
	})
	env := clitest.NewEnv(t, a)
	res := env.Run(t, "run", "results", "4")
	require.Equal(t, cmdutil.ExitOK, res.Code)
	assert.Empty(t, res.Stdout)
	assert.Contains(t, res.Stderr, "no test results in run 4 match")
	res = env.Run(t, "run", "results", "4", "-o", "json")
	assert.JSONEq(t, "[]", res.Stdout)
	res = env.Run(t, "run", "results", "5", "--status", "green")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, `status="green" is unknown`)
	res = env.Run(t, "run", "results", "x")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	res = env.Run(t, "run", "results", "4", "--min-instability", "-1")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
}

func TestIssues(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/runs/4/issues", 200, []api.Issue{
		{ID: 7, JobName: "lint", Path: "a.py", Line: 12, Type: "error", Symbol: "E1101", Message: "no member", Age: 0, New: true},
		{ID: 8, JobName: "lint", Path: "b.py", Line: 3, Type: "warning", Symbol: "W0611", Message: "unused import", Age: 4},
	})
	env := clitest.NewEnv(t, a)
	res := env.Run(t, "run", "issues", "4", "--new")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, []string{"GET /api/v1/runs/4/issues?new=1"}, a.Requests())
	assert.Equal(t, `JOB   LOCATION  TYPE     SYMBOL  AGE  MESSAGE
lint  a.py:12   error    E1101   new  no member
lint  b.py:3    warning  W0611   4    unused import
`, res.Stdout)
	res = env.Run(t, "run", "issues", "4", "-o", "json")
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.EqualValues(t, 7, got[0]["id"])
	assert.Equal(t, true, got[0]["new"])
}
