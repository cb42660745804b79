package run_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	detail := func(state ci.RunState) api.RunDetail {
		return api.RunDetail{
			Run:  ci.Run{ID: 4, FlowID: 9, StageName: "deploy", State: state},
			Name: "deploy",
			Jobs: []api.JobDetail{{Job: ci.Job{ID: 20, RunID: 4, Name: "push", State: ci.JobQueued}}},
		}
	}
	a.Reply("GET /api/v1/runs/4", 200, detail(ci.RunManual))
	a.Reply("POST /api/v1/runs/4/start", 200, detail(ci.RunInProgress))
	a.Reply("POST /api/v1/runs/4/cancel", 200, detail(ci.RunCompleted))
	a.Reply("POST /api/v1/runs/4/rerun", 200, detail(ci.RunInProgress))
	a.Handle("GET /api/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		clitest.Error(w, 404, api.CodeNotFound, "run "+r.PathValue("id")+" not found")
	})
	return a
}

func TestVerbs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		verb, request, state, stderr string
	}{
		{"show", "GET /api/v1/runs/4", "manual", ""},
		{"start", "POST /api/v1/runs/4/start", "in_progress", "started run 4 (deploy)"},
		{"cancel", "POST /api/v1/runs/4/cancel", "completed", "cancelled run 4"},
		{"rerun", "POST /api/v1/runs/4/rerun", "in_progress", "rerunning run 4"},
	} {
		t.Run(tc.verb, func(t *testing.T) {
			t.Parallel()
			a := fakeAPI(t)
			res := clitest.NewEnv(t, a).Run(t, "run", tc.verb, "4", "-o", "json")
			require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
			assert.Equal(t, []string{tc.request}, a.Requests())
			var got map[string]any
			require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
			assert.EqualValues(t, 4, got["id"])
			assert.Equal(t, "deploy", got["name"])
			assert.Equal(t, tc.state, got["state"])
			jobs := got["jobs"].([]any)
			require.Len(t, jobs, 1)
			assert.Contains(t, jobs[0], "agent")
			assert.Contains(t, jobs[0], "steps")
			assert.Contains(t, res.Stderr, tc.stderr)
		})
	}
}

func TestShowTableManualHint(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "run", "show", "4")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "kk run start 4")
	assert.Contains(t, res.Stdout, "20   push  queued")
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "run", "show", "5")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "run 5 not found")
	assert.Contains(t, res.Stderr, "kk flow show FLOW")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{"run show", "run start x", "run cancel 1 2", "run rerun 0", "run frob 1"} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

func TestShowNotifications(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/runs/5", 200, api.RunDetail{
		Run: ci.Run{ID: 5, FlowID: 9, StageName: "build", State: ci.RunCompleted}, Name: "build", Jobs: []api.JobDetail{},
		Notifications: []ci.Notification{
			{RunID: 5, Event: ci.NotifyStart, Channel: "github", State: ci.NotifySent, Message: "pending on acme/widget@0123"},
			{RunID: 5, Event: ci.NotifyEnd, Channel: "email", State: ci.NotifyFailed, Message: "smtp: MAIL FROM: 550 refused"},
		},
	})
	env := clitest.NewEnv(t, a)
	res := env.Run(t, "run", "show", "5")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Regexp(t, `start\s+github\s+sent\s+pending on acme/widget@0123`, res.Stdout)
	assert.Regexp(t, `end\s+email\s+failed\s+smtp: MAIL FROM: 550 refused`, res.Stdout)
	res = env.Run(t, "run", "show", "5", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, `"notifications"`)
	assert.Contains(t, res.Stdout, `"state": "failed"`)
}
