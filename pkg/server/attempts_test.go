package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/server"
)

// TestLogChunkFencing: a chunk is stored only for the agent's current
// attempt; once the attempt completed the job, a retry of a stored chunk is
// still a no-op success while anything new is stale.
func TestLogChunkFencing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, j := e.runningJob(t, 1)
	bob := e.agent(t, "bob")
	logURL := func(attempt, seq int) string {
		return fmt.Sprintf("/agent/jobs/%d/steps/0/logs?attempt=%d&seq=%d", j.ID, attempt, seq)
	}
	complete := func(t *testing.T) {
		e.complete(t, alice, j.ID)
	}
	steps := []struct {
		name   string
		before func(t *testing.T)
		who    testAgent
		url    string
		status int
		stored int
	}{
		{name: "current attempt", who: alice, url: logURL(1, 0), status: http.StatusNoContent, stored: 1},
		{name: "retry", who: alice, url: logURL(1, 0), status: http.StatusNoContent, stored: 1},
		{name: "another agent", who: bob, url: logURL(1, 1), status: http.StatusConflict, stored: 1},
		{name: "future attempt", who: alice, url: logURL(2, 1), status: http.StatusConflict, stored: 1},
		{name: "retry after the completion", before: complete, who: alice, url: logURL(1, 0), status: http.StatusNoContent, stored: 1},
		{name: "new chunk after the completion", who: alice, url: logURL(1, 1), status: http.StatusConflict, stored: 1},
		{name: "another agent after the completion", who: bob, url: logURL(1, 0), status: http.StatusConflict, stored: 1},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before(t)
			}
			r := e.call(t, "POST", s.url, "output\n", s.who.cred)
			if s.status == http.StatusConflict {
				r.envelope(t, s.status, api.CodeStaleAttempt)
			} else {
				r.ok(t, s.status, nil)
			}
			require.Len(t, e.snapshot(t).Logs, s.stored)
		})
	}
}

// TestAgentErrorIsRetried: a job its agent reports as error (the executor
// failed, kkagent was stopped) runs again on a new attempt, up to the retry
// limit; then it fails with error and a message naming every attempt.
func TestAgentErrorIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	agents := []testAgent{e.agent(t, "alice"), e.agent(t, "bob"), e.agent(t, "carol")}
	j := e.queueJob(t, fx)
	completeURL := fmt.Sprintf("/agent/jobs/%d/complete", j.ID)
	for i, a := range agents {
		asg := e.claim(t, a)
		require.Equal(t, i+1, asg.Attempt)
		e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/steps/0/logs?attempt=%d&seq=0", j.ID, asg.Attempt),
			fmt.Sprintf("output of %s\n", a.name), a.cred).ok(t, http.StatusNoContent, nil)
		body := api.CompleteJob{Attempt: asg.Attempt, Result: ci.JobError, Message: "docker daemon unreachable"}
		e.call(t, "POST", completeURL, body, a.cred).ok(t, http.StatusNoContent, nil)
		// The answer was lost: the agent sends it again.
		e.call(t, "POST", completeURL, body, a.cred).ok(t, http.StatusNoContent, nil)
		var jd api.JobDetail
		e.user(t, "GET", fmt.Sprintf("/jobs/%d", j.ID), nil).ok(t, http.StatusOK, &jd)
		require.Len(t, jd.Attempts, i+1)
		got := jd.Attempts[i]
		require.Equal(t, a.name, got.Agent)
		require.Equal(t, ci.JobError, got.Outcome)
		require.Equal(t, "agent "+a.name+" reported an error: docker daemon unreachable", got.Message)
		if i < 2 {
			require.Equal(t, ci.JobQueued, jd.State, "attempt %d is retried", i+1)
			require.Equal(t, "waiting for a free agent", jd.WaitReason)
			continue
		}
		require.Equal(t, ci.JobCompleted, jd.State)
		require.Equal(t, ci.JobError, jd.Result)
		require.Contains(t, jd.Message, "gave up after 3 attempts (kkd --job-retries 2)")
		require.Contains(t, jd.Message, "#1 agent alice reported an error: docker daemon unreachable; #2 agent bob")
		require.Empty(t, jd.WaitReason)
	}
	// Another agent cannot pass its call off as the retry of one.
	e.call(t, "POST", completeURL, api.CompleteJob{Attempt: 1, Result: ci.JobError}, agents[1].cred).
		envelope(t, http.StatusConflict, api.CodeStaleAttempt)

	r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs", j.ID), nil)
	require.Equal(t, "==> attempt 1 (agent alice)\n==> step 0: shell (step0)\noutput of alice\n"+
		"==> attempt 2 (agent bob)\n==> step 0: shell (step0)\noutput of bob\n"+
		"==> attempt 3 (agent carol)\n==> step 0: shell (step0)\noutput of carol\n", string(r.body))
}

// TestAgentRestartWithPendingCancel: an agent that comes back without the
// job it was asked to cancel does not get the job retried.
func TestAgentRestartWithPendingCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	e.user(t, "POST", fmt.Sprintf("/jobs/%d/cancel", j.ID), nil).ok(t, http.StatusOK, nil)
	e.call(t, "POST", "/agent/work?wait=0", nil, a.cred).ok(t, http.StatusNoContent, nil)
	got := e.job(t, j.ID)
	require.Equal(t, ci.JobCompleted, got.State)
	require.Equal(t, ci.JobCancelled, got.Result)
	require.Equal(t, "cancelled by user; agent alice restarted and lost its copy of the job", got.Message)
}

// restarted is a second kkd on e's database: new engine, dispatcher, hub and
// server, nothing carried over in memory.
func restarted(t *testing.T, e *env) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	hub := notify.New()
	disp := scheduler.New(scheduler.Config{Store: e.st, Logger: log, Lease: 30 * time.Second})
	eng := engine.New(engine.Config{Store: e.st, Hub: hub, Dispatcher: disp, Logger: log})
	srv := server.New(server.Config{Store: e.st, Engine: eng, Dispatcher: disp, Hub: hub, Logger: log, Version: "test",
		Logs: &logs.Service{Store: e.st, Hub: hub, Logger: log}, RegistrationKeys: []string{regKey}})
	ctx, stop := context.WithCancel(context.Background())
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(stop)
	disp.Start(ctx)
	return &env{st: e.st, hub: hub, disp: disp, eng: eng, srv: srv, base: ts.URL + api.Prefix, token: e.token, adminID: e.adminID, shutdown: stop}
}

// TestCancelSurvivesRestart: a cancel requested before kkd restarts reaches
// the agent's first heartbeat to the new kkd.
func TestCancelSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	var jd api.JobDetail
	e.user(t, "POST", fmt.Sprintf("/jobs/%d/cancel", j.ID), nil).ok(t, http.StatusOK, &jd)
	require.NotNil(t, jd.CancelRequested)
	e.shutdown()

	again := restarted(t, e)
	var hr api.HeartbeatResponse
	start := time.Now()
	again.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/heartbeat?wait=%d", j.ID, int(longWait/time.Second)),
		api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusOK, &hr)
	require.True(t, hr.Cancel)
	require.Less(t, time.Since(start), prompt, "a pending cancel is answered at once")
}
