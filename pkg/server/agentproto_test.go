package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/server"
	"github.com/kraken-go/kk/pkg/store"
)

func TestAgentRegisterValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := newAgentIdentity("builder")
	tests := []struct {
		name     string
		mutate   func(r *api.Register)
		contains string
	}{
		{name: "bad uuid", mutate: func(r *api.Register) { r.UUID = "not-a-uuid" }, contains: `uuid "not-a-uuid" is not a UUID`},
		{name: "missing uuid", mutate: func(r *api.Register) { r.UUID = "" }, contains: "is not a UUID"},
		{name: "short enroll secret", mutate: func(r *api.Register) { r.EnrollSecret = "0123456789" }, contains: "enroll_secret must be at least 32 characters"},
		{name: "missing enroll secret", mutate: func(r *api.Register) { r.EnrollSecret = "" }, contains: "enroll_secret"},
		{name: "bad name", mutate: func(r *api.Register) { r.Name = "build host" }, contains: `agent name "build host" is invalid`},
		{name: "name too long", mutate: func(r *api.Register) { r.Name = strings.Repeat("a", 65) }, contains: "up to 64 characters"},
		{name: "bad group with key", mutate: func(r *api.Register) { r.RegistrationKey = regKey; r.Groups = []string{"linux", "bad group"} }, contains: `group name "bad group" is invalid`},
		{name: "bad wait", mutate: func(r *api.Register) {}, contains: `wait="forever"`},
	}
	before := e.snapshot(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := good.register("")
			tc.mutate(&req)
			path := "/agent/register"
			if tc.name == "bad wait" {
				path += "?wait=forever"
			}
			ae := e.call(t, "POST", path, req, "").envelope(t, http.StatusBadRequest, api.CodeBadRequest)
			require.Contains(t, ae.Message, tc.contains)
			e.unchanged(t, before)
		})
	}
}

func TestAgentRegisterEnrollSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newAgentIdentity("builder")
	var first api.RegisterResponse
	e.call(t, "POST", "/agent/register", a.register(""), "").ok(t, http.StatusOK, &first)
	require.False(t, first.Authorized)
	require.Empty(t, first.Credential)
	require.Contains(t, first.Message, "kk agent authorize builder")

	impostor := a
	impostor.secret = strings.Repeat("e", 64)
	upper := a
	upper.uuid = strings.ToUpper(a.uuid)
	braces := a
	braces.uuid = "{" + a.uuid + "}"
	tests := []struct {
		name       string
		who        testAgent
		status     int
		authorized bool
	}{
		{name: "same secret", who: a, status: http.StatusOK},
		{name: "other secret", who: impostor, status: http.StatusUnauthorized},
		{name: "same uuid spelt in upper case, other secret", who: func() testAgent { x := impostor; x.uuid = upper.uuid; return x }(), status: http.StatusUnauthorized},
		{name: "same uuid in upper case", who: upper, status: http.StatusOK},
		{name: "same uuid in braces", who: braces, status: http.StatusOK},
	}
	check := func(t *testing.T, authorized bool) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := e.call(t, "POST", "/agent/register", tc.who.register(""), "")
				if tc.status == http.StatusUnauthorized {
					ae := r.envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
					require.Contains(t, ae.Message, "registered with another enroll secret")
					return
				}
				var rr api.RegisterResponse
				r.ok(t, http.StatusOK, &rr)
				require.Equal(t, first.AgentID, rr.AgentID, "one agent per UUID however it is spelt")
				require.Equal(t, authorized, rr.Authorized)
				require.Equal(t, authorized, rr.Credential != "")
			})
		}
	}
	t.Run("discovered", func(t *testing.T) { check(t, false) })
	e.user(t, "POST", "/agents/builder/authorize", nil).ok(t, http.StatusOK, nil)
	// Once authorized, only the holder of the enroll secret collects a credential.
	t.Run("authorized", func(t *testing.T) { check(t, true) })
	as, err := e.st.ListAgents(context.Background(), store.ListAgentsOpts{})
	require.NoError(t, err)
	require.Len(t, as, 1)
}

// TestAgentRegisterLongPoll: a register call held by ?wait returns as soon as
// an admin authorizes the agent, with a credential that works.
func TestAgentRegisterLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.user(t, "POST", "/groups", api.CreateGroup{Name: "linux"}).ok(t, http.StatusCreated, nil)
	a := newAgentIdentity("builder")
	var first api.RegisterResponse
	e.call(t, "POST", "/agent/register", a.register(""), "").ok(t, http.StatusOK, &first)

	t.Run("times out unauthorized", func(t *testing.T) {
		start := time.Now()
		var rr api.RegisterResponse
		e.call(t, "POST", "/agent/register?wait=0.3", a.register(""), "").ok(t, http.StatusOK, &rr)
		require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "the call is held for wait")
		require.False(t, rr.Authorized)
		require.Contains(t, rr.Message, "waiting for authorization")
	})

	t.Run("returns on authorization", func(t *testing.T) {
		held := e.async(t, "POST", fmt.Sprintf("/agent/register?wait=%d", int(longWait/time.Second)), a.register(""), "")
		waitFor(t, "the register call to wait", func() bool { return e.hub.Subscribers(server.AuthKey(first.AgentID)) == 1 })
		authorizedAt := time.Now()
		var ag api.Agent
		e.user(t, "POST", "/agents/builder/authorize", api.AuthorizeAgent{Groups: []string{"linux"}}).ok(t, http.StatusOK, &ag)
		require.True(t, ag.Authorized)
		require.ElementsMatch(t, []string{"all", "linux"}, ag.Groups)

		r := await(t, held, longWait)
		latency := time.Since(authorizedAt)
		t.Logf("register long poll answered %v after the authorization (wait %v)", latency, longWait)
		require.Less(t, latency, prompt)
		var rr api.RegisterResponse
		r.resp.ok(t, http.StatusOK, &rr)
		require.True(t, rr.Authorized)
		require.True(t, strings.HasPrefix(rr.Credential, "kka_"), rr.Credential)
		e.call(t, "POST", "/agent/work", nil, rr.Credential).ok(t, http.StatusNoContent, nil)
	})
}

func TestAgentRegistrationKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		key        string
		groups     []string
		authorized bool
		message    string
	}{
		{name: "right key with groups", key: regKey, groups: []string{"linux", "gpu"}, authorized: true},
		{name: "right key without groups", key: regKey, authorized: true},
		{name: "wrong key", key: "wrong-key", groups: []string{"linux"}, message: "the registration key was rejected"},
		{name: "key prefix", key: regKey[:10], groups: []string{"linux"}, message: "the registration key was rejected"},
		{name: "no key", groups: []string{"linux"}, message: "waiting for authorization"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a := newAgentIdentity("builder")
			var rr api.RegisterResponse
			e.call(t, "POST", "/agent/register", a.register(tc.key, tc.groups...), "").ok(t, http.StatusOK, &rr)
			require.Equal(t, tc.authorized, rr.Authorized)
			require.Contains(t, rr.Message, tc.message)

			var ag api.Agent
			e.user(t, "GET", "/agents/builder", nil).ok(t, http.StatusOK, &ag)
			var groups []api.Group
			e.user(t, "GET", "/groups", nil).ok(t, http.StatusOK, &groups)
			names := []string{}
			for _, g := range groups {
				names = append(names, g.Name)
			}
			if !tc.authorized {
				require.Empty(t, rr.Credential)
				require.Equal(t, ci.AgentDiscovered, ag.State)
				require.Equal(t, []string{"all"}, names, "a rejected key creates no groups")
				var discovered []api.Agent
				e.user(t, "GET", "/agents?discovered=1", nil).ok(t, http.StatusOK, &discovered)
				require.Len(t, discovered, 1)
				return
			}
			require.NotEmpty(t, rr.Credential)
			require.ElementsMatch(t, append([]string{"all"}, tc.groups...), ag.Groups)
			require.ElementsMatch(t, append([]string{"all"}, tc.groups...), names, "the key's groups are created")
			require.Equal(t, ci.AgentIdle, ag.State)
			e.call(t, "POST", "/agent/work", nil, rr.Credential).ok(t, http.StatusNoContent, nil)
		})
	}
}

// agentWrites are the fenced job writes of an agent, for attempt n of job id.
func agentWrites(id int64, n int) []struct {
	name, path string
	body       any
} {
	return []struct {
		name, path string
		body       any
	}{
		{name: "start", path: fmt.Sprintf("/agent/jobs/%d/start", id), body: api.AttemptRequest{Attempt: n}},
		{name: "heartbeat", path: fmt.Sprintf("/agent/jobs/%d/heartbeat", id), body: api.AttemptRequest{Attempt: n}},
		{name: "log chunk", path: fmt.Sprintf("/agent/jobs/%d/steps/0/logs?attempt=%d&seq=0", id, n), body: "intruder output\n"},
		{name: "step result", path: fmt.Sprintf("/agent/jobs/%d/steps/0", id), body: api.StepResult{Attempt: n, Status: ci.StepFailed}},
		{name: "complete", path: fmt.Sprintf("/agent/jobs/%d/complete", id), body: api.CompleteJob{Attempt: n, Result: ci.JobFailed}},
	}
}

// TestAgentIdentityFromCredential: the agent is who its credential says; a
// job id and attempt number from another agent's assignment are not enough.
func TestAgentIdentityFromCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 2)
	alice := e.agent(t, "alice")
	j := e.queueJob(t, fx)
	asg := e.claim(t, alice)
	require.Equal(t, j.ID, asg.JobID)
	require.Equal(t, 1, asg.Attempt)
	bob := e.agent(t, "bob")

	for _, phase := range []string{"assigned", "running"} {
		if phase == "running" {
			e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/start", j.ID), api.AttemptRequest{Attempt: 1}, alice.cred).ok(t, http.StatusNoContent, nil)
		}
		before := e.snapshot(t)
		for _, w := range agentWrites(j.ID, asg.Attempt) {
			t.Run(phase+"/"+w.name, func(t *testing.T) {
				ae := e.call(t, "POST", w.path, w.body, bob.cred).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
				require.Contains(t, ae.Message, "not this agent's current attempt")
				e.unchanged(t, before)
			})
		}
	}

	// The rightful agent's writes all succeed.
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/steps/0/logs?attempt=1&seq=0", j.ID), "alice output\n", alice.cred).ok(t, http.StatusNoContent, nil)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/steps/0", j.ID), api.StepResult{Attempt: 1, Status: ci.StepOK}, alice.cred).ok(t, http.StatusNoContent, nil)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/complete", j.ID), api.CompleteJob{Attempt: 1, Result: ci.JobOK}, alice.cred).ok(t, http.StatusNoContent, nil)
	got := e.job(t, j.ID)
	require.Equal(t, ci.JobCompleted, got.State)
	require.Equal(t, ci.JobOK, got.Result)
	// Bob's retry of a completion that never was his is still refused.
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/complete", j.ID), api.CompleteJob{Attempt: 1, Result: ci.JobOK}, bob.cred).
		envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	chunks, err := e.st.ReadLogs(context.Background(), j.ID, -1, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	require.Len(t, chunks, 1)
	require.Equal(t, "alice output\n", string(chunks[0].Data))
}

// TestStaleAttempt: once a job was requeued (its agent went silent), every
// write of the old attempt is refused, also after another agent took it.
func TestStaleAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 2)
	alice := e.agent(t, "alice")
	j := e.queueJob(t, fx)
	require.Equal(t, 1, e.claim(t, alice).Attempt)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/start", j.ID), api.AttemptRequest{Attempt: 1}, alice.cred).ok(t, http.StatusNoContent, nil)

	// What the watchdog does when the lease expires.
	_, outcome, err := e.st.FailAttempt(context.Background(), store.AttemptFailure{JobID: j.ID, Attempt: 1, At: time.Now(),
		Outcome: ci.JobAgentLost, Retry: true})
	require.NoError(t, err)
	require.Equal(t, store.FailRequeued, outcome)

	before := e.snapshot(t)
	for _, w := range agentWrites(j.ID, 1) {
		t.Run("requeued/"+w.name, func(t *testing.T) {
			ae := e.call(t, "POST", w.path, w.body, alice.cred).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
			require.Contains(t, ae.Message, "stop it")
			e.unchanged(t, before)
		})
	}

	bob := e.agent(t, "bob")
	asg := e.claim(t, bob)
	require.Equal(t, j.ID, asg.JobID)
	require.Equal(t, 2, asg.Attempt)
	before = e.snapshot(t)
	for _, attempt := range []int{1, 2} {
		for _, w := range agentWrites(j.ID, attempt) {
			t.Run(fmt.Sprintf("reassigned/attempt %d/%s", attempt, w.name), func(t *testing.T) {
				e.call(t, "POST", w.path, w.body, alice.cred).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
				e.unchanged(t, before)
			})
		}
	}
	for _, w := range agentWrites(j.ID, 2) {
		r := e.call(t, "POST", w.path, w.body, bob.cred)
		require.Less(t, r.status, 300, "%s: %s", w.name, r.body)
	}
}

// TestAgentRestartRequeuesItsJob: an agent that asks for work while the
// server thinks it runs a job lost that job; it is requeued for a new attempt.
func TestAgentRestartRequeuesItsJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	a := e.agent(t, "alice")
	j := e.queueJob(t, fx)
	e.claim(t, a)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/start", j.ID), api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusNoContent, nil)

	held := e.async(t, "POST", fmt.Sprintf("/agent/jobs/%d/heartbeat?wait=%d", j.ID, int(longWait/time.Second)), api.AttemptRequest{Attempt: 1}, a.cred)
	waitFor(t, "the heartbeat to wait", func() bool { return e.hub.Subscribers(engine.CancelKey(j.ID)) == 1 })

	asg := e.claim(t, a)
	require.Equal(t, j.ID, asg.JobID)
	require.Equal(t, 2, asg.Attempt, "the lost attempt is replaced by a new one")

	// The held heartbeat of the old attempt learns at once that it is stale.
	r := await(t, held, prompt)
	r.resp.envelope(t, http.StatusConflict, api.CodeStaleAttempt)
}

func TestWorkLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 2)
	a := e.agent(t, "alice")

	t.Run("empty wait answers 204", func(t *testing.T) {
		start := time.Now()
		e.call(t, "POST", "/agent/work?wait=0.2", api.WorkRequest{}, a.cred).ok(t, http.StatusNoContent, nil)
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	})

	t.Run("job queued while waiting", func(t *testing.T) {
		held := e.async(t, "POST", fmt.Sprintf("/agent/work?wait=%d", int(longWait/time.Second)), api.WorkRequest{}, a.cred)
		waitFor(t, "the agent to wait for work", func() bool { return e.disp.Waiting() == 1 })
		queuedAt := time.Now()
		j := e.queueJob(t, fx)
		r := await(t, held, longWait)
		latency := time.Since(queuedAt)
		t.Logf("work long poll answered %v after the job was queued (wait %v)", latency, longWait)
		require.Less(t, latency, prompt)
		var asg api.Assignment
		r.resp.ok(t, http.StatusOK, &asg)
		require.Equal(t, j.ID, asg.JobID)
		require.Equal(t, 1, asg.Attempt)
		require.Equal(t, "build", asg.Name)
		require.Equal(t, "proj", asg.Project)
		require.Equal(t, "main", asg.Branch)
		require.Equal(t, "build", asg.Stage)
		require.Equal(t, ci.FlowCI, asg.FlowKind)
		require.Equal(t, 30, asg.LeaseSeconds)
		require.Positive(t, asg.Timeout)
		require.Equal(t, fmt.Sprint(j.ID), asg.Env["KK_JOB_ID"])
		require.Equal(t, "1", asg.Env["KK_JOB_ATTEMPT"])
		require.Len(t, asg.Steps, 2)
		require.Equal(t, "shell", asg.Steps[1].Tool)
		require.Equal(t, "step1", asg.Steps[1].Name)
		require.Equal(t, "echo 1", asg.Steps[1].Fields["cmd"])
		require.Equal(t, ci.JobAssigned, e.job(t, j.ID).State)

		// The response was lost: the next poll hands the same attempt out again, at once.
		start := time.Now()
		var again api.Assignment
		e.call(t, "POST", fmt.Sprintf("/agent/work?wait=%d", int(longWait/time.Second)), nil, a.cred).ok(t, http.StatusOK, &again)
		require.Less(t, time.Since(start), prompt)
		require.Equal(t, asg, again)
		require.Equal(t, 1, e.job(t, j.ID).Attempt)
	})

	t.Run("disabled agent gets no work", func(t *testing.T) {
		b := e.agent(t, "bob")
		e.user(t, "POST", "/agents/bob/disable", nil).ok(t, http.StatusOK, nil)
		j := e.queueJob(t, fx)
		e.call(t, "POST", "/agent/work?wait=0.2", nil, b.cred).ok(t, http.StatusNoContent, nil)
		require.Equal(t, ci.JobQueued, e.job(t, j.ID).State)
		e.user(t, "POST", "/agents/bob/enable", nil).ok(t, http.StatusOK, nil)
		require.Equal(t, j.ID, e.claim(t, b).JobID)
	})
}

func TestLogChunksIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 2)
	a := e.agent(t, "alice")
	j := e.queueJob(t, fx)
	e.claim(t, a)
	logURL := func(step, seq int) string {
		return fmt.Sprintf("/agent/jobs/%d/steps/%d/logs?attempt=1&seq=%d", j.ID, step, seq)
	}
	sends := []struct {
		name      string
		step, seq int
		data      string
		status    int
		code      string
		stored    int
	}{
		{name: "first chunk", step: 0, seq: 0, data: "hello\n", status: 204, stored: 1},
		{name: "resend", step: 0, seq: 0, data: "hello\n", status: 204, stored: 1},
		{name: "resend with other bytes keeps the first", step: 0, seq: 0, data: "HELLO\n", status: 204, stored: 1},
		{name: "next chunk", step: 0, seq: 1, data: "world\n", status: 204, stored: 2},
		{name: "empty chunk", step: 1, seq: 0, data: "", status: 204, stored: 3},
		{name: "binary chunk", step: 1, seq: 1, data: "\xff\x00\xe2\x82", status: 204, stored: 4},
		{name: "step out of range", step: 2, seq: 0, data: "x", status: 400, code: api.CodeBadRequest, stored: 4},
		{name: "negative seq", step: 0, seq: -1, data: "x", status: 400, code: api.CodeBadRequest, stored: 4},
	}
	for _, s := range sends {
		t.Run(s.name, func(t *testing.T) {
			r := e.call(t, "POST", logURL(s.step, s.seq), s.data, a.cred)
			if s.code != "" {
				r.envelope(t, s.status, s.code)
			} else {
				r.ok(t, s.status, nil)
			}
			chunks, err := e.st.ReadLogs(context.Background(), j.ID, -1, -1, store.LogPos{}, 0)
			require.NoError(t, err)
			require.Len(t, chunks, s.stored)
		})
	}
	r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs?step=0", j.ID), nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "hello\nworld\n", string(r.body))
}

// TestHeartbeatCancel: a held heartbeat answers cancel:true as soon as a user
// cancels the job; the agent's completion then closes it, idempotently.
func TestHeartbeatCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 2)
	a := e.agent(t, "alice")
	j := e.queueJob(t, fx)
	e.claim(t, a)
	hb := fmt.Sprintf("/agent/jobs/%d/heartbeat", j.ID)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/start", j.ID), api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusNoContent, nil)

	var hr api.HeartbeatResponse
	e.call(t, "POST", hb, api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusOK, &hr)
	require.Equal(t, api.HeartbeatResponse{Cancel: false, LeaseSeconds: 30}, hr)
	start := time.Now()
	e.call(t, "POST", hb+"?wait=0.2", api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusOK, &hr)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "the heartbeat is held for wait")
	require.False(t, hr.Cancel)

	held := e.async(t, "POST", fmt.Sprintf("%s?wait=%d", hb, int(longWait/time.Second)), api.AttemptRequest{Attempt: 1}, a.cred)
	waitFor(t, "the heartbeat to wait", func() bool { return e.hub.Subscribers(engine.CancelKey(j.ID)) == 1 })
	cancelledAt := time.Now()
	var jd api.JobDetail
	e.user(t, "POST", fmt.Sprintf("/jobs/%d/cancel", j.ID), nil).ok(t, http.StatusOK, &jd)
	require.Equal(t, ci.JobRunning, jd.State, "the agent stops a running job itself")
	r := await(t, held, longWait)
	latency := time.Since(cancelledAt)
	t.Logf("held heartbeat answered %v after the cancel (wait %v)", latency, longWait)
	require.Less(t, latency, prompt)
	r.resp.ok(t, http.StatusOK, &hr)
	require.True(t, hr.Cancel)

	// Later heartbeats keep saying cancel, without waiting.
	start = time.Now()
	e.call(t, "POST", fmt.Sprintf("%s?wait=%d", hb, int(longWait/time.Second)), api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusOK, &hr)
	require.True(t, hr.Cancel)
	require.Less(t, time.Since(start), prompt)

	complete := fmt.Sprintf("/agent/jobs/%d/complete", j.ID)
	tests := []struct {
		name   string
		body   api.CompleteJob
		status int
	}{
		{name: "complete", body: api.CompleteJob{Attempt: 1, Result: ci.JobCancelled, Message: "cancelled"}, status: http.StatusNoContent},
		{name: "retry", body: api.CompleteJob{Attempt: 1, Result: ci.JobCancelled, Message: "cancelled"}, status: http.StatusNoContent},
		{name: "retry with another result keeps the first", body: api.CompleteJob{Attempt: 1, Result: ci.JobOK}, status: http.StatusNoContent},
		{name: "other attempt", body: api.CompleteJob{Attempt: 2, Result: ci.JobOK}, status: http.StatusConflict},
		{name: "bad result", body: api.CompleteJob{Attempt: 1, Result: "great"}, status: http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(t, "POST", complete, tc.body, a.cred)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			got := e.job(t, j.ID)
			require.Equal(t, ci.JobCompleted, got.State)
			require.Equal(t, ci.JobCancelled, got.Result)
			require.Equal(t, "cancelled", got.Message)
		})
	}
	run, err := e.st.GetRun(context.Background(), j.RunID)
	require.NoError(t, err)
	require.Equal(t, ci.RunCompleted, run.State)

	// A heartbeat of the attempt that completed the job tells the agent to
	// stop, without calling the attempt stale (its completion may just have
	// crossed the heartbeat on the wire).
	e.call(t, "POST", hb, api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusOK, &hr)
	require.True(t, hr.Cancel)
	// Another attempt number is stale.
	e.call(t, "POST", hb, api.AttemptRequest{Attempt: 2}, a.cred).envelope(t, http.StatusConflict, api.CodeStaleAttempt)
	var ag api.Agent
	e.user(t, "GET", "/agents/alice", nil).ok(t, http.StatusOK, &ag)
	require.Zero(t, ag.JobID)
	require.Equal(t, ci.AgentIdle, ag.State)
}

// TestJobLifecycle drives a job through the protocol and checks what users see.
func TestJobLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 2)
	a := e.agent(t, "alice")
	j := e.queueJob(t, fx)
	e.claim(t, a)
	var ag api.Agent
	e.user(t, "GET", "/agents/alice", nil).ok(t, http.StatusOK, &ag)
	require.Equal(t, ci.AgentPreparing, ag.State)
	require.Equal(t, j.ID, ag.JobID)

	call := func(path string, body any) {
		t.Helper()
		r := e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d%s", j.ID, path), body, a.cred)
		require.Less(t, r.status, 300, "%s: %s", path, r.body)
	}
	call("/start", api.AttemptRequest{Attempt: 1})
	call("/start", api.AttemptRequest{Attempt: 1}) // a retried start is harmless
	e.user(t, "GET", "/agents/alice", nil).ok(t, http.StatusOK, &ag)
	require.Equal(t, ci.AgentBuilding, ag.State)
	exit0, exit2 := 0, 2
	now := time.Now().UTC().Truncate(time.Millisecond)
	call("/steps/0", api.StepResult{Attempt: 1, Status: ci.StepRunning, Started: &now})
	call("/steps/0", api.StepResult{Attempt: 1, Status: ci.StepOK, ExitCode: &exit0, Started: &now, Finished: &now})
	call("/steps/1", api.StepResult{Attempt: 1, Status: ci.StepFailed, ExitCode: &exit2, Reason: "retcode"})
	r := e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/steps/0", j.ID), api.StepResult{Attempt: 1, Status: "pending"}, a.cred)
	require.Contains(t, r.envelope(t, http.StatusBadRequest, api.CodeBadRequest).Message, `step status "pending" is unknown`)
	call("/complete", api.CompleteJob{Attempt: 1, Result: ci.JobFailed, Message: "step 1 failed"})

	var jd api.JobDetail
	e.user(t, "GET", fmt.Sprintf("/jobs/%d", j.ID), nil).ok(t, http.StatusOK, &jd)
	require.Equal(t, ci.JobCompleted, jd.State)
	require.Equal(t, ci.JobFailed, jd.Result)
	require.Equal(t, "alice", jd.Agent)
	require.Equal(t, []ci.StepStatus{ci.StepOK, ci.StepFailed}, []ci.StepStatus{jd.Steps[0].Status, jd.Steps[1].Status})
	require.Equal(t, &exit2, jd.Steps[1].ExitCode)
	require.Empty(t, jd.WaitReason)
	require.Len(t, jd.Attempts, 1)
	require.Equal(t, "alice", jd.Attempts[0].Agent)
	require.Equal(t, ci.JobFailed, jd.Attempts[0].Outcome)
	require.Equal(t, "step 1 failed", jd.Attempts[0].Message)
	require.NotNil(t, jd.Attempts[0].Started)

	var fd api.FlowDetail
	e.user(t, "GET", fmt.Sprintf("/flows/%d", j.FlowID), nil).ok(t, http.StatusOK, &fd)
	require.Equal(t, ci.FlowCompleted, fd.State)
	require.Equal(t, "proj", fd.Project)
	require.Equal(t, 1, fd.Runs[0].JobsError)

	var nj api.JobDetail
	e.user(t, "POST", fmt.Sprintf("/jobs/%d/rerun", j.ID), nil).ok(t, http.StatusOK, &nj)
	require.NotEqual(t, j.ID, nj.ID)
	require.Equal(t, ci.JobQueued, nj.State)
	require.Equal(t, nj.ID, e.claim(t, a).JobID)
	require.True(t, slices.ContainsFunc(e.listJobs(t, j.RunID), func(x ci.Job) bool { return x.ID == j.ID && x.Covered }))
}

func (e *env) listJobs(t testing.TB, runID int64) []ci.Job {
	t.Helper()
	js, err := e.st.ListJobs(context.Background(), runID)
	require.NoError(t, err)
	return js
}

// TestAgentRegisterUUIDNotReused guards the UUID normalisation: the canonical
// form is what the store keeps.
func TestAgentRegisterUUIDNotReused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newAgentIdentity("builder")
	a.uuid = strings.ToUpper(strings.ReplaceAll(a.uuid, "-", ""))
	var rr api.RegisterResponse
	e.call(t, "POST", "/agent/register", a.register(""), "").ok(t, http.StatusOK, &rr)
	var ag api.Agent
	e.user(t, "GET", "/agents/builder", nil).ok(t, http.StatusOK, &ag)
	want, err := uuid.Parse(a.uuid)
	require.NoError(t, err)
	require.Equal(t, want.String(), ag.UUID)
}

// TestShutdownEndsLongPolls: when kkd stops (its base context ends) every
// held request answers at once with something the agent understands.
func TestShutdownEndsLongPolls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	busy := e.agent(t, "busy")
	j := e.queueJob(t, fx)
	e.claim(t, busy)
	idle := e.agent(t, "idle")
	waiting := newAgentIdentity("waiting")
	var rr api.RegisterResponse
	e.call(t, "POST", "/agent/register", waiting.register(""), "").ok(t, http.StatusOK, &rr)

	w := fmt.Sprintf("?wait=%d", int(longWait/time.Second))
	heartbeat := e.async(t, "POST", fmt.Sprintf("/agent/jobs/%d/heartbeat%s", j.ID, w), api.AttemptRequest{Attempt: 1}, busy.cred)
	work := e.async(t, "POST", "/agent/work"+w, nil, idle.cred)
	register := e.async(t, "POST", "/agent/register"+w, waiting.register(""), "")
	follow := e.async(t, "GET", fmt.Sprintf("/jobs/%d/logs?follow=1", j.ID), nil, e.token)
	waitFor(t, "every long poll to wait", func() bool {
		return e.hub.Subscribers(engine.CancelKey(j.ID)) == 1 && e.disp.Waiting() == 1 &&
			e.hub.Subscribers(server.AuthKey(rr.AgentID)) == 1 && e.hub.Subscribers(logs.Key(j.ID)) == 1
	})
	e.shutdown()

	// A call interrupted inside a store call answers 503 unavailable, which
	// agents retry; one interrupted while waiting answers what a timeout would.
	tests := []struct {
		name string
		ch   <-chan asyncResult
		ok   int // the success status allowed besides 503
	}{
		{name: "heartbeat", ch: heartbeat},
		{name: "work", ch: work, ok: http.StatusNoContent},
		{name: "register", ch: register, ok: http.StatusOK},
		{name: "follow", ch: follow, ok: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := await(t, tc.ch, prompt)
			if r.resp.status == tc.ok {
				return
			}
			r.resp.envelope(t, http.StatusServiceUnavailable, api.CodeUnavailable)
		})
	}
}
