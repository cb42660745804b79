package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/scheduler"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

// fixture is a real SQLite store with one flow to queue jobs in.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	st   store.Store
	flow ci.Flow
	n    atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	p := ci.Project{Name: "proj"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", RepoBranch: "main"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	f := ci.Flow{BranchID: b.ID, Kind: ci.FlowCI}
	require.NoError(t, st.CreateFlow(ctx, &f))
	return &fixture{t: t, ctx: ctx, st: st, flow: f}
}

// dispatcher returns a started dispatcher that stops with the test.
func (f *fixture) dispatcher() *scheduler.Dispatcher {
	d := scheduler.New(scheduler.Config{Store: f.st, Logger: slog.New(slog.DiscardHandler), Lease: time.Minute})
	d.Start(f.ctx)
	return d
}

// agent registers and authorizes an agent (group "all") and adds it to groups.
func (f *fixture) agent(name string, info ci.HostInfo, groups ...string) ci.Agent {
	f.t.Helper()
	a, err := f.st.RegisterAgent(f.ctx, ci.Agent{UUID: fmt.Sprintf("uuid-%s-%d", name, f.n.Add(1)), Name: name, HostInfo: info}, time.Now())
	require.NoError(f.t, err)
	_, err = f.st.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(f.t, err)
	for _, name := range groups {
		g, err := f.st.GetGroupByName(f.ctx, name)
		if err != nil {
			g = ci.Group{Name: name}
			require.NoError(f.t, f.st.CreateGroup(f.ctx, &g))
		}
		require.NoError(f.t, f.st.AddAgentToGroup(f.ctx, g.ID, a.ID))
	}
	a, err = f.st.GetAgent(f.ctx, a.ID)
	require.NoError(f.t, err)
	return a
}

// queue creates an in_progress run of n jobs in group and returns them in order.
func (f *fixture) queue(n int, group string) []ci.Job {
	f.t.Helper()
	jobs := make([]*ci.Job, n)
	for i := range jobs {
		jobs[i] = &ci.Job{
			Name: fmt.Sprintf("job-%d", i), Group: group, System: ci.SystemAny, Executor: ci.ExecutorLocal, Timeout: 600,
			Steps: []ci.Step{{Tool: "shell", Fields: map[string]any{"tool": "shell", "cmd": "true"}}},
		}
	}
	r := ci.Run{FlowID: f.flow.ID, StageName: "build", State: ci.RunInProgress, Reason: "test"}
	require.NoError(f.t, f.st.CreateRun(f.ctx, &r, jobs))
	out := make([]ci.Job, n)
	for i, j := range jobs {
		out[i] = *j
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(time.Millisecond) // poll interval; cond is re-checked
	}
}

type waitResult struct {
	job ci.Job
	ok  bool
}

// waitAsync runs d.Wait in a goroutine and returns its result channel.
func waitAsync(ctx context.Context, d *scheduler.Dispatcher, a ci.Agent) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		j, ok := d.Wait(ctx, a)
		ch <- waitResult{j, ok}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return waitResult{}
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	debian := ci.HostInfo{System: "debian-12"}
	withDocker := ci.HostInfo{System: "debian-12", Docker: "27.1"}
	withLXD := ci.HostInfo{System: "debian-12", LXD: "5.21"}
	agent := func(info ci.HostInfo, groups ...string) ci.Agent {
		return ci.Agent{ID: 1, Authorized: true, HostInfo: info, Groups: groups}
	}
	job := func(group, system, executor string) ci.Job {
		return ci.Job{Group: group, System: system, Executor: executor}
	}
	tests := []struct {
		name  string
		agent ci.Agent
		job   ci.Job
		want  bool
	}{
		{"group member", agent(debian, "all"), job("all", "any", "local"), true},
		{"one of several groups", agent(debian, "all", "gpu"), job("gpu", "any", "local"), true},
		{"not in group", agent(debian, "all"), job("gpu", "any", "local"), false},
		{"no groups", agent(debian), job("all", "any", "local"), false},
		{"disabled", ci.Agent{Authorized: true, Disabled: true, HostInfo: debian, Groups: []string{"all"}}, job("all", "any", "local"), false},
		{"unauthorized", ci.Agent{HostInfo: debian, Groups: []string{"all"}}, job("all", "any", "local"), false},
		{"system any", agent(debian, "all"), job("all", "any", "local"), true},
		{"system equal", agent(debian, "all"), job("all", "debian-12", "local"), true},
		{"system different", agent(debian, "all"), job("all", "ubuntu-24.04", "local"), false},
		{"empty executor means local, system checked", agent(debian, "all"), job("all", "ubuntu-24.04", ""), false},
		{"empty executor means local, system equal", agent(debian, "all"), job("all", "debian-12", ""), true},
		{"docker without docker", agent(debian, "all"), job("all", "alpine:3", "docker"), false},
		{"docker with docker, system is an image", agent(withDocker, "all"), job("all", "alpine:3", "docker"), true},
		{"docker host still runs local", agent(withDocker, "all"), job("all", "any", "local"), true},
		{"lxd without lxd", agent(withDocker, "all"), job("all", "ubuntu/24.04", "lxd"), false},
		{"lxd with lxd", agent(withLXD, "all"), job("all", "ubuntu/24.04", "lxd"), true},
		{"lxd host has no docker", agent(withLXD, "all"), job("all", "alpine:3", "docker"), false},
		{"unknown executor", agent(ci.HostInfo{System: "debian-12", Docker: "1", LXD: "1"}, "all"), job("all", "any", "kubernetes"), false},
		{"docker job in wrong group", agent(withDocker, "all"), job("gpu", "alpine:3", "docker"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, scheduler.Matches(tc.agent, tc.job))
		})
	}
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"FIFO across runs", func(t *testing.T, f *fixture) {
			// Run 1 is created first but gets its jobs last (a manual run
			// started later): its jobs still come first, then run 2's.
			manual := ci.Run{FlowID: f.flow.ID, StageName: "deploy", State: ci.RunManual, Reason: "test"}
			require.NoError(t, f.st.CreateRun(f.ctx, &manual, nil))
			second := f.queue(3, ci.GroupAll)
			late := []*ci.Job{
				{Name: "late-0", Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal},
				{Name: "late-1", Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal},
			}
			_, err := f.st.StartRun(f.ctx, manual.ID, late, time.Now())
			require.NoError(t, err)
			third := f.queue(2, ci.GroupAll)
			want := []int64{late[0].ID, late[1].ID, second[0].ID, second[1].ID, second[2].ID, third[0].ID, third[1].ID}

			d := f.dispatcher()
			a := f.agent("solo", ci.HostInfo{System: "debian-12"})
			var got []int64
			for range want {
				ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
				j, ok := d.Wait(ctx, a)
				cancel()
				require.True(t, ok)
				require.Equal(t, a.ID, j.AgentID)
				require.Equal(t, 1, j.Attempt)
				got = append(got, j.ID)
				_, _, err := f.st.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobOK, "", time.Now())
				require.NoError(t, err)
			}
			require.Equal(t, want, got)
		}},
		{"job queued after the agent waits arrives at once", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			a := f.agent("waiter", ci.HostInfo{System: "debian-12"})
			ch := waitAsync(f.ctx, d, a)
			waitFor(t, "agent waiting", func() bool { return d.Waiting() == 1 })
			jobs := f.queue(1, ci.GroupAll)
			start := time.Now()
			d.Kick()
			r := recv(t, ch)
			latency := time.Since(start)
			require.True(t, r.ok)
			require.Equal(t, jobs[0].ID, r.job.ID)
			require.Len(t, r.job.Steps, 1, "the job comes with its steps")
			require.Less(t, latency, 3*time.Second, "no polling interval: the kick wakes the dispatcher")
			require.Zero(t, d.Waiting())
		}},
		{"job queued before the agent waits is delivered at once", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			jobs := f.queue(1, ci.GroupAll)
			a := f.agent("late", ci.HostInfo{System: "debian-12"})
			ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			j, ok := d.Wait(ctx, a)
			require.True(t, ok)
			require.Equal(t, jobs[0].ID, j.ID)
			require.Less(t, time.Since(start), 2*time.Second)
			stored, err := f.st.GetAgent(f.ctx, a.ID)
			require.NoError(t, err)
			require.Equal(t, j.ID, stored.JobID)
		}},
		{"only matching agents get a job", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			other := f.agent("other", ci.HostInfo{System: "debian-12"})
			gpu := f.agent("gpu", ci.HostInfo{System: "debian-12"}, "gpu")
			otherCh := waitAsync(f.ctx, d, other)
			gpuCh := waitAsync(f.ctx, d, gpu)
			waitFor(t, "two waiting", func() bool { return d.Waiting() == 2 })
			jobs := f.queue(1, "gpu")
			d.Kick()
			r := recv(t, gpuCh)
			require.True(t, r.ok)
			require.Equal(t, jobs[0].ID, r.job.ID)
			select {
			case r := <-otherCh:
				t.Fatalf("agent outside the group got %+v", r)
			default:
			}
			require.Equal(t, 1, d.Waiting())
		}},
		{"refresh of a disabled agent ends its wait", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			a := f.agent("a", ci.HostInfo{System: "debian-12"})
			ch := waitAsync(f.ctx, d, a)
			waitFor(t, "agent waiting", func() bool { return d.Waiting() == 1 })
			disabled := a
			disabled.Disabled = true
			d.Refresh(disabled)
			r := recv(t, ch)
			require.False(t, r.ok)
			require.Zero(t, d.Waiting())
		}},
		{"refresh of an unauthorized agent ends its wait", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			a := f.agent("a", ci.HostInfo{System: "debian-12"})
			ch := waitAsync(f.ctx, d, a)
			waitFor(t, "agent waiting", func() bool { return d.Waiting() == 1 })
			revoked := a
			revoked.Authorized = false
			d.Refresh(revoked)
			require.False(t, recv(t, ch).ok)
		}},
		{"refresh with a new group lets the waiting agent take its jobs", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			a := f.agent("a", ci.HostInfo{System: "debian-12"})
			g := ci.Group{Name: "gpu"}
			require.NoError(t, f.st.CreateGroup(f.ctx, &g))
			jobs := f.queue(1, "gpu")
			ch := waitAsync(f.ctx, d, a)
			waitFor(t, "agent waiting", func() bool { return d.Waiting() == 1 })
			require.NoError(t, f.st.AddAgentToGroup(f.ctx, g.ID, a.ID))
			fresh, err := f.st.GetAgent(f.ctx, a.ID)
			require.NoError(t, err)
			d.Refresh(fresh)
			r := recv(t, ch)
			require.True(t, r.ok)
			require.Equal(t, jobs[0].ID, r.job.ID)
		}},
		{"second wait of the same agent replaces the first", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			a := f.agent("a", ci.HostInfo{System: "debian-12"})
			first := waitAsync(f.ctx, d, a)
			waitFor(t, "agent waiting", func() bool { return d.Waiting() == 1 })
			second := waitAsync(f.ctx, d, a)
			r := recv(t, first)
			require.False(t, r.ok, "the replaced wait returns empty")
			require.Equal(t, 1, d.Waiting())
			jobs := f.queue(1, ci.GroupAll)
			d.Kick()
			r = recv(t, second)
			require.True(t, r.ok)
			require.Equal(t, jobs[0].ID, r.job.ID)
		}},
		{"wait ends empty when its context ends", func(t *testing.T, f *fixture) {
			d := f.dispatcher()
			a := f.agent("a", ci.HostInfo{System: "debian-12"})
			ctx, cancel := context.WithCancel(f.ctx)
			ch := waitAsync(ctx, d, a)
			waitFor(t, "agent waiting", func() bool { return d.Waiting() == 1 })
			cancel()
			require.False(t, recv(t, ch).ok)
			require.Zero(t, d.Waiting())
		}},
		{"busy agent's wait gives way to others", func(t *testing.T, f *fixture) {
			// The store says the agent is busy (a claim the waiter never saw):
			// its wait must end instead of blocking the queue for it.
			d := f.dispatcher()
			a := f.agent("busy", ci.HostInfo{System: "debian-12"})
			jobs := f.queue(2, ci.GroupAll)
			_, err := f.st.ClaimJob(f.ctx, jobs[0].ID, a.ID, time.Minute)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
			defer cancel()
			_, ok := d.Wait(ctx, a)
			require.False(t, ok)
			require.NoError(t, ctx.Err(), "the wait ended because the agent is busy, not by timeout")
			b := f.agent("free", ci.HostInfo{System: "debian-12"})
			j, ok := d.Wait(ctx, b)
			require.True(t, ok)
			require.Equal(t, jobs[1].ID, j.ID)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newFixture(t))
		})
	}
}

// TestConcurrentClaims runs 20 agents against 200 jobs queued while they wait:
// every job is claimed exactly once.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	const agents, runs, perRun = 20, 10, 20
	f := newFixture(t)
	d := f.dispatcher()
	var all []ci.Agent
	for i := range agents {
		all = append(all, f.agent(fmt.Sprintf("agent-%d", i), ci.HostInfo{System: "debian-12"}))
	}
	ctx, cancel := context.WithTimeout(f.ctx, 60*time.Second)
	defer cancel()

	var mu sync.Mutex
	claims := map[int64][]int64{} // job → agents
	var done atomic.Int64
	allDone := make(chan struct{})
	var wg sync.WaitGroup
	for _, a := range all {
		wg.Go(func() {
			for ctx.Err() == nil {
				j, ok := d.Wait(ctx, a)
				if !ok {
					continue
				}
				mu.Lock()
				claims[j.ID] = append(claims[j.ID], a.ID)
				mu.Unlock()
				if _, _, err := f.st.CompleteJob(context.Background(), j.ID, j.Attempt, ci.JobOK, "", time.Now()); err != nil {
					t.Errorf("complete job %d: %v", j.ID, err)
				}
				if done.Add(1) == runs*perRun {
					close(allDone)
				}
			}
		})
	}
	var want []int64
	for range runs {
		for _, j := range f.queue(perRun, ci.GroupAll) {
			want = append(want, j.ID)
		}
		d.Kick()
	}
	select {
	case <-allDone:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	require.EqualValues(t, runs*perRun, done.Load())
	require.Len(t, claims, runs*perRun)
	for _, id := range want {
		require.Len(t, claims[id], 1, "job %d claimed by %v", id, claims[id])
		j, err := f.st.GetJob(f.ctx, id)
		require.NoError(t, err)
		require.Equal(t, ci.JobCompleted, j.State)
		require.Equal(t, 1, j.Attempt, "job %d was claimed more than once", id)
	}
}

// TestWaitTimeoutNeverLosesJob stresses Wait with tight timeouts: a job the
// dispatcher claims for a wait is always returned by a wait of its agent, and
// (with one poll per agent) a wait that returns empty leaves its agent without
// a job in the store.
func TestWaitTimeoutNeverLosesJob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// polls is how many overlapping Wait loops each agent runs: more than
		// one makes newer waits replace older ones.
		polls int
		// refresh keeps calling Refresh with the (unchanged) agents meanwhile.
		refresh bool
	}{
		{"one poll per agent", 1, false},
		{"overlapping polls and refreshes", 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const agents, jobs = 4, 150
			f := newFixture(t)
			d := f.dispatcher()
			var all []ci.Agent
			for i := range agents {
				all = append(all, f.agent(fmt.Sprintf("agent-%d", i), ci.HostInfo{System: "debian-12"}))
			}
			ctx, cancel := context.WithTimeout(f.ctx, 60*time.Second)
			defer cancel()
			var mu sync.Mutex
			got := map[int64]int{}
			var done atomic.Int64
			allDone := make(chan struct{})
			var wg sync.WaitGroup
			for i, a := range all {
				for p := range tc.polls {
					rnd := rand.New(rand.NewPCG(uint64(i), uint64(p)))
					wg.Go(func() {
						for ctx.Err() == nil {
							wctx, wcancel := context.WithTimeout(ctx, time.Duration(rnd.IntN(4000))*time.Microsecond)
							j, ok := d.Wait(wctx, a)
							wcancel()
							if !ok {
								if tc.polls > 1 {
									continue
								}
								cur, err := f.st.GetAgent(context.Background(), a.ID)
								if err != nil {
									t.Errorf("get agent: %v", err)
									return
								}
								if cur.JobID != 0 {
									t.Errorf("agent %d: wait returned empty but job %d was claimed for it", a.ID, cur.JobID)
									return
								}
								continue
							}
							if j.AgentID != a.ID {
								t.Errorf("job %d delivered to agent %d but claimed for %d", j.ID, a.ID, j.AgentID)
							}
							mu.Lock()
							got[j.ID]++
							mu.Unlock()
							if _, _, err := f.st.CompleteJob(context.Background(), j.ID, j.Attempt, ci.JobOK, "", time.Now()); err != nil {
								t.Errorf("complete job %d: %v", j.ID, err)
							}
							if done.Add(1) == jobs {
								close(allDone)
							}
						}
					})
				}
			}
			if tc.refresh {
				wg.Go(func() {
					for ctx.Err() == nil {
						for _, a := range all {
							d.Refresh(a)
						}
						select {
						case <-ctx.Done():
						case <-time.After(3 * time.Millisecond):
						}
					}
				})
			}
			for range jobs / 30 {
				f.queue(30, ci.GroupAll)
				d.Kick()
			}
			select {
			case <-allDone:
			case <-ctx.Done():
			}
			cancel()
			wg.Wait()
			require.EqualValues(t, jobs, done.Load(), "every job reaches an agent")
			require.Len(t, got, jobs)
			for id, n := range got {
				require.Equal(t, 1, n, "job %d delivered %d times", id, n)
			}
			for _, a := range all {
				cur, err := f.st.GetAgent(f.ctx, a.ID)
				require.NoError(t, err)
				require.Zero(t, cur.JobID, "agent %s holds a job no wait returned", a.Name)
			}
			require.Zero(t, d.Waiting())
		})
	}
}

func TestWaitReason(t *testing.T) {
	t.Parallel()
	agent := func(name, system string, groups []string, state ci.AgentState, mod ...func(*ci.Agent)) scheduler.Candidate {
		a := ci.Agent{Name: name, Authorized: state != ci.AgentDiscovered, Groups: groups, HostInfo: ci.HostInfo{System: system}}
		if state == ci.AgentBuilding || state == ci.AgentPreparing {
			a.JobID = 99
		}
		for _, m := range mod {
			m(&a)
		}
		return scheduler.Candidate{Agent: a, State: state}
	}
	docker := func(a *ci.Agent) { a.HostInfo.Docker = "27.0" }
	linux := []string{"all", "linux"}
	local := ci.Job{Group: "linux", System: ci.SystemAny, Executor: ci.ExecutorLocal}
	tests := []struct {
		name        string
		job         ci.Job
		agents      []scheduler.Candidate
		groupExists bool
		want        string
	}{
		{"group missing", ci.Job{Group: "gpu", System: ci.SystemAny}, nil, false,
			`agents group "gpu" does not exist: create it with ` + "`kk group create gpu`" + ` and add agents to it`},
		{"empty group", local, []scheduler.Candidate{agent("a", "debian-12", []string{"all"}, ci.AgentIdle)}, true,
			`no agent in group "linux": add one with ` + "`kk group add linux AGENT`"},
		{"only a discovered agent", local, []scheduler.Candidate{agent("a", "debian-12", linux, ci.AgentDiscovered)}, true,
			`no agent in group "linux": add one with ` + "`kk group add linux AGENT`"},
		{"no lxd", ci.Job{Group: "linux", System: "debian-12", Executor: ci.ExecutorLXD},
			[]scheduler.Candidate{agent("a", "debian-12", linux, ci.AgentIdle, docker)}, true,
			`no agent in group "linux" has the lxd executor`},
		{"system of docker jobs is the image's", ci.Job{Group: "linux", System: "alpine:3", Executor: ci.ExecutorDocker},
			[]scheduler.Candidate{agent("a", "debian-12", linux, ci.AgentIdle, docker)}, true, "waiting for a free agent"},
		{"other system", ci.Job{Group: "linux", System: "ubuntu-22.04"},
			[]scheduler.Candidate{agent("a", "debian-12", linux, ci.AgentIdle), agent("b", "debian-12", linux, ci.AgentIdle)}, true,
			`no agent in group "linux" runs system "ubuntu-22.04" (they run debian-12)`},
		{"lost and disabled", local,
			[]scheduler.Candidate{agent("a", "debian-12", linux, ci.AgentLostContact), agent("b", "debian-12", linux, ci.AgentDisabled)}, true,
			`the agents of group "linux" that can run it are disabled or lost (a: lost_contact, b: disabled)`},
		{"busy and lost", local,
			[]scheduler.Candidate{agent("a", "debian-12", linux, ci.AgentBuilding), agent("b", "debian-12", linux, ci.AgentLostContact),
				agent("c", "debian-12", linux, ci.AgentPreparing)}, true,
			`agents of group "linux" are all busy (2)`},
		{"idle agent", local,
			[]scheduler.Candidate{agent("a", "debian-12", linux, ci.AgentBuilding), agent("b", "debian-12", linux, ci.AgentIdle)}, true,
			"waiting for a free agent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, scheduler.WaitReason(tc.job, tc.agents, tc.groupExists))
		})
	}
}

// TestDispatcherHub: Kick forwards a dispatch signal to the other replicas,
// and a dispatch signal from another replica runs a matching pass, which
// nothing else would have run here.
func TestDispatcherHub(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hub := notify.New()
	b := &sendRecorder{sent: make(chan string, 16)}
	hub.SetBridge(b)
	st := &listCounter{Store: f.st}
	d := scheduler.New(scheduler.Config{Store: st, Logger: slog.New(slog.DiscardHandler), Lease: time.Minute, Hub: hub})
	d.Start(f.ctx)
	waitFor(t, "the dispatcher to subscribe", func() bool { return hub.Subscribers(notify.DispatchKey) == 1 })

	a := f.agent("a", ci.HostInfo{})
	got := waitAsync(f.ctx, d, a)
	// The agent's own wake-up pass has listed the (empty) queue.
	waitFor(t, "the waiter's matching pass", func() bool { return d.Waiting() == 1 && st.lists.Load() >= 1 })
	jobs := f.queue(1, "all") // queued by "another replica": no Kick here
	hub.Deliver(notify.DispatchKey)
	r := <-got
	require.True(t, r.ok)
	require.Equal(t, jobs[0].ID, r.job.ID)
	select {
	case k := <-b.sent:
		t.Fatalf("a waiting agent or a remote kick must not be forwarded, got %q", k)
	default:
	}
	d.Kick()
	require.Equal(t, notify.DispatchKey, <-b.sent, "a local kick goes to the other replicas")
}

// listCounter counts finished ListQueuedJobs calls.
type listCounter struct {
	store.Store
	lists atomic.Int64
}

func (c *listCounter) ListQueuedJobs(ctx context.Context, limit int) ([]ci.Job, error) {
	defer c.lists.Add(1)
	return c.Store.ListQueuedJobs(ctx, limit)
}

type sendRecorder struct{ sent chan string }

func (r *sendRecorder) Send(key string) { r.sent <- key }
func (r *sendRecorder) Run(ctx context.Context, _ *notify.Hub) error {
	<-ctx.Done()
	return nil
}

// claimCounter counts ClaimJobs calls and the claims in them.
type claimCounter struct {
	store.Store
	mu      sync.Mutex
	batches []int
}

func (c *claimCounter) ClaimJobs(ctx context.Context, claims []store.Claim, lease time.Duration) ([]store.ClaimResult, error) {
	c.mu.Lock()
	c.batches = append(c.batches, len(claims))
	c.mu.Unlock()
	return c.Store.ClaimJobs(ctx, claims, lease)
}

// TestBatchClaims: jobs queued while several agents wait are claimed for all
// of them in one store call, in FIFO order, skipping a job no waiting agent
// may run.
func TestBatchClaims(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cc := &claimCounter{Store: f.st}
	d := scheduler.New(scheduler.Config{Store: cc, Logger: slog.New(slog.DiscardHandler), Lease: time.Minute})
	d.Start(f.ctx)
	const n = 5
	var waits []<-chan waitResult
	for i := range n {
		waits = append(waits, waitAsync(f.ctx, d, f.agent(fmt.Sprintf("agent-%d", i), ci.HostInfo{System: "debian-12"})))
	}
	waitFor(t, "every agent waiting", func() bool { return d.Waiting() == n })
	g := ci.Group{Name: "nobody"}
	require.NoError(t, f.st.CreateGroup(f.ctx, &g))
	unmatched := f.queue(1, "nobody")
	jobs := f.queue(n+1, ci.GroupAll)
	d.Kick()
	got := map[int64]bool{}
	for _, w := range waits {
		r := recv(t, w)
		require.True(t, r.ok)
		require.Equal(t, ci.JobAssigned, r.job.State)
		require.Len(t, r.job.Steps, 1)
		got[r.job.ID] = true
	}
	for _, j := range jobs[:n] {
		require.True(t, got[j.ID], "job %d (FIFO) was not handed out: %v", j.ID, got)
	}
	cc.mu.Lock()
	require.Equal(t, []int{n}, cc.batches, "claims per ClaimJobs call")
	cc.mu.Unlock()
	for _, j := range []ci.Job{unmatched[0], jobs[n]} {
		cur, err := f.st.GetJob(f.ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, ci.JobQueued, cur.State)
	}
}

// TestMatchReadsPastFirstPage: jobs nobody waiting can run fill more than a
// page of the queue; the job after them still reaches the waiting agent.
func TestMatchReadsPastFirstPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := scheduler.New(scheduler.Config{Store: f.st, Logger: slog.New(slog.DiscardHandler), Lease: time.Minute, Batch: 3})
	d.Start(f.ctx)
	g := ci.Group{Name: "nobody"}
	require.NoError(t, f.st.CreateGroup(f.ctx, &g))
	f.queue(7, "nobody")
	want := f.queue(1, ci.GroupAll)[0]
	r := recv(t, waitAsync(f.ctx, d, f.agent("a", ci.HostInfo{System: "debian-12"})))
	require.True(t, r.ok)
	require.Equal(t, want.ID, r.job.ID)
}
