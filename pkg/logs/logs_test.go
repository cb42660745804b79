package logs_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/notify"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/store/sqlite"
)

const prompt = 3 * time.Second

type fixture struct {
	st      *sqlite.Store
	hub     *notify.Hub
	svc     *logs.Service
	job     ci.Job
	agent   ci.Agent
	attempt int // the job's current attempt: append writes to it
}

// newFixture opens a store with one job of `steps` steps, claimed by an agent
// (attempt 1).
func newFixture(t *testing.T, steps int) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kk.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	p := ci.Project{Name: "proj"}
	require.NoError(t, st.CreateProject(ctx, &p))
	b := ci.Branch{ProjectID: p.ID, Name: "main", RepoBranch: "main"}
	require.NoError(t, st.CreateBranch(ctx, &b))
	f := ci.Flow{BranchID: b.ID, Kind: ci.FlowCI}
	require.NoError(t, st.CreateFlow(ctx, &f))
	j := &ci.Job{Name: "build", Group: ci.GroupAll, System: ci.SystemAny, Executor: ci.ExecutorLocal, Timeout: 60}
	for i := range steps {
		j.Steps = append(j.Steps, ci.Step{Index: i, Tool: "shell", Name: fmt.Sprintf("s%d", i), Fields: map[string]any{"cmd": "true"}, Status: ci.StepPending})
	}
	require.NoError(t, st.CreateRun(ctx, &ci.Run{FlowID: f.ID, StageName: "build", State: ci.RunInProgress}, []*ci.Job{j}))
	a, err := st.RegisterAgent(ctx, ci.Agent{UUID: "5b0f6c39-3f5a-4a53-9f43-5f1b0c3a7e11", Name: "alice", EnrollHash: "x"}, time.Now())
	require.NoError(t, err)
	yes := true
	a, err = st.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: &yes})
	require.NoError(t, err)
	claimed, err := st.ClaimJob(ctx, j.ID, a.ID, time.Minute)
	require.NoError(t, err)
	hub := notify.New()
	return &fixture{st: st, hub: hub, svc: &logs.Service{Store: st, Hub: hub}, job: claimed, agent: a, attempt: claimed.Attempt}
}

func (f *fixture) append(t *testing.T, step int, seq int64, data string) {
	t.Helper()
	require.NoError(t, f.svc.Append(context.Background(), ci.LogChunk{JobID: f.job.ID, Attempt: f.attempt, Step: step, Seq: seq, Data: []byte(data)}))
}

// retry fails the current attempt as lost and gives the job to a new agent
// of that name, as the watchdog and the dispatcher do.
func (f *fixture) retry(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	_, outcome, err := f.st.FailAttempt(ctx, store.AttemptFailure{JobID: f.job.ID, Attempt: f.attempt, At: time.Now(),
		Outcome: ci.JobAgentLost, Retry: true})
	require.NoError(t, err)
	require.Equal(t, store.FailRequeued, outcome)
	a, err := f.st.RegisterAgent(ctx, ci.Agent{UUID: "uuid-" + name, Name: name, EnrollHash: "x"}, time.Now())
	require.NoError(t, err)
	yes := true
	a, err = f.st.UpdateAgent(ctx, a.ID, store.AgentUpdate{Authorized: &yes})
	require.NoError(t, err)
	j, err := f.st.ClaimJob(ctx, f.job.ID, a.ID, time.Minute)
	require.NoError(t, err)
	require.Equal(t, f.attempt+1, j.Attempt)
	f.attempt = j.Attempt
	f.hub.Publish(logs.Key(f.job.ID)) // what engine.JobRequeued does
}

func (f *fixture) complete(t *testing.T) {
	t.Helper()
	_, changed, err := f.st.CompleteJob(context.Background(), f.job.ID, 0, ci.JobOK, "", time.Now())
	require.NoError(t, err)
	require.True(t, changed)
}

func TestAppendIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	wake, unsubscribe := f.hub.Subscribe(logs.Key(f.job.ID))
	defer unsubscribe()
	woken := func() bool {
		select {
		case <-wake:
			return true
		default:
			return false
		}
	}
	f.append(t, 0, 0, "one\n")
	require.True(t, woken(), "a new chunk wakes followers")
	f.append(t, 0, 0, "ONE\n")
	require.False(t, woken(), "a resent chunk is a no-op")
	chunks, err := f.st.ReadLogs(context.Background(), f.job.ID, -1, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	require.Len(t, chunks, 1)
	require.Equal(t, "one\n", string(chunks[0].Data))

	err = f.svc.Append(context.Background(), ci.LogChunk{JobID: f.job.ID + 100, Attempt: 1, Step: 0, Seq: 0, Data: []byte("x")})
	require.ErrorIs(t, err, ci.ErrNotFound)
	require.Contains(t, err.Error(), fmt.Sprintf("job %d", f.job.ID+100))

	// A chunk of an attempt that is over is refused and wakes nobody.
	f.retry(t, "bob")
	<-wake
	err = f.svc.Append(context.Background(), ci.LogChunk{JobID: f.job.ID, Attempt: 1, Step: 0, Seq: 1, Data: []byte("stale")})
	require.ErrorIs(t, err, ci.ErrStaleAttempt)
	require.False(t, woken())
}

func TestStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.append(t, 0, 0, "a0\n")
	f.append(t, 0, 1, "a1\n")
	f.append(t, 2, 0, "c0")
	f.append(t, 2, 1, "")
	f.append(t, 2, 2, "\n")
	tests := []struct {
		name string
		step int
		want string
	}{
		{name: "every step with headers", step: -1, want: "==> step 0: shell (s0)\na0\na1\n==> step 2: shell (s2)\nc0\n"},
		{name: "first step", step: 0, want: "a0\na1\n"},
		{name: "silent step", step: 1, want: ""},
		{name: "chunks that cut lines", step: 2, want: "c0\n"},
		{name: "unknown step", step: 7, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			require.NoError(t, f.svc.Stream(context.Background(), &buf, f.job.ID, logs.StreamOpts{Step: tc.step}))
			require.Equal(t, tc.want, buf.String())
		})
	}
	t.Run("unknown job", func(t *testing.T) {
		t.Parallel()
		err := f.svc.Stream(context.Background(), &bytes.Buffer{}, f.job.ID+100, logs.StreamOpts{Step: -1})
		require.ErrorIs(t, err, ci.ErrNotFound)
	})
}

// TestStreamManyChunks crosses the read page size: nothing is lost or repeated.
func TestStreamManyChunks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	var want0, want1 strings.Builder
	for i := range 600 {
		f.append(t, 0, int64(i), fmt.Sprintf("line %d\n", i))
		fmt.Fprintf(&want0, "line %d\n", i)
	}
	for i := range 300 {
		f.append(t, 1, int64(i), fmt.Sprintf("more %d\n", i))
		fmt.Fprintf(&want1, "more %d\n", i)
	}
	var buf bytes.Buffer
	require.NoError(t, f.svc.Stream(context.Background(), &buf, f.job.ID, logs.StreamOpts{Step: -1}))
	require.Equal(t, "==> step 0: shell (s0)\n"+want0.String()+"==> step 1: shell (s1)\n"+want1.String(), buf.String())
}

// syncBuffer is a buffer a follower writes while the test reads it.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // signalled after each write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.written <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds want.
func (b *syncBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(prompt)
	for b.String() != want {
		select {
		case <-b.written:
		case <-deadline:
			t.Fatalf("follower output is %q, want %q", b.String(), want)
		}
	}
}

type followResult struct {
	err     error
	elapsed time.Duration
}

func (f *fixture) follow(ctx context.Context, w *syncBuffer, step int) <-chan followResult {
	done := make(chan followResult, 1)
	go func() {
		start := time.Now()
		err := f.svc.Stream(ctx, w, f.job.ID, logs.StreamOpts{Step: step, Follow: true})
		done <- followResult{err: err, elapsed: time.Since(start)}
	}()
	return done
}

func waitDone(t *testing.T, done <-chan followResult) followResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(prompt):
		t.Fatal("the follower did not return")
		return followResult{}
	}
}

func (f *fixture) waitSubscribed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(prompt)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for f.hub.Subscribers(logs.Key(f.job.ID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the follower did not subscribe")
		}
		<-tick.C
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.append(t, 0, 0, "early\n")
	out := newSyncBuffer()
	done := f.follow(context.Background(), out, -1)
	want := "==> step 0: shell (s0)\nearly\n"
	out.waitFor(t, want)
	f.waitSubscribed(t)

	f.append(t, 0, 1, "later\n")
	want += "later\n"
	out.waitFor(t, want)
	f.append(t, 1, 0, "step one\n")
	want += "==> step 1: shell (s1)\nstep one\n"
	out.waitFor(t, want)
	// A background step writes after a later step started: nothing is lost,
	// and the header says whose output it is.
	f.append(t, 0, 2, "background\n")
	want += "==> step 0: shell (s0)\nbackground\n"
	out.waitFor(t, want)
	f.append(t, 1, 1, "step one again\n")
	want += "==> step 1: shell (s1)\nstep one again\n"
	out.waitFor(t, want)

	f.complete(t)
	f.hub.Publish(logs.Key(f.job.ID)) // what engine.JobCompleted does
	r := waitDone(t, done)
	require.NoError(t, r.err)
	require.Equal(t, want, out.String())
	require.Zero(t, f.hub.Subscribers(logs.Key(f.job.ID)), "the follower unsubscribed")
}

func TestFollowOneStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	out := newSyncBuffer()
	done := f.follow(context.Background(), out, 1)
	f.waitSubscribed(t)
	f.append(t, 0, 0, "not this\n")
	f.append(t, 1, 0, "this\n")
	out.waitFor(t, "this\n")
	f.append(t, 0, 1, "not this either\n")
	f.append(t, 1, 1, "and this\n")
	out.waitFor(t, "this\nand this\n")
	f.complete(t)
	f.hub.Publish(logs.Key(f.job.ID))
	require.NoError(t, waitDone(t, done).err)
	require.Equal(t, "this\nand this\n", out.String())
}

// TestFollowRetry: a job retried on another agent keeps the first attempt's
// log; the follower shows attempt 1, then a separator naming the new agent,
// then the new attempt's chunks, whose seqs start at 0 again.
func TestFollowRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	ctx := context.Background()
	f.append(t, 0, 0, "first 0\n")
	f.append(t, 0, 1, "first 1\n")
	out := newSyncBuffer()
	done := f.follow(ctx, out, -1)
	want := "==> step 0: shell (s0)\nfirst 0\nfirst 1\n"
	out.waitFor(t, want)
	f.waitSubscribed(t)

	// The last chunk of attempt 1 lands just before the job is retried: it
	// is shown before the separator, not lost.
	_, err := f.st.AppendLog(ctx, ci.LogChunk{JobID: f.job.ID, Attempt: 1, Step: 1, Seq: 0, Data: []byte("first late\n")})
	require.NoError(t, err)
	f.retry(t, "bob")
	want += "==> step 1: shell (s1)\nfirst late\n==> attempt 2 (agent bob)\n"
	out.waitFor(t, want)
	f.append(t, 0, 0, "second 0\n")
	want += "==> step 0: shell (s0)\nsecond 0\n"
	out.waitFor(t, want)
	f.complete(t)
	f.hub.Publish(logs.Key(f.job.ID))
	require.NoError(t, waitDone(t, done).err)
	require.Equal(t, want, out.String())
}

// TestStreamAttempts: a job with several attempts shows each one's log after
// a separator, also when only one step is asked for or an attempt wrote nothing.
func TestStreamAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.append(t, 0, 0, "a1 s0\n")
	f.append(t, 1, 0, "a1 s1\n")
	f.retry(t, "bob")
	f.retry(t, "carol") // bob's attempt wrote nothing
	f.append(t, 0, 0, "a3 s0\n")
	f.append(t, 1, 0, "a3 s1\n")
	f.complete(t)
	tests := []struct {
		name string
		step int
		want string
	}{
		{name: "every step", step: -1, want: "==> attempt 1 (agent alice)\n==> step 0: shell (s0)\na1 s0\n==> step 1: shell (s1)\na1 s1\n" +
			"==> attempt 2 (agent bob)\n" +
			"==> attempt 3 (agent carol)\n==> step 0: shell (s0)\na3 s0\n==> step 1: shell (s1)\na3 s1\n"},
		{name: "one step", step: 1, want: "==> attempt 1 (agent alice)\na1 s1\n==> attempt 2 (agent bob)\n==> attempt 3 (agent carol)\na3 s1\n"},
	}
	for _, tc := range tests {
		for _, follow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/follow=%v", tc.name, follow), func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				require.NoError(t, f.svc.Stream(context.Background(), &buf, f.job.ID, logs.StreamOpts{Step: tc.step, Follow: follow}))
				require.Equal(t, tc.want, buf.String())
			})
		}
	}
}

func TestFollowCompletedJobReturnsAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	f.append(t, 0, 0, "done\n")
	f.complete(t)
	out := newSyncBuffer()
	r := waitDone(t, f.follow(context.Background(), out, -1))
	require.NoError(t, r.err)
	require.Less(t, r.elapsed, prompt, "not after the 5 s fallback re-check")
	require.Equal(t, "==> step 0: shell (s0)\ndone\n", out.String())
}

func TestFollowCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := f.follow(ctx, newSyncBuffer(), -1)
	f.waitSubscribed(t)
	cancel()
	r := waitDone(t, done)
	require.ErrorIs(t, r.err, context.Canceled)
	require.Zero(t, f.hub.Subscribers(logs.Key(f.job.ID)))
}

// TestFollowFallback: without any signal (a completion published nowhere,
// e.g. by another replica) the follower still notices within Fallback.
func TestFollowFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	f.svc.Fallback = 50 * time.Millisecond
	out := newSyncBuffer()
	done := f.follow(context.Background(), out, -1)
	f.waitSubscribed(t)
	_, err := f.st.AppendLog(context.Background(), ci.LogChunk{JobID: f.job.ID, Attempt: f.attempt, Step: 0, Seq: 0, Data: []byte("quiet\n")})
	require.NoError(t, err)
	out.waitFor(t, "==> step 0: shell (s0)\nquiet\n")
	f.complete(t) // no Publish
	require.NoError(t, waitDone(t, done).err)
}
