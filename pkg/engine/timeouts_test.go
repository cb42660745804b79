package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
)

func TestEstimateFromHistory(t *testing.T) {
	m := time.Minute
	for _, tc := range []struct {
		name      string
		durations []time.Duration
		timedOut  bool
		want      int
		ok        bool
	}{
		{"too little history", []time.Duration{m, m, m}, false, 0, false},
		{"1.7 x the longest", []time.Duration{m, 2 * m, 10 * m, 3 * m}, false, 1020, true},
		{"floor of 60 s", []time.Duration{time.Second, time.Second, 2 * time.Second, time.Second}, false, 60, true},
		{"doubled after a timeout", []time.Duration{m, m, m, 10 * m}, true, 2040, true},
		{"capped at 3 days, not raised to it", []time.Duration{m, m, m, 48 * time.Hour}, false, 3 * 24 * 3600, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := engine.EstimateFromHistory(tc.durations, tc.timedOut)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

// finishJobs completes every job of the flow's run, having run for d.
func (f *fixture) finishJobs(fl ci.Flow, d time.Duration, result ci.JobResult) {
	f.t.Helper()
	runs, err := f.st.ListRuns(f.ctx, fl.ID)
	require.NoError(f.t, err)
	a, err := f.st.RegisterAgent(f.ctx, ci.Agent{UUID: "u-" + time.Now().String(), Name: "a-" + time.Now().String()}, time.Now())
	require.NoError(f.t, err)
	_, err = f.st.UpdateAgent(f.ctx, a.ID, store.AgentUpdate{Authorized: new(true)})
	require.NoError(f.t, err)
	for _, r := range runs {
		jobs, err := f.st.ListJobs(f.ctx, r.ID)
		require.NoError(f.t, err)
		for _, j := range jobs {
			c, err := f.st.ClaimJob(f.ctx, j.ID, a.ID, time.Minute)
			require.NoError(f.t, err)
			start := time.Now().Add(-d).Truncate(time.Millisecond)
			require.NoError(f.t, f.st.StartJob(f.ctx, j.ID, c.Attempt, start))
			done, _, err := f.st.CompleteJob(f.ctx, j.ID, c.Attempt, result, "", start.Add(d))
			require.NoError(f.t, err)
			f.eng.JobCompleted(f.ctx, done)
		}
	}
}

func TestEstimatedJobTimeout(t *testing.T) {
	f := newFixture(t)
	f.stage("build", stageCode("root", "", job("compile", "all"),
		`{"name": "fixed", "timeout": 900, "steps": [{"tool": "shell", "cmd": "x"}],
          "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}`))
	timeouts := func(fl ci.Flow) map[string]int {
		runs, err := f.st.ListRuns(f.ctx, fl.ID)
		require.NoError(t, err)
		jobs, err := f.st.ListJobs(f.ctx, runs[0].ID)
		require.NoError(t, err)
		out := map[string]int{}
		for _, j := range jobs {
			out[j.Name] = j.Timeout
		}
		return out
	}
	for i := range 4 {
		fl := f.flow(nil)
		require.Equal(t, map[string]int{"compile": schema.DefaultJobTimeout, "fixed": 900}, timeouts(fl), "history of %d jobs", i)
		f.finishJobs(fl, time.Duration(i+1)*time.Minute, ci.JobOK)
	}
	fl := f.flow(nil)
	require.Equal(t, map[string]int{"compile": 408, "fixed": 900}, timeouts(fl), "1.7 x 4 min; an explicit timeout is kept")
	f.finishJobs(fl, 5*time.Minute, ci.JobTimeout)
	require.Equal(t, map[string]int{"compile": 1020, "fixed": 900}, timeouts(f.flow(nil)), "doubled after a timeout: 2 x 1.7 x 5 min")
}
