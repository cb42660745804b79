package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/server"
)

// clock is a settable clock for the server.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (e *env) agentState(t *testing.T, name string) api.Agent {
	t.Helper()
	var ag api.Agent
	e.user(t, "GET", "/agents/"+name, nil).ok(t, http.StatusOK, &ag)
	return ag
}

// held is a long poll whose connection the test can drop, as a killed agent does.
type held struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (e *env) hold(t *testing.T, path string, body any, token string) *held {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := request(t, "POST", e.base+path, body, token).WithContext(ctx)
	h := &held{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// drop ends the poll from the agent's side and waits until the client gave up.
func (h *held) drop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(prompt):
		t.Fatal("the held request did not end")
	}
}

// TestAgentStates walks agents through the states GoCD shows, on a server
// clock the test moves. An agent holding a work poll or a heartbeat is seen
// now however old its LastSeen; when the poll's connection drops, LastSeen
// is that moment and the agent turns lost_contact ci.LostAfter later.
func TestAgentStates(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now().UTC().Truncate(time.Millisecond)}
	e := newEnv(t, func(c *server.Config) { c.Now = clk.Now; c.StartedAt = clk.Now() })
	fx := e.fixture(t, 1)
	alice := e.agent(t, "alice")
	bob := e.agent(t, "bob")
	discovered := newAgentIdentity("dora")
	e.call(t, "POST", "/agent/register", discovered.register(""), "").ok(t, http.StatusOK, nil)
	var work *held
	var heartbeat *held
	var job api.JobDetail
	steps := []struct {
		name  string
		do    func(t *testing.T)
		agent string
		want  ci.AgentState
	}{
		{name: "registered", agent: "alice", want: ci.AgentIdle},
		{name: "unauthorized", agent: "dora", want: ci.AgentDiscovered},
		{name: "silent past LostAfter", do: func(t *testing.T) { clk.Add(ci.LostAfter + 10*time.Second) }, agent: "alice", want: ci.AgentLostContact},
		{name: "holding a work poll", do: func(t *testing.T) {
			work = e.hold(t, fmt.Sprintf("/agent/work?wait=%d", int(longWait/time.Second)), nil, alice.cred)
			waitFor(t, "the work poll to be held", func() bool { return e.disp.Waiting() == 1 })
			clk.Add(ci.LostAfter + 10*time.Second) // the poll is older than LostAfter
		}, agent: "alice", want: ci.AgentIdle},
		{name: "poll dropped (agent killed)", do: func(t *testing.T) {
			work.drop(t)
			waitFor(t, "the held poll to end", func() bool {
				ag := e.agentState(t, "alice")
				return e.disp.Waiting() == 0 && ag.LastSeen != nil && ag.LastSeen.Equal(clk.Now())
			})
		}, agent: "alice", want: ci.AgentIdle},
		{name: "LostAfter after the drop", do: func(t *testing.T) { clk.Add(ci.LostAfter + time.Millisecond) }, agent: "alice", want: ci.AgentLostContact},
		{name: "disabled wins over lost contact", do: func(t *testing.T) {
			e.user(t, "POST", "/agents/alice/disable", nil).ok(t, http.StatusOK, nil)
		}, agent: "alice", want: ci.AgentDisabled},
		{name: "disabled agent that polls", do: func(t *testing.T) {
			e.user(t, "POST", "/agents/alice/enable", nil).ok(t, http.StatusOK, nil)
			e.user(t, "POST", "/agents/alice/disable", nil).ok(t, http.StatusOK, nil)
			e.call(t, "POST", "/agent/work?wait=0", nil, alice.cred).ok(t, http.StatusNoContent, nil)
		}, agent: "alice", want: ci.AgentDisabled},
		{name: "not seen since this kkd started", do: func(t *testing.T) {
			e.user(t, "POST", "/agents/alice/enable", nil).ok(t, http.StatusOK, nil)
			require.NoError(t, e.st.TouchAgent(context.Background(), alice.id, clk.Now().Add(-time.Hour), nil))
		}, agent: "alice", want: ci.AgentMissing},
		{name: "missing agent that polls", do: func(t *testing.T) {
			e.call(t, "POST", "/agent/work?wait=0", nil, alice.cred).ok(t, http.StatusNoContent, nil)
		}, agent: "alice", want: ci.AgentIdle},
		{name: "assigned a job", do: func(t *testing.T) {
			job = e.queueJob(t, fx)
			require.Equal(t, job.ID, e.claim(t, bob).JobID)
		}, agent: "bob", want: ci.AgentPreparing},
		{name: "running it", do: func(t *testing.T) {
			e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/start", job.ID), api.AttemptRequest{Attempt: 1}, bob.cred).ok(t, http.StatusNoContent, nil)
		}, agent: "bob", want: ci.AgentBuilding},
		{name: "holding a heartbeat", do: func(t *testing.T) {
			heartbeat = e.hold(t, fmt.Sprintf("/agent/jobs/%d/heartbeat?wait=%d", job.ID, int(longWait/time.Second)), api.AttemptRequest{Attempt: 1}, bob.cred)
			waitFor(t, "the heartbeat to be held", func() bool { return e.hub.Subscribers(engine.CancelKey(job.ID)) == 1 })
			clk.Add(ci.LostAfter + 10*time.Second)
		}, agent: "bob", want: ci.AgentBuilding},
		{name: "heartbeat dropped, then silence", do: func(t *testing.T) {
			heartbeat.drop(t)
			waitFor(t, "the heartbeat to end", func() bool { return e.hub.Subscribers(engine.CancelKey(job.ID)) == 0 })
			waitFor(t, "the drop to be recorded", func() bool {
				ag := e.agentState(t, "bob")
				return ag.LastSeen != nil && ag.LastSeen.Equal(clk.Now())
			})
			clk.Add(ci.LostAfter + time.Millisecond)
		}, agent: "bob", want: ci.AgentLostContact},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.do != nil {
				s.do(t)
			}
			require.Equal(t, s.want, e.agentState(t, s.agent).State)
			var list []api.Agent
			e.user(t, "GET", "/agents", nil).ok(t, http.StatusOK, &list)
			for _, a := range list {
				if a.Name == s.agent {
					require.Equal(t, s.want, a.State, "the list agrees")
				}
			}
		})
	}
}

// agentSpec is an agent of a wait reason case.
type agentSpec struct {
	name     string
	groups   []string
	system   string
	docker   bool
	busy     bool // runs a job of the stage
	disabled bool
	missing  bool // not seen since kkd started
}

// TestWaitReason: a queued job says why it waits.
func TestWaitReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    string // the stage's environment
		groups []string
		agents []agentSpec
		want   string
	}{
		{name: "no agent in group", env: `"agents_group": "gpu", "system": "any"`, groups: []string{"gpu"},
			agents: []agentSpec{{name: "a", groups: []string{"linux"}}},
			want:   `no agent in group "gpu": add one with ` + "`kk group add gpu AGENT`"},
		{name: "all busy", env: `"agents_group": "linux", "system": "any"`,
			agents: []agentSpec{{name: "a", groups: []string{"linux"}, busy: true}, {name: "b", groups: []string{"linux"}, busy: true}},
			want:   `agents of group "linux" are all busy (2)`},
		{name: "no docker", env: `"agents_group": "linux", "system": "any", "executor": "docker"`,
			agents: []agentSpec{{name: "a", groups: []string{"linux"}}},
			want:   `no agent in group "linux" has the docker executor`},
		{name: "other system", env: `"agents_group": "linux", "system": "ubuntu-22.04"`,
			agents: []agentSpec{{name: "a", groups: []string{"linux"}, system: "debian-12"}, {name: "b", groups: []string{"linux"}, system: "debian-11"}},
			want:   `no agent in group "linux" runs system "ubuntu-22.04" (they run debian-11, debian-12)`},
		{name: "disabled or missing", env: `"agents_group": "linux", "system": "any"`,
			agents: []agentSpec{{name: "a", groups: []string{"linux"}, disabled: true}, {name: "b", groups: []string{"linux"}, missing: true}},
			want:   `the agents of group "linux" that can run it are disabled or lost (a: disabled, b: missing)`},
		{name: "only the docker agent counts as busy", env: `"agents_group": "linux", "system": "any", "executor": "docker"`,
			agents: []agentSpec{{name: "a", groups: []string{"linux"}, docker: true, busy: true}, {name: "b", groups: []string{"linux"}}},
			want:   `agents of group "linux" are all busy (1)`},
		{name: "free agent", env: `"agents_group": "linux", "system": "any"`,
			agents: []agentSpec{{name: "a", groups: []string{"linux"}, busy: true}, {name: "b", groups: []string{"linux"}}},
			want:   "waiting for a free agent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for _, g := range tc.groups {
				e.user(t, "POST", "/groups", api.CreateGroup{Name: g}).ok(t, http.StatusCreated, nil)
			}
			agents := map[string]testAgent{}
			for _, s := range tc.agents {
				a := newAgentIdentity(s.name)
				reg := a.register(regKey, s.groups...)
				reg.HostInfo.System = "debian-12"
				if s.system != "" {
					reg.HostInfo.System = s.system
				}
				if s.docker {
					reg.HostInfo.Docker = "27.0.1"
				}
				var rr api.RegisterResponse
				e.call(t, "POST", "/agent/register", reg, "").ok(t, http.StatusOK, &rr)
				a.id, a.cred = rr.AgentID, rr.Credential
				agents[s.name] = a
			}
			// Registration created the groups the stage names.
			e.project(t, "proj")
			b := e.branch(t, "proj", "main")
			e.stage(t, b.ID, "build", `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "steps": [{"tool": "shell", "cmd": "make"}],
            "environments": [{`+tc.env+`}],
        }],
    }
`)
			for _, s := range tc.agents {
				a := agents[s.name]
				if s.busy {
					f := e.flow(t, b.ID)
					require.Equal(t, f.Runs[0].Jobs[0].ID, e.claim(t, a).JobID)
				}
				if s.disabled {
					e.user(t, "POST", "/agents/"+s.name+"/disable", nil).ok(t, http.StatusOK, nil)
				}
				if s.missing {
					require.NoError(t, e.st.TouchAgent(context.Background(), a.id, time.Now().Add(-time.Hour), nil))
				}
			}
			f := e.flow(t, b.ID)
			jd := f.Runs[0].Jobs[0]
			require.Equal(t, ci.JobQueued, jd.State)
			require.Equal(t, tc.want, jd.WaitReason, "in the flow")
			e.user(t, "GET", fmt.Sprintf("/jobs/%d", jd.ID), nil).ok(t, http.StatusOK, &jd)
			require.Equal(t, tc.want, jd.WaitReason, "in the job")
		})
	}
}

// TestRotateAgentToken: the old credential stops working at once, the
// agent's held work poll ends, and the agent gets a new credential by
// registering with its enroll secret.
func TestRotateAgentToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent(t, "alice")
	poll := e.async(t, "POST", fmt.Sprintf("/agent/work?wait=%d", int(longWait/time.Second)), nil, a.cred)
	waitFor(t, "the work poll to be held", func() bool { return e.disp.Waiting() == 1 })

	var ag api.Agent
	e.user(t, "POST", "/agents/alice/rotate-token", nil).ok(t, http.StatusOK, &ag)
	require.Equal(t, "alice", ag.Name)
	require.True(t, ag.Authorized, "the agent stays authorized")
	r := await(t, poll, prompt)
	r.resp.ok(t, http.StatusNoContent, nil)

	ae := e.call(t, "POST", "/agent/work?wait=0", nil, a.cred).envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
	require.Contains(t, ae.Message, "register again")
	var rr api.RegisterResponse
	e.call(t, "POST", "/agent/register", a.register(""), "").ok(t, http.StatusOK, &rr)
	require.True(t, rr.Authorized)
	require.NotEmpty(t, rr.Credential)
	require.NotEqual(t, a.cred, rr.Credential)
	e.call(t, "POST", "/agent/work?wait=0", nil, rr.Credential).ok(t, http.StatusNoContent, nil)
	e.call(t, "POST", "/agent/work?wait=0", nil, a.cred).envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)

	t.Run("refusals", func(t *testing.T) {
		d := newAgentIdentity("dora")
		e.call(t, "POST", "/agent/register", d.register(""), "").ok(t, http.StatusOK, nil)
		ae := e.user(t, "POST", "/agents/dora/rotate-token", nil).envelope(t, http.StatusConflict, api.CodeConflict)
		require.Contains(t, ae.Message, "kk agent authorize dora")
		e.user(t, "POST", "/agents/nobody/rotate-token", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
	})
}

// TestDeleteAgent: a busy agent is deleted only with force, which cancels
// its job first.
func TestDeleteAgent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		busy   bool
		query  string
		status int
		code   string
	}{
		{name: "idle", status: http.StatusNoContent},
		{name: "busy", busy: true, status: http.StatusConflict, code: api.CodeConflict},
		{name: "busy with force", busy: true, query: "?force=1", status: http.StatusNoContent},
		{name: "idle with force", query: "?force=true", status: http.StatusNoContent},
		{name: "bad force", query: "?force=maybe", status: http.StatusBadRequest, code: api.CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var a testAgent
			var j api.JobDetail
			var heartbeat <-chan asyncResult
			if tc.busy {
				a, j = e.runningJob(t, 1)
				heartbeat = e.async(t, "POST", fmt.Sprintf("/agent/jobs/%d/heartbeat?wait=%d", j.ID, int(longWait/time.Second)),
					api.AttemptRequest{Attempt: 1}, a.cred)
				waitFor(t, "the heartbeat to be held", func() bool { return e.hub.Subscribers(engine.CancelKey(j.ID)) == 1 })
			} else {
				a = e.agent(t, "alice")
			}
			r := e.user(t, "DELETE", "/agents/alice"+tc.query, nil)
			if tc.code != "" {
				ae := r.envelope(t, tc.status, tc.code)
				if tc.busy {
					require.Contains(t, ae.Message, "--force")
					require.Equal(t, ci.JobRunning, e.job(t, j.ID).State, "the job runs on")
				}
				e.agentState(t, "alice")
				return
			}
			r.ok(t, tc.status, nil)
			e.user(t, "GET", "/agents/alice", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
			e.call(t, "POST", "/agent/work?wait=0", nil, a.cred).envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
			if tc.busy {
				got := e.job(t, j.ID)
				require.Equal(t, ci.JobCompleted, got.State)
				require.Equal(t, ci.JobCancelled, got.Result)
				require.True(t, strings.HasPrefix(got.Message, "cancelled: its agent alice was deleted"), got.Message)
				// The deleted agent's held heartbeat tells it to stop: with
				// cancel:true when it reads the cancelled job before the agent
				// row is gone, as stale once it is gone. Both stop the agent.
				res := await(t, heartbeat, prompt)
				if res.resp.status == http.StatusOK {
					var hr api.HeartbeatResponse
					res.resp.ok(t, http.StatusOK, &hr)
					require.True(t, hr.Cancel)
				} else {
					res.resp.envelope(t, http.StatusConflict, api.CodeStaleAttempt)
				}
			}
		})
	}
}
