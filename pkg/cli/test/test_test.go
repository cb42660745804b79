package test_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects/shop/branches/main", 200, ci.Branch{ID: 3, ProjectID: 1, Name: "main"})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a.Reply("GET /api/v1/branches/3/tests/history", 200, []api.TestResult{
		{ID: 9, FlowID: 12, FlowKind: "ci", RunID: 30, JobName: "unit", Name: "t::x", Status: "failed", Change: "regr", Instability: 1, Created: at},
		{ID: 5, FlowID: 11, FlowKind: "dev", RunID: 29, JobName: "unit", Name: "t::x", Status: "passed", Change: "no-change", Age: 4, Created: at},
	})
	return a
}

func TestHistory(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	env := clitest.NewEnv(t, a)
	res := env.Run(t, "test", "history", "shop/main", "t::x", "--limit", "5", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, []string{"GET /api/v1/projects/shop/branches/main", "GET /api/v1/branches/3/tests/history?limit=5&name=t%3A%3Ax"}, a.Requests())
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 2)
	assert.EqualValues(t, 9, got[0]["id"])
	assert.Equal(t, "t::x", got[0]["name"])

	res = env.Run(t, "test", "history", "shop/main", "t::x")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, `FLOW  KIND  RUN  JOB   STATUS  CHANGE     INSTABILITY  AGE  WHEN
12    ci    30   unit  failed  regr       1            0    2026-01-02T03:04:05Z
11    dev   29   unit  passed  no-change  0            4    2026-01-02T03:04:05Z
`, res.Stdout)
}

func TestHistoryUsage(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	env := clitest.NewEnv(t, a)
	for _, args := range [][]string{
		{"test", "history", "shop"},
		{"test", "history", "shop", "t::x"},
		{"test", "history", "shop/main", "t::x", "--limit", "-2"},
	} {
		res := env.Run(t, args...)
		assert.Equal(t, cmdutil.ExitUsage, res.Code, "%v: %s", args, res.Stderr)
	}
	res := env.Run(t, "test", "history", "shop/nope", "t::x")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Empty(t, res.Stdout)
}
