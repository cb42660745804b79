package ci_test

import (
	"testing"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

func TestAgentState(t *testing.T) {
	t.Parallel()
	now := time.Now()
	recent, old := now.Add(-time.Second), now.Add(-ci.LostAfter-time.Second)
	assigned := &ci.Job{State: ci.JobAssigned}
	running := &ci.Job{State: ci.JobRunning}
	tests := []struct {
		name  string
		agent ci.Agent
		seen  bool // since this kkd started
		job   *ci.Job
		want  ci.AgentState
	}{
		{"unauthorized", ci.Agent{LastSeen: &recent}, true, nil, ci.AgentDiscovered},
		{"unauthorized and disabled", ci.Agent{Disabled: true}, false, nil, ci.AgentDiscovered},
		{"disabled", ci.Agent{Authorized: true, Disabled: true, LastSeen: &recent}, true, nil, ci.AgentDisabled},
		{"disabled and missing", ci.Agent{Authorized: true, Disabled: true, LastSeen: &old}, false, nil, ci.AgentDisabled},
		{"disabled while building", ci.Agent{Authorized: true, Disabled: true, JobID: 1, LastSeen: &recent}, true, running, ci.AgentDisabled},
		{"not seen since start", ci.Agent{Authorized: true, LastSeen: &recent}, false, nil, ci.AgentMissing},
		{"never seen", ci.Agent{Authorized: true}, true, nil, ci.AgentMissing},
		{"silent", ci.Agent{Authorized: true, LastSeen: &old}, true, nil, ci.AgentLostContact},
		{"silent while building", ci.Agent{Authorized: true, JobID: 1, LastSeen: &old}, true, running, ci.AgentLostContact},
		{"assigned", ci.Agent{Authorized: true, JobID: 1, LastSeen: &recent}, true, assigned, ci.AgentPreparing},
		{"running", ci.Agent{Authorized: true, JobID: 1, LastSeen: &recent}, true, running, ci.AgentBuilding},
		{"job unknown", ci.Agent{Authorized: true, JobID: 1, LastSeen: &recent}, true, nil, ci.AgentBuilding},
		{"idle", ci.Agent{Authorized: true, LastSeen: &recent}, true, nil, ci.AgentIdle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.agent.State(now, tc.seen, tc.job); got != tc.want {
				t.Errorf("State() = %s, want %s", got, tc.want)
			}
		})
	}
}
