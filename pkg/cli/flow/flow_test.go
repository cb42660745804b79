package flow_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func exit(n int) *int { return &n }

// flowWith builds flow 9 in state with one run of two jobs with the given results.
func flowWith(state ci.FlowState, results ...ci.JobResult) api.FlowDetail {
	fl := api.FlowDetail{
		Flow:    ci.Flow{ID: 9, BranchID: 7, Kind: ci.FlowCI, State: state, KindSeq: 3},
		Project: "demo", Branch: "feature/x",
	}
	run := api.RunDetail{Run: ci.Run{ID: 4, FlowID: 9, StageName: "tests", State: ci.RunInProgress}, Name: "tests"}
	for i, r := range results {
		j := api.JobDetail{Job: ci.Job{ID: int64(20 + i), RunID: 4, FlowID: 9, Name: "job" + string(rune('a'+i)), State: ci.JobRunning}}
		if r != ci.JobResultNone {
			j.State, j.Result, j.Agent = ci.JobCompleted, r, "host-1"
			j.Steps = []ci.Step{{JobID: j.ID, Index: 0, Tool: "shell", Status: ci.StepOK, ExitCode: exit(0)}}
		}
		run.Jobs = append(run.Jobs, j)
	}
	if state == ci.FlowCompleted {
		run.State = ci.RunCompleted
	}
	fl.Runs = []api.RunDetail{run}
	return fl
}

type flowAPI struct {
	*clitest.API
	created atomic.Pointer[api.CreateFlow]
	polls   atomic.Int32
}

// baseAPI serves branch demo/feature/x (id 7) and creates flow 9 on it.
func baseAPI(t *testing.T) *flowAPI {
	a := &flowAPI{API: clitest.NewAPI(t)}
	a.Reply("GET /api/v1/projects/demo/branches/feature%2Fx", 200, ci.Branch{ID: 7, Name: "feature/x"})
	a.Handle("POST /api/v1/branches/7/flows", func(w http.ResponseWriter, r *http.Request) {
		var in api.CreateFlow
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		a.created.Store(&in)
		fl := flowWith(ci.FlowInProgress, ci.JobResultNone, ci.JobResultNone)
		fl.Kind = in.Kind
		fl.Args = in.Args
		clitest.JSON(w, 201, fl)
	})
	return a
}

// fakeAPI is baseAPI where flow 9 completes as final on the third poll.
func fakeAPI(t *testing.T, final api.FlowDetail) *flowAPI {
	a := baseAPI(t)
	a.Handle("GET /api/v1/flows/9", func(w http.ResponseWriter, r *http.Request) {
		if a.polls.Add(1) <= 2 {
			clitest.JSON(w, 200, flowWith(ci.FlowInProgress, ci.JobOK, ci.JobResultNone))
			return
		}
		clitest.JSON(w, 200, final)
	})
	a.Reply("GET /api/v1/branches/7/flows", 200, []ci.Flow{final.Flow})
	return a
}

func TestRunPrintsNewFlowJSON(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t, flowWith(ci.FlowCompleted, ci.JobOK, ci.JobOK))
	res := clitest.NewEnv(t, a.API).Run(t, "flow", "run", "demo/feature/x", "--dev", "--arg", "A=1", "--arg", "B=x=y", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, &api.CreateFlow{Kind: ci.FlowDEV, Args: map[string]string{"A": "1", "B": "x=y"}}, a.created.Load())
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.EqualValues(t, 9, got["id"])
	assert.Equal(t, "in_progress", got["state"])
	assert.Equal(t, "dev", got["kind"])
	runs := got["runs"].([]any)
	require.Len(t, runs, 1)
	jobs := runs[0].(map[string]any)["jobs"].([]any)
	require.Len(t, jobs, 2)
	for _, j := range jobs {
		job := j.(map[string]any)
		for _, k := range []string{"id", "name", "state", "agent", "steps"} {
			assert.Contains(t, job, k)
		}
		assert.Equal(t, []any{}, job["steps"])
	}
	assert.Zero(t, a.polls.Load(), "without --wait nothing is polled")
}

func TestRunWait(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		final   api.FlowDetail
		want    cmdutil.ExitCode
		stderr  string
		covered bool
	}{
		{"all ok", flowWith(ci.FlowCompleted, ci.JobOK, ci.JobOK), cmdutil.ExitOK, "flow 9 succeeded", false},
		{"a job failed", flowWith(ci.FlowCompleted, ci.JobOK, ci.JobFailed), cmdutil.ExitError, "job 21 jobb (stage tests) failed", false},
		{"a job timed out", flowWith(ci.FlowCompleted, ci.JobTimeout, ci.JobOK), cmdutil.ExitError, "job 20 joba (stage tests) timeout", false},
		{"failed job covered by an ok rerun", flowWith(ci.FlowCompleted, ci.JobFailed, ci.JobOK), cmdutil.ExitOK, "flow 9 succeeded", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.covered {
				tc.final.Runs[0].Jobs[0].Covered = true
			}
			a := fakeAPI(t, tc.final)
			res := clitest.NewEnv(t, a.API).Run(t, "flow", "run", "demo/feature/x", "--wait", "--poll-interval", "1ms", "-o", "json")
			assert.Equal(t, tc.want, res.Code, res.Stderr)
			assert.Contains(t, res.Stderr, tc.stderr)
			assert.EqualValues(t, 3, a.polls.Load(), "polled until completed")
			var got api.FlowDetail
			require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got), "prints the final flow")
			assert.Equal(t, ci.FlowCompleted, got.State)
		})
	}
}

func TestRunWaitReportsManualRuns(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects/demo/branches/main", 200, ci.Branch{ID: 7, Name: "main"})
	a.Reply("POST /api/v1/branches/7/flows", 201, flowWith(ci.FlowInProgress, ci.JobResultNone))
	// Every poll shows a manual run; the third one shows the flow completed.
	var polls atomic.Int32
	a.Handle("GET /api/v1/flows/9", func(w http.ResponseWriter, r *http.Request) {
		fl := flowWith(ci.FlowInProgress, ci.JobOK)
		fl.Runs = append(fl.Runs, api.RunDetail{Run: ci.Run{ID: 5, FlowID: 9, State: ci.RunManual}, Name: "deploy"})
		if polls.Add(1) >= 3 {
			fl.State = ci.FlowCompleted
		}
		clitest.JSON(w, 200, fl)
	})
	res := clitest.NewEnv(t, a).Run(t, "flow", "run", "demo/main", "--wait", "--poll-interval", "1ms")
	assert.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, 1, strings.Count(res.Stderr, "run 5 (deploy) waits for a manual start: kk run start 5"), res.Stderr)
}

func TestRunWaitTTYShowsProgressOnStderr(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t, flowWith(ci.FlowCompleted, ci.JobOK, ci.JobFailed))
	e := clitest.NewEnv(t, a.API)
	e.TTY = true
	res := e.Run(t, "flow", "run", "demo/feature/x", "--wait", "--poll-interval", "1ms")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "flow 9 in_progress: 2 jobs: 1 ok, 1 running")
	assert.Contains(t, res.Stdout, "Flow:")
	assert.Contains(t, res.Stdout, "jobb")
}

func TestShowJSONNestsRunsAndJobs(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t, flowWith(ci.FlowCompleted, ci.JobOK, ci.JobFailed))
	a.polls.Store(10)
	res := clitest.NewEnv(t, a.API).Run(t, "flow", "show", "9", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
		Runs  []struct {
			ID    int64  `json:"id"`
			Name  string `json:"name"`
			State string `json:"state"`
			Jobs  []map[string]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.EqualValues(t, 9, got.ID)
	require.Len(t, got.Runs, 1)
	assert.Equal(t, "tests", got.Runs[0].Name)
	require.Len(t, got.Runs[0].Jobs, 2)
	j := got.Runs[0].Jobs[1]
	assert.EqualValues(t, 21, j["id"])
	assert.Equal(t, "jobb", j["name"])
	assert.Equal(t, "completed", j["state"])
	assert.Equal(t, "failed", j["result"])
	assert.Equal(t, "host-1", j["agent"])
	assert.Len(t, j["steps"], 1)
}

func TestShowYAML(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t, flowWith(ci.FlowCompleted, ci.JobOK))
	a.polls.Store(10)
	res := clitest.NewEnv(t, a.API).Run(t, "flow", "show", "9", "-o", "yaml")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.True(t, strings.HasPrefix(res.Stdout, "id: 9\n"), res.Stdout)
	var got map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(res.Stdout), &got))
	assert.Len(t, got["runs"], 1)
}

func TestShowTable(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t, flowWith(ci.FlowCompleted, ci.JobOK, ci.JobFailed))
	a.polls.Store(10)
	res := clitest.NewEnv(t, a.API).Run(t, "flow", "show", "9")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "Branch:   demo/feature/x\n")
	assert.Contains(t, res.Stdout, "Jobs:     2 jobs: 1 failed, 1 ok\n")
	assert.Contains(t, res.Stdout, "RUN  STAGE  RUN STATE  JOB  NAME  STATUS  AGENT   DURATION\n")
	assert.Contains(t, res.Stdout, "4    tests  completed  21   jobb  failed  host-1  -\n")
}

func TestList(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t, flowWith(ci.FlowCompleted, ci.JobOK))
	res := clitest.NewEnv(t, a.API).Run(t, "flow", "list", "demo/feature/x", "--kind", "ci", "--limit", "5", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, a.Requests(), "GET /api/v1/branches/7/flows?kind=ci&limit=5")
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	require.Len(t, got, 1)
	assert.EqualValues(t, 9, got[0]["id"])
	assert.Equal(t, "completed", got[0]["state"])
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Handle("GET /api/v1/flows/{id}", func(w http.ResponseWriter, r *http.Request) {
		clitest.Error(w, 404, api.CodeNotFound, "flow 77 not found")
	})
	res := clitest.NewEnv(t, a).Run(t, "flow", "show", "77")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "flow 77 not found")
	assert.Contains(t, res.Stderr, "kk flow list PROJECT/BRANCH")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{
		"flow run",
		"flow run demo",
		"flow run demo/main --arg novalue",
		"flow run demo/main --arg =x",
		"flow run demo/main --wait=maybe",
		"flow show",
		"flow show abc",
		"flow show -3",
		"flow list demo/main --kind weekly",
	} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

func TestServerErrorBody(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Handle("GET /api/v1/flows/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = io.WriteString(w, "boom")
	})
	res := clitest.NewEnv(t, a).Run(t, "flow", "show", "1")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "HTTP 500: boom")
}

func TestRunWaitRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	a := baseAPI(t)
	var n atomic.Int32
	a.Handle("GET /api/v1/flows/9", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			clitest.Error(w, 503, api.CodeUnavailable, "database busy")
			return
		}
		clitest.JSON(w, 200, flowWith(ci.FlowCompleted, ci.JobOK))
	})
	res := clitest.NewEnv(t, a.API).Run(t, "flow", "run", "demo/feature/x", "--wait", "--poll-interval", "1ms")
	assert.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stderr, "database busy (retrying)")
}

func TestRunWaitInterrupted(t *testing.T) {
	t.Parallel()
	polled := make(chan struct{}, 1)
	a := baseAPI(t)
	a.Handle("GET /api/v1/flows/9", func(w http.ResponseWriter, r *http.Request) {
		select {
		case polled <- struct{}{}:
		default:
		}
		clitest.JSON(w, 200, flowWith(ci.FlowInProgress, ci.JobResultNone))
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan clitest.Result)
	go func() {
		done <- clitest.NewEnv(t, a.API).RunContext(ctx, t, "flow", "run", "demo/feature/x", "--wait", "--poll-interval", "1ms")
	}()
	<-polled
	cancel()
	res := <-done
	assert.Equal(t, cmdutil.ExitInterrupted, res.Code, res.Stderr)
	assert.Contains(t, res.Stderr, "stopped waiting; flow 9 goes on: kk flow show 9")
	assert.NotContains(t, res.Stderr, "error:")
}
