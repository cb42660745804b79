package postgres

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// candidate is one replica campaigning for leadership.
type candidate struct {
	id     string
	st     *Store
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned, with err set
	err    error
}

func TestElector(t *testing.T) {
	t.Parallel()
	url := migratedURL(t)
	var active, maxActive atomic.Int64
	leading := make(chan string, 16) // ids of replicas whose work started
	work := func(id string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			n := active.Add(1)
			for m := maxActive.Load(); n > m && !maxActive.CompareAndSwap(m, n); m = maxActive.Load() {
			}
			leading <- id
			<-ctx.Done()
			active.Add(-1)
			return ctx.Err()
		}
	}
	start := func(id string) *candidate {
		st := openURL(t, Config{URL: url})
		e := st.NewElector(ElectorConfig{ReplicaID: id, Retry: 50 * time.Millisecond, Check: 50 * time.Millisecond,
			CheckTimeout: 500 * time.Millisecond, TakeoverDelay: 600 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		c := &candidate{id: id, st: st, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(c.done)
			c.err = e.Run(ctx, work(id))
		}()
		t.Cleanup(func() {
			cancel()
			<-c.done
		})
		return c
	}
	next := func(what string) (string, time.Duration) {
		t.Helper()
		begin := time.Now()
		select {
		case id := <-leading:
			return id, time.Since(begin)
		case <-time.After(15 * time.Second):
			t.Fatalf("no leader within 15 s %s", what)
			return "", 0
		}
	}
	cands := map[string]*candidate{"a": start("a"), "b": start("b")}

	first, _ := next("at start")
	other := map[string]string{"a": "b", "b": "a"}

	// Kill the leader's lock connection: the other replica takes over.
	var pid int
	require.NoError(t, cands[first].st.pool.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, appName("kkd-leader", first)).Scan(&pid))
	var ok bool
	require.NoError(t, cands[first].st.pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok))
	require.True(t, ok)
	second, took := next("after the leader's connection was terminated")
	require.Equal(t, other[first], second)
	require.Less(t, took, 5*time.Second)

	// The new leader shuts down (its ctx ends): the first one, which
	// reconnected and campaigns again, takes over.
	cands[second].cancel()
	<-cands[second].done
	require.NoError(t, cands[second].err)
	third, _ := next("after the leader shut down")
	require.Equal(t, first, third)

	require.Equal(t, int64(1), maxActive.Load(), "two leaders ran at once")
	require.Equal(t, int64(1), active.Load())
}
