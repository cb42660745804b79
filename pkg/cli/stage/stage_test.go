package stage_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/stage"
)

const code = "def stage(ctx):\n    return {\"jobs\": []}\n"

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects/demo/branches/feature%2Fx", 200, ci.Branch{ID: 7, Name: "feature/x"})
	a.Reply("GET /api/v1/branches/7/stages", 200, []ci.Stage{
		{ID: 3, BranchID: 7, Name: "unit-tests", Enabled: true, Parent: "root", Schema: json.RawMessage(`{"parent":"root"}`)},
	})
	a.Handle("PUT /api/v1/branches/7/stages/{name}", func(w http.ResponseWriter, r *http.Request) {
		var in api.PutStage
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		if in.Code != code {
			clitest.Error(w, 400, api.CodeInvalidSchema, "invalid stage schema",
				api.ErrorDetail{Line: 3, Col: 5, Key: "jobs[0].steps[0].cmdd", Message: "unknown key"},
				api.ErrorDetail{Line: 1, Col: 1, Message: "second problem"})
			return
		}
		if in.Filename == "" {
			clitest.Error(w, 400, api.CodeBadRequest, "test: filename not sent")
			return
		}
		clitest.JSON(w, 200, ci.Stage{ID: 4, BranchID: 7, Name: r.PathValue("name"), Enabled: *in.Enabled, Code: in.Code, Parent: "root"})
	})
	a.Handle("DELETE /api/v1/stages/3", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	return a
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestApplyNamesStageAfterFile(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	file := writeFile(t, "unit-tests.star", code)
	res := clitest.NewEnv(t, a).Run(t, "stage", "apply", "demo/feature/x", file, "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "PUT /api/v1/branches/7/stages/unit-tests")
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.Equal(t, "unit-tests", got["name"])
	assert.EqualValues(t, 4, got["id"])
	assert.Equal(t, true, got["enabled"])
}

func TestApplyName(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	file := writeFile(t, "x.star", code)
	res := clitest.NewEnv(t, a).Run(t, "stage", "apply", "demo/feature/x", file, "--name", "build it", "--disabled")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "PUT /api/v1/branches/7/stages/build%20it")
	assert.Contains(t, res.Stdout, "Enabled:  false")
}

func TestApplyFromStdin(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := clitest.NewEnv(t, a)
	e.Stdin = code
	res := e.Run(t, "stage", "apply", "demo/feature/x", "-", "--name", "s")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	res = e.Run(t, "stage", "apply", "demo/feature/x", "-")
	assert.Equal(t, cmdutil.ExitUsage, res.Code, "stdin needs --name")
}

func TestApplyInvalidSchemaShowsLocations(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	file := writeFile(t, "bad.star", "broken")
	res := clitest.NewEnv(t, a).Run(t, "stage", "apply", "demo/feature/x", file)
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, file+":3:5: jobs[0].steps[0].cmdd: unknown key\n")
	assert.Contains(t, res.Stderr, file+":1:1: second problem\n")
	assert.Contains(t, res.Stderr, "invalid stage schema")
	assert.Empty(t, res.Stdout)
}

func TestApplyMissingFile(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "stage", "apply", "demo/feature/x", filepath.Join(t.TempDir(), "nope.star"))
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "nope.star")
}

func TestList(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "stage", "list", "demo/feature/x", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 1)
	assert.EqualValues(t, 3, got[0]["id"])
	assert.Equal(t, "unit-tests", got[0]["name"])
}

func TestShowAndDelete(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	e := clitest.NewEnv(t, a)
	res := e.Run(t, "stage", "show", "demo/feature/x", "unit-tests")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "Name:     unit-tests")
	res = e.Run(t, "stage", "delete", "demo/feature/x", "unit-tests")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "DELETE /api/v1/stages/3")
	res = e.Run(t, "stage", "show", "demo/feature/x", "nope")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "kk stage list demo/feature/x")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{
		"stage apply",
		"stage apply demo/main",
		"stage apply demo a.star",
		"stage apply demo/main a.star extra",
		"stage list",
	} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

func TestStageName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"tests.star":          "tests",
		"ci/unit-tests.star":  "unit-tests",
		"a.b.py":              "a.b",
		"noext":               "noext",
		"/abs/dir/build.star": "build",
		"-":                   "",
	} {
		assert.Equal(t, want, stage.StageName(in), in)
	}
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	next := last.Add(time.Minute)
	a.Reply("GET /api/v1/branches/7/schedule", 200, []api.ScheduleEntry{
		{StageID: 3, Stage: "nightly", Enabled: true, Trigger: "cron", Rule: "* * * * *", LastFired: &last, Next: &next},
		{StageID: 4, Stage: "once", Enabled: true, Trigger: "date", Rule: "2026-01-01", Note: "the date was past when the stage was applied"},
	})
	res := clitest.NewEnv(t, a).Run(t, "stage", "schedule", "demo/feature/x")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "STAGE")
	assert.Contains(t, res.Stdout, "NEXT")
	assert.Regexp(t, `nightly\s+cron\s+\* \* \* \* \*\s+2026-03-01T12:00:00Z\s+2026-03-01T12:01:00Z`, res.Stdout)
	assert.Regexp(t, `once\s+date\s+2026-01-01\s+never\s+-\s+the date was past`, res.Stdout)

	res = clitest.NewEnv(t, a).Run(t, "stage", "schedule", "demo/feature/x", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 2)
	assert.Equal(t, "2026-03-01T12:01:00Z", got[0]["next"])
	assert.NotContains(t, got[1], "next")

	res = clitest.NewEnv(t, a).Run(t, "stage", "schedule")
	require.NotEqual(t, cmdutil.ExitOK, res.Code)
	assert.Contains(t, res.Stderr, "missing branch: kk stage schedule PROJECT/BRANCH")
}
