package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/notify"
)

// replica is one kkd's hub and bridge on a shared database.
type replica struct {
	id     string
	st     *Store
	hub    *notify.Hub
	bridge *Bridge
}

// startReplica opens a store on url and runs a bridge with hub until the
// test ends.
func startReplica(t *testing.T, url, id string) *replica {
	t.Helper()
	st := openURL(t, Config{URL: url})
	hub := notify.New()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica_id", id)
	b := st.NewBridge(BridgeConfig{ReplicaID: id, Logger: log, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	hub.SetBridge(b)
	// The bridge wakes everyone once it listens: wait for that, so it cannot
	// wake the test's subscribers later.
	probe, unP := hub.Subscribe("probe")
	defer unP()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, hub) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	recv(t, probe, "the start-up wake-up of "+id)
	r := &replica{id: id, st: st, hub: hub, bridge: b}
	r.waitListening(t)
	return r
}

// listenerPID returns the backend pid of the replica's listening connection
// (0 when it has none).
func (r *replica) listenerPID(t *testing.T) int {
	t.Helper()
	var pid int
	err := r.st.pool.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()
		AND state = 'idle' AND query ILIKE 'LISTEN%'`,
		appName("kkd-listen", r.id)).Scan(&pid)
	require.NoError(t, err)
	return pid
}

// waitListening waits until the replica's listener has LISTENed (its
// backend is idle after the LISTEN).
func (r *replica) waitListening(t *testing.T) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool { pid = r.listenerPID(t); return pid != 0 }, 10*time.Second, 5*time.Millisecond,
		"replica %s never listened", r.id)
	return pid
}

// recv waits for a signal on ch.
func recv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestBridgeAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := migratedURL(t)
	a := startReplica(t, url, "replica-a")
	b := startReplica(t, url, "replica-b")

	onB, unB := b.hub.Subscribe("job:7")
	defer unB()
	onA, unA := a.hub.Subscribe("job:7")
	defer unA()
	a.hub.Publish("job:7")
	recv(t, onA, "the local signal on A")
	recv(t, onB, "A's publish on B")

	// Remote kicks reach B's dispatcher key; A does not hear its own events
	// back: a later signal of B arrives on A, and A's job:7 stays quiet.
	dispB, unD := b.hub.Subscribe(notify.DispatchKey)
	defer unD()
	a.hub.Forward(notify.DispatchKey)
	recv(t, dispB, "A's dispatch kick on B")
	quiet, unQ := a.hub.Subscribe("cancel:9")
	defer unQ()
	b.hub.Publish("cancel:9")
	recv(t, quiet, "B's publish on A")
	select {
	case <-onA:
		t.Fatal("A must not receive its own events back")
	default:
	}

	// A burst of many keys arrives in payloads under the NOTIFY limit.
	var subs []<-chan struct{}
	for i := range 500 {
		ch, un := b.hub.Subscribe(fmt.Sprintf("job:%d", 1000+i))
		defer un()
		subs = append(subs, ch)
	}
	for i := range 500 {
		a.hub.Publish(fmt.Sprintf("job:%d", 1000+i))
	}
	for i, ch := range subs {
		recv(t, ch, fmt.Sprintf("burst key %d on B", i))
	}
}

func TestBridgeReconnects(t *testing.T) {
	t.Parallel()
	url := migratedURL(t)
	a := startReplica(t, url, "replica-a")
	b := startReplica(t, url, "replica-b")
	follower, unF := b.hub.Subscribe("job:1") // a log follower on B
	defer unF()
	disp, unD := b.hub.Subscribe(notify.DispatchKey)
	defer unD()
	old := b.listenerPID(t)
	var ok bool
	require.NoError(t, a.st.pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, old).Scan(&ok))
	require.True(t, ok)

	// Nobody published: the wake-ups are the bridge's catch-up after it
	// listens again.
	recv(t, follower, "the reconnect wake-up of a log follower")
	recv(t, disp, "the reconnect wake-up of the dispatcher")
	require.Eventually(t, func() bool { pid := b.listenerPID(t); return pid != 0 && pid != old }, 10*time.Second, 5*time.Millisecond,
		"B never listened on a new connection")

	a.hub.Publish("job:1")
	recv(t, follower, "an event after the reconnect")
	a.hub.Forward(notify.DispatchKey)
	recv(t, disp, "a dispatch kick after the reconnect")
}

func TestBridgePayloads(t *testing.T) {
	t.Parallel()
	b := (&Store{log: slog.New(slog.DiscardHandler)}).NewBridge(BridgeConfig{ReplicaID: "r1"})
	for i := range 1000 {
		b.Send(fmt.Sprintf("job:%d", i))
		b.Send(fmt.Sprintf("job:%d", i)) // coalesces
	}
	b.Send("bad\nkey")
	payloads := b.take()
	require.Greater(t, len(payloads), 1)
	n := 0
	for _, p := range payloads {
		require.LessOrEqual(t, len(p), maxPayload)
		lines := splitLines(p)
		require.Equal(t, "r1", lines[0])
		n += len(lines) - 1
	}
	require.Equal(t, 1000, n)
	require.Empty(t, b.take())
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}
