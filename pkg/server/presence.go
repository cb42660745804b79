package server

import (
	"context"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// presence counts the long polls (work polls and heartbeats) each agent holds
// in this kkd. An idle agent spends nearly all its time inside a held work
// poll, so its LastSeen is up to a poll period old while it is perfectly
// healthy: an agent that holds a request counts as seen now. When the request
// ends — it was answered, or the agent's connection dropped because the agent
// died — its LastSeen is set to that moment, so a killed agent shows lost
// contact ci.LostAfter after its connection went away.
type presence struct {
	mu   sync.Mutex
	held map[int64]int // agent id → held requests
}

func (p *presence) add(agentID int64, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[int64]int{}
	}
	p.held[agentID] += n
	if p.held[agentID] <= 0 {
		delete(p.held, agentID)
	}
}

// holding reports whether the agent holds a long poll now.
func (p *presence) holding(agentID int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[agentID] > 0
}

// touchTimeout bounds the LastSeen update when a held request ends, which
// runs after the request's own context may have ended.
const touchTimeout = 5 * time.Second

// hold marks the agent present while one of its long polls is held. The
// returned function ends the hold and records the agent as seen at that
// moment; call it when the wait is over.
func (s *Server) hold(ctx context.Context, agentID int64) (release func()) {
	s.presence.add(agentID, 1)
	return func() {
		s.presence.add(agentID, -1)
		// The request's context may be over (the agent hung up, kkd stops):
		// the update must still happen.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), touchTimeout)
		defer cancel()
		if err := s.cfg.Store.TouchAgent(tctx, agentID, s.cfg.Now(), nil); err != nil {
			s.cfg.Logger.Warn("record agent as seen after a long poll", "agent_id", agentID, "err", err)
		}
	}
}

// agentState derives the agent's displayed state in this kkd: an agent that
// holds a long poll is seen now.
func (s *Server) agentState(a ci.Agent, job *ci.Job) (ci.AgentState, *time.Time) {
	now := s.cfg.Now()
	seen := a.LastSeen
	if s.presence.holding(a.ID) {
		seen = &now
	}
	a.LastSeen = seen
	seenSinceStart := seen != nil && !seen.Before(s.cfg.StartedAt)
	return a.State(now, seenSinceStart, job), seen
}
