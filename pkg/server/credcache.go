package server

import (
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// credTTL bounds how long a verified agent credential is trusted without
// reading the store again. Revocations made through this kkd (rotate,
// delete, re-register) take effect at once; those made through another
// replica arrive through the hub's bridge (CredentialsKey), and if that signal is
// lost, within credTTL.
const credTTL = 2 * time.Second

// CredentialsKey is the hub key published when an agent credential may have been
// revoked: every replica's cache forgets what it verified.
const CredentialsKey = "agent-credentials"

// maxCreds bounds the cache (one entry per agent in use): past it, expired
// entries are dropped, and if none are, everything.
const maxCreds = 10000

// credCache remembers which agent an agent credential (by its hash)
// authenticated, so that the ~6 requests an agent makes per job do not each
// read the agent and its groups. Only the agent's identity is kept (ID, UUID,
// name): handlers that need its state (current job, disabled) read it from the
// store (agentWork authenticates without the cache).
type credCache struct {
	now     func() time.Time
	revoked <-chan struct{} // hub subscription to CredentialsKey

	mu      sync.Mutex
	entries map[string]credEntry
	gen     uint64 // counts revocations
}

type credEntry struct {
	agent   ci.Agent
	expires time.Time
}

func newCredCache(now func() time.Time, revoked <-chan struct{}) *credCache {
	return &credCache{now: now, revoked: revoked, entries: make(map[string]credEntry)}
}

// get returns the agent the credential hash authenticated less than credTTL
// ago, unless a revocation was signalled since.
func (c *credCache) get(hash string) (ci.Agent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drainLocked()
	e, ok := c.entries[hash]
	if !ok {
		return ci.Agent{}, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, hash)
		return ci.Agent{}, false
	}
	return e.agent, true
}

// put remembers that hash authenticated authorized agent a, read from the
// store after gen was taken: if a revocation happened in between, the entry is
// not stored (the read may predate it).
func (c *credCache) put(hash string, a ci.Agent, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drainLocked()
	if gen != c.genLocked() {
		return
	}
	now := c.now()
	if len(c.entries) >= maxCreds {
		for h, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, h)
			}
		}
		if len(c.entries) >= maxCreds {
			clear(c.entries)
		}
	}
	c.entries[hash] = credEntry{
		agent:   ci.Agent{ID: a.ID, UUID: a.UUID, Name: a.Name, Authorized: a.Authorized},
		expires: now.Add(credTTL),
	}
}

// generation is taken before a store read whose result is then put.
func (c *credCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drainLocked()
	return c.genLocked()
}

// forget drops every entry: a credential may have been revoked.
func (c *credCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetLocked()
}

func (c *credCache) genLocked() uint64 { return c.gen }

func (c *credCache) forgetLocked() {
	clear(c.entries)
	c.gen++
}

// drainLocked applies a revocation signalled by the hub (this replica's or
// another's through the bridge).
func (c *credCache) drainLocked() {
	select {
	case <-c.revoked:
		c.forgetLocked()
	default:
	}
}

// revokeCreds is called after a write that may revoke an agent credential
// (rotate, delete, re-register, disable): this kkd forgets every verified
// credential at once, and the other replicas when the hub's bridge delivers
// CredentialsKey.
func (s *Server) revokeCreds() {
	s.creds.forget()
	if s.cfg.Hub != nil {
		s.cfg.Hub.Publish(CredentialsKey)
	}
}
