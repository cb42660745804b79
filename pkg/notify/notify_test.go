package notify

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHub(t *testing.T) {
	t.Parallel()
	h := New()
	a, unA := h.Subscribe("k")
	b, unB := h.Subscribe("k")
	other, unO := h.Subscribe("x")
	defer unO()
	h.Publish("k")
	h.Publish("k") // coalesces
	<-a
	<-b
	select {
	case <-a:
		t.Fatal("signals must coalesce")
	case <-other:
		t.Fatal("other key must not be woken")
	default:
	}
	unA()
	require.Equal(t, 1, h.Subscribers("k"))
	unB()
	require.Equal(t, 0, h.Subscribers("k"))
	h.Publish("k") // no subscribers: no panic, no block
}

func TestHubCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, h *Hub)
	}{
		{name: "publish before subscribe is not delivered", run: func(t *testing.T, h *Hub) {
			h.Publish("k")
			ch, un := h.Subscribe("k")
			defer un()
			select {
			case <-ch:
				t.Fatal("a subscriber must not see earlier publishes")
			default:
			}
		}},
		{name: "unsubscribe twice is harmless", run: func(t *testing.T, h *Hub) {
			_, un := h.Subscribe("k")
			other, unOther := h.Subscribe("k")
			defer unOther()
			un()
			un()
			require.Equal(t, 1, h.Subscribers("k"))
			h.Publish("k")
			<-other
		}},
		{name: "stale unsubscribe does not drop a later subscription", run: func(t *testing.T, h *Hub) {
			_, un := h.Subscribe("k")
			un()
			later, unLater := h.Subscribe("k")
			defer unLater()
			un()
			require.Equal(t, 1, h.Subscribers("k"))
			h.Publish("k")
			<-later
		}},
		{name: "an unsubscribed channel is not signalled", run: func(t *testing.T, h *Hub) {
			ch, un := h.Subscribe("k")
			un()
			h.Publish("k")
			select {
			case <-ch:
				t.Fatal("signal after unsubscribe")
			default:
			}
		}},
		{name: "concurrent publishers and subscribers", run: func(t *testing.T, h *Hub) {
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("k%d", i%2)
					for range 200 {
						ch, un := h.Subscribe(key)
						h.Publish(key)
						<-ch // its own publish always reaches it
						un()
					}
				}()
			}
			wg.Wait()
			require.Zero(t, h.Subscribers("k0"))
			require.Zero(t, h.Subscribers("k1"))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, New())
		})
	}
}

// recBridge records what the hub sends.
type recBridge struct {
	mu   sync.Mutex
	sent []string
}

func (b *recBridge) Send(key string) {
	b.mu.Lock()
	b.sent = append(b.sent, key)
	b.mu.Unlock()
}

func (b *recBridge) Run(ctx context.Context, _ *Hub) error {
	<-ctx.Done()
	return nil
}

func TestHubBridge(t *testing.T) {
	t.Parallel()
	h := New()
	b := &recBridge{}
	h.SetBridge(b)
	k, unK := h.Subscribe("k")
	defer unK()
	x, unX := h.Subscribe("x")
	defer unX()

	h.Publish("k") // local and remote
	<-k
	h.Forward(DispatchKey) // remote only
	h.Deliver("x")         // local only (a remote key)
	<-x
	select {
	case <-k:
		t.Fatal("Forward and Deliver of other keys must not wake k")
	default:
	}
	h.DeliverAll()
	<-k
	<-x
	b.mu.Lock()
	require.Equal(t, []string{"k", DispatchKey}, b.sent, "only Publish and Forward reach the bridge")
	b.mu.Unlock()

	var nb NoBridge
	nb.Send("k")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, nb.Run(ctx, h))
}
