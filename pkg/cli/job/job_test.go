package job_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

func exit(n int) *int { return &n }

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	job := api.JobDetail{
		Job: ci.Job{ID: 20, RunID: 4, FlowID: 9, Name: "build", State: ci.JobCompleted, Result: ci.JobFailed,
			Group: "all", System: "any", Executor: "local",
			Steps: []ci.Step{
				{JobID: 20, Index: 0, Tool: "git", Status: ci.StepOK, ExitCode: exit(0)},
				{JobID: 20, Index: 1, Tool: "shell", Name: "make", Status: ci.StepFailed, ExitCode: exit(2), Message: "exit status 2"},
			}},
		Agent: "host-1", Duration: 3.2,
	}
	a.Reply("GET /api/v1/jobs/20", 200, job)
	a.Reply("POST /api/v1/jobs/20/cancel", 200, job)
	rerun := job
	rerun.ID, rerun.State, rerun.Result, rerun.Steps, rerun.Agent = 21, ci.JobQueued, "", nil, ""
	a.Reply("POST /api/v1/jobs/20/rerun", 200, rerun)
	return a
}

func TestShowJSON(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "job", "show", "20", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.EqualValues(t, 20, got["id"])
	assert.Equal(t, "build", got["name"])
	assert.Equal(t, "completed", got["state"])
	assert.Equal(t, "failed", got["result"])
	assert.Equal(t, "host-1", got["agent"])
	assert.Len(t, got["steps"], 2)
}

func TestShowTable(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "job", "show", "20")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "Result:    failed\n")
	assert.Contains(t, res.Stdout, "Duration:  3.2s\n")
	assert.Contains(t, res.Stdout, "STEP  TOOL   NAME  STATUS  EXIT  MESSAGE\n")
	assert.Contains(t, res.Stdout, "1     shell  make  failed  2     exit status 2\n")
}

func TestShowWaitingJobWithAttempts(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	assigned := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ended := assigned.Add(40 * time.Second)
	job := api.JobDetail{
		Job: ci.Job{ID: 30, RunID: 4, FlowID: 9, Name: "build", State: ci.JobQueued, Group: "linux", System: "any",
			Executor: "local", Attempt: 1},
		WaitReason: `agents of group "linux" are all busy (2)`,
		Attempts: []ci.JobAttempt{{JobID: 30, Attempt: 1, AgentID: 3, Agent: "victim", Assigned: assigned, Finished: &ended,
			Outcome: ci.JobAgentLost, Message: "agent victim lost contact (its lease expired)"}},
	}
	a.Reply("GET /api/v1/jobs/30", 200, job)
	e := clitest.NewEnv(t, a)

	res := e.Run(t, "job", "show", "30")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stdout, "\nWaiting: agents of group \"linux\" are all busy (2)\n")
	assert.Contains(t, res.Stdout, "ATTEMPT  AGENT   ASSIGNED")
	assert.Regexp(t, `\n1 +victim +\S.* +40s +agent_lost +agent victim lost contact \(its lease expired\)\n`, res.Stdout)

	res = e.Run(t, "job", "show", "30", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.Equal(t, `agents of group "linux" are all busy (2)`, got["wait_reason"])
	require.Len(t, got["attempts"], 1)
	first := got["attempts"].([]any)[0].(map[string]any)
	assert.Equal(t, "victim", first["agent"])
	assert.Equal(t, "agent_lost", first["outcome"])
}

func TestRerunPrintsNewJob(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "job", "rerun", "20", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
	assert.EqualValues(t, 21, got["id"])
	assert.Equal(t, "", got["agent"])
	assert.Equal(t, []any{}, got["steps"])
	assert.Contains(t, res.Stderr, "job 20 rerun as job 21")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	res := clitest.NewEnv(t, a).Run(t, "job", "cancel", "20")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, []string{"POST /api/v1/jobs/20/cancel"}, a.Requests())
	assert.Contains(t, res.Stderr, "cancelled job 20")
}

func TestLogs(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Handle("GET /api/v1/jobs/20/logs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "step "+r.URL.Query().Get("step")+" follow="+r.URL.Query().Get("follow")+"\n")
	})
	e := clitest.NewEnv(t, a)
	res := e.Run(t, "job", "logs", "20", "--step", "1")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, "step 1 follow=\n", res.Stdout)
	res = e.Run(t, "job", "logs", "20")
	assert.Equal(t, "step  follow=\n", res.Stdout)
	res = e.Run(t, "job", "logs", "20", "-f", "--step", "0")
	assert.Equal(t, "step 0 follow=1\n", res.Stdout)
	assert.Contains(t, a.Requests(), "GET /api/v1/jobs/20/logs?follow=1&step=0")
}

// chunkWriter hands every write to the test as it happens.
type chunkWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes chan string
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	w.writes <- string(p)
	return len(p), nil
}

func (w *chunkWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestLogsFollowStreams checks that each chunk reaches stdout while the
// server still holds the stream open, and that kk returns when it ends.
func TestLogsFollowStreams(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	a := clitest.NewAPI(t)
	a.Handle("GET /api/v1/jobs/20/logs", func(w http.ResponseWriter, r *http.Request) {
		for _, line := range []string{"compiling\n", "testing\n", "done\n"} {
			_, _ = io.WriteString(w, line)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	out := &chunkWriter{writes: make(chan string)}
	e := clitest.NewEnv(t, a)
	e.Setup = func(ios *iostreams.IOStreams) { ios.Out = out }
	done := make(chan clitest.Result)
	go func() { done <- e.Run(t, "job", "logs", "20", "-f") }()
	for _, want := range []string{"compiling\n", "testing\n", "done\n"} {
		assert.Equal(t, want, <-out.writes)
		next <- struct{}{}
	}
	res := <-done
	assert.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, "compiling\ntesting\ndone\n", out.String())
}

// TestLogsFollowInterrupted: Ctrl-C (context cancelled) stops following
// quietly with the interrupted exit code.
func TestLogsFollowInterrupted(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Handle("GET /api/v1/jobs/20/logs", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "started\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	out := &chunkWriter{writes: make(chan string)}
	e := clitest.NewEnv(t, a)
	e.Setup = func(ios *iostreams.IOStreams) { ios.Out = out }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan clitest.Result)
	go func() { done <- e.RunContext(ctx, t, "job", "logs", "20", "-f") }()
	assert.Equal(t, "started\n", <-out.writes)
	cancel()
	res := <-done
	assert.Equal(t, cmdutil.ExitInterrupted, res.Code)
	assert.Empty(t, res.Stderr)
}

func TestLogsNotFound(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Handle("GET /api/v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		clitest.Error(w, 404, api.CodeNotFound, "job 99 not found")
	})
	res := clitest.NewEnv(t, a).Run(t, "job", "logs", "99")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "job 99 not found")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{"job show", "job logs", "job logs x", "job logs 1 --step -1", "job logs 1 --step x", "job cancel 1 2"} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}
