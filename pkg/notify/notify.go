// Package notify is an in-process, keyed wake-up hub. Publishers signal a key;
// every subscriber of that key is woken. Signals coalesce: a subscriber that is
// slow sees one pending wake-up, never a backlog, and re-reads the state it
// cares about from the store. It is the live part of log tailing, cancel
// delivery and agent authorization waits.
//
// Several kkd replicas on one database share their wake-ups through a Bridge
// (PostgreSQL LISTEN/NOTIFY; see SetBridge): every Publish is also sent to
// the other replicas, whose bridges Deliver it to their local subscribers.
package notify

import (
	"context"
	"sync"
)

// DispatchKey is the key signalled when jobs were queued or requeued, so that
// the dispatchers of other replicas run a matching pass.
const DispatchKey = "dispatch"

// Bridge carries wake-ups between the hubs of kkd replicas sharing one
// database.
//
// Send must never block for long: implementations queue the key and coalesce
// bursts (a key pending twice is sent once). Delivery is at most once and
// unordered, like local signals: subscribers re-read the state they care
// about, so a lost signal only delays them until their fallback poll or
// until the bridge, after a gap in reception (a lost connection), wakes
// everything with Hub.DeliverAll.
//
// Run receives the other replicas' keys and calls hub.Deliver for each (never
// keys this replica sent) until ctx is done; it returns nil then. It is
// called once.
type Bridge interface {
	Send(key string)
	Run(ctx context.Context, hub *Hub) error
}

// NoBridge is the bridge of a single kkd (SQLite): nothing to send to,
// nothing to receive.
type NoBridge struct{}

// Send does nothing.
func (NoBridge) Send(string) {}

// Run waits for ctx.
func (NoBridge) Run(ctx context.Context, _ *Hub) error {
	<-ctx.Done()
	return nil
}

// Hub fans out wake-ups by key. The zero value is not usable; call New.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[chan struct{}]struct{}
	bridge Bridge // nil: this process only
}

// SetBridge makes every later Publish also go to the other replicas through
// b. Call it before the hub is used; b.Run must be started by the caller.
func (h *Hub) SetBridge(b Bridge) {
	h.mu.Lock()
	h.bridge = b
	h.mu.Unlock()
}

// New returns an empty hub.
func New() *Hub { return &Hub{subs: make(map[string]map[chan struct{}]struct{})} }

// Subscribe returns a channel that receives a value after each Publish(key)
// (coalesced) and a function that unsubscribes. Call it before reading the
// state the key guards, so no publish between read and wait is missed.
func (h *Hub) Subscribe(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	m := h.subs[key]
	if m == nil {
		m = make(map[chan struct{}]struct{})
		h.subs[key] = m
	}
	m[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(m, ch)
		if len(h.subs[key]) == 0 {
			delete(h.subs, key)
		}
		h.mu.Unlock()
	}
}

// Publish wakes every subscriber of key, here and, through the bridge, on
// the other replicas. It never blocks.
func (h *Hub) Publish(key string) {
	h.mu.Lock()
	b := h.bridge
	h.wake(key)
	h.mu.Unlock()
	if b != nil {
		b.Send(key)
	}
}

// Forward sends key to the other replicas only (for a publisher that already
// woke itself). Without a bridge it does nothing.
func (h *Hub) Forward(key string) {
	h.mu.Lock()
	b := h.bridge
	h.mu.Unlock()
	if b != nil {
		b.Send(key)
	}
}

// Deliver wakes the local subscribers of key only: bridges call it with the
// keys other replicas published.
func (h *Hub) Deliver(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wake(key)
}

// DeliverAll wakes every local subscriber of every key: "anything may have
// changed", for a bridge that may have missed signals.
func (h *Hub) DeliverAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key := range h.subs {
		h.wake(key)
	}
}

// wake signals the subscribers of key; h.mu is held.
func (h *Hub) wake(key string) {
	for ch := range h.subs[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribers returns how many subscriptions key has (for tests and metrics).
func (h *Hub) Subscribers(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[key])
}
