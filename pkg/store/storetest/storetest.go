// Package storetest is the one behaviour suite of store.Store. Every
// implementation (sqlite/, later postgres/) runs it from its own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTestStore(t) })
//	}
//
// The suite checks the contract written in the doc comments of package store:
// CRUD and error kinds, cascades, counters, conditional transitions under
// concurrency, claims, leases and fencing, idempotency of completion and logs.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// testCase is one named behaviour, run on its own empty store.
type testCase struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// Run runs the whole suite. newStore must return a new, empty, migrated store
// on every call and release it itself (t.Cleanup). Each case runs in parallel
// with its own store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"projects", projectCases()},
		{"branches", branchCases()},
		{"stages", stageCases()},
		{"flows", flowCases()},
		{"runs", runCases()},
		{"jobs", jobCases()},
		{"claims", claimCases()},
		{"fencing", fencingCases()},
		{"logs", logCases()},
		{"agents", agentCases()},
		{"groups", groupCases()},
		{"users", userCases()},
		{"secrets", secretCases()},
		{"context", contextCases()},
		{"artifacts", artifactCases()}, {"caches", cacheCases()}, {"log archive", logArchiveCases()},
		{"results", resultCases()},
		{"webhooks", webhookCases()},
		{"notifications", notificationCases()},
		{"triggers", triggerCases()},
		{"retention", retentionCases()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newStore(t))
				})
			}
		})
	}
}

// fx builds fixtures on a store and fails the test on any error.
type fx struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
	n   *atomic.Int64 // for unique names
}

func newFx(t *testing.T, s store.Store) *fx {
	return &fx{t: t, s: s, ctx: t.Context(), n: new(atomic.Int64)}
}

// sub is f for a subtest: the same store and name counter, failing t.
func (f *fx) sub(t *testing.T) *fx {
	return &fx{t: t, s: f.s, ctx: t.Context(), n: f.n}
}

func (f *fx) unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, f.n.Add(1))
}

func (f *fx) project() ci.Project {
	f.t.Helper()
	p := ci.Project{Name: f.unique("project")}
	require.NoError(f.t, f.s.CreateProject(f.ctx, &p))
	return p
}

func (f *fx) branch(projectID int64) ci.Branch {
	f.t.Helper()
	b := ci.Branch{ProjectID: projectID, Name: f.unique("branch"), RepoBranch: "main"}
	require.NoError(f.t, f.s.CreateBranch(f.ctx, &b))
	return b
}

// newBranch creates a project and a branch in it.
func (f *fx) newBranch() ci.Branch {
	f.t.Helper()
	return f.branch(f.project().ID)
}

func (f *fx) flow(branchID int64, kind ci.FlowKind) ci.Flow {
	f.t.Helper()
	fl := ci.Flow{BranchID: branchID, Kind: kind}
	require.NoError(f.t, f.s.CreateFlow(f.ctx, &fl))
	return fl
}

// newFlow creates a project, a branch and a CI flow in it.
func (f *fx) newFlow() ci.Flow {
	f.t.Helper()
	return f.flow(f.newBranch().ID, ci.FlowCI)
}

// run creates an in_progress run of stage in the flow with the jobs.
func (f *fx) run(flowID int64, stage string, jobs ...*ci.Job) ci.Run {
	f.t.Helper()
	r := ci.Run{FlowID: flowID, StageName: stage, State: ci.RunInProgress, Reason: "manual"}
	require.NoError(f.t, f.s.CreateRun(f.ctx, &r, jobs))
	return r
}

// queued creates a new flow with one in_progress run of n jobs of steps steps.
func (f *fx) queued(n, steps int) (ci.Run, []*ci.Job) {
	f.t.Helper()
	jobs := make([]*ci.Job, n)
	for i := range jobs {
		jobs[i] = newJob(fmt.Sprintf("job-%d", i), steps)
	}
	return f.run(f.newFlow().ID, "build", jobs...), jobs
}

// newJob is a job template with steps shell steps.
func newJob(name string, steps int) *ci.Job {
	j := &ci.Job{Name: name, Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal, Timeout: 600}
	for i := range steps {
		j.Steps = append(j.Steps, ci.Step{
			Tool:   "shell",
			Name:   fmt.Sprintf("step %d", i),
			Fields: map[string]any{"tool": "shell", "cmd": fmt.Sprintf("echo %d", i), "attempts": float64(1)},
		})
	}
	return j
}

// agent registers an agent and, when authorized, authorizes it.
func (f *fx) agent(name string, authorized bool) ci.Agent {
	f.t.Helper()
	a, err := f.s.RegisterAgent(f.ctx, ci.Agent{
		UUID: f.unique("uuid-" + name), Name: name, Address: "10.0.0.1",
		HostInfo: ci.HostInfo{OS: "linux", System: "debian-12", CPUs: 2},
	}, now())
	require.NoError(f.t, err)
	if authorized {
		a, err = f.s.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
		require.NoError(f.t, err)
	}
	return a
}

// claim claims the job for the agent and requires success.
func (f *fx) claim(jobID, agentID int64) ci.Job {
	f.t.Helper()
	j, err := f.s.ClaimJob(f.ctx, jobID, agentID, time.Minute)
	require.NoError(f.t, err)
	return j
}

// complete completes the job server side and requires a transition.
func (f *fx) complete(jobID int64, result ci.JobResult) ci.Job {
	f.t.Helper()
	j, changed, err := f.s.CompleteJob(f.ctx, jobID, 0, result, "", now())
	require.NoError(f.t, err)
	require.True(f.t, changed)
	return j
}

func (f *fx) job(id int64) ci.Job {
	f.t.Helper()
	j, err := f.s.GetJob(f.ctx, id)
	require.NoError(f.t, err)
	return j
}

func (f *fx) getAgent(id int64) ci.Agent {
	f.t.Helper()
	a, err := f.s.GetAgent(f.ctx, id)
	require.NoError(f.t, err)
	return a
}

// now is the current time as a store returns it: UTC, whole milliseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// requireTime requires got to be set and equal to want.
func requireTime(t *testing.T, want time.Time, got *time.Time) {
	t.Helper()
	require.NotNil(t, got)
	require.True(t, want.Equal(*got), "want %v, got %v", want, *got)
	require.Equal(t, time.UTC, got.Location())
}

// requireRecent requires got to be within a few seconds of the clock, in UTC
// and at millisecond precision.
func requireRecent(t *testing.T, got time.Time) {
	t.Helper()
	require.WithinDuration(t, time.Now(), got, 10*time.Second)
	require.Equal(t, time.UTC, got.Location())
	require.Equal(t, got, got.Truncate(time.Millisecond))
}

// parallel runs fn(i) for i in [0, n) on n goroutines released together and
// returns their errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func requireNoErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "goroutine %d", i)
	}
}
