// Package notify is an in-process, keyed wake-up hub. Publishers signal a key;
// every subscriber of that key is woken. Signals coalesce: a subscriber that is
// slow sees one pending wake-up, never a backlog, and re-reads the state it
// cares about from the store. It is the live part of log tailing, cancel
// delivery and agent authorization waits.
//
// A later issue fans signals out across kkd replicas (PostgreSQL LISTEN/NOTIFY);
// the Hub interface stays the same.
package notify

import "sync"

// Hub fans out wake-ups by key. The zero value is not usable; call New.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
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

// Publish wakes every subscriber of key. It never blocks.
func (h *Hub) Publish(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
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
