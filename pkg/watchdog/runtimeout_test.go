package watchdog_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/schema"
)

// setRunTimeout stores the fixture's stage again with a top-level timeout.
func (f *fixture) setRunTimeout(seconds int) {
	f.t.Helper()
	code := strings.Replace(stageCode, `"parent": "root",`, `"parent": "root", "timeout": `+itoa(seconds)+`,`, 1)
	sch, err := f.eng.EvalStage(f.ctx, "build.py", []byte(code), schema.Context{IsCI: true, Stage: "build"})
	require.NoError(f.t, err)
	require.Equal(f.t, seconds, sch.Timeout)
	raw, err := json.Marshal(sch)
	require.NoError(f.t, err)
	b := f.getFlow().BranchID
	require.NoError(f.t, f.st.PutStage(f.ctx, &ci.Stage{BranchID: b, Name: "build", Enabled: true, Code: code, Schema: raw, Parent: sch.Parent}))
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout int // 0: the stage sets none
		want    int
	}{
		{"stage timeout key", 600, 600},
		{"default of 3 hours", 0, schema.DefaultRunTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 3)
			if tc.timeout > 0 {
				f.setRunTimeout(tc.timeout)
			}
			started := *f.getRun().Started
			f.clock.Set(started.Add(time.Duration(tc.want)*time.Second - time.Second))
			// A job started late: its own timeout is not what ends it.
			running := f.start(f.jobs[0].ID)
			f.renew(running)
			f.wd.Check(f.ctx)
			require.Equal(t, ci.RunInProgress, f.getRun().State, "within its timeout")

			// The run check runs every RunInterval (30 s by default).
			f.clock.Set(started.Add(time.Duration(tc.want)*time.Second + 31*time.Second))
			f.renew(running) // only the run timeout applies
			f.wd.Check(f.ctx)
			want := "run timeout of " + itoa(tc.want) + " s exceeded"
			r := f.getRun()
			require.Equal(t, ci.RunCompleted, r.State)
			require.Contains(t, r.Note, want)
			for _, j := range f.jobs {
				got := f.job(j.ID)
				require.Equal(t, ci.JobCompleted, got.State, "job %s", got.Name)
				require.Equal(t, ci.JobCancelled, got.Result, "job %s", got.Name)
				require.Equal(t, want, got.Message, "job %s", got.Name)
			}
			require.Equal(t, ci.FlowCompleted, f.getFlow().State)
		})
	}
}

// TestRunTimeoutAfterRerun: a rerun restarts the run's clock.
func TestRunTimeoutAfterRerun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.setRunTimeout(600)
	// A flow whose run started two hours ago (by the engine's clock; the
	// store stamps jobs with the real time).
	f.clock.Set(time.Now().Add(-2 * time.Hour))
	fl, err := f.eng.CreateFlow(f.ctx, ci.Branch{ID: f.getFlow().BranchID}, ci.FlowCI, nil)
	require.NoError(t, err)
	runs, err := f.st.ListRuns(f.ctx, fl.ID)
	require.NoError(t, err)
	run := runs[0]
	require.WithinDuration(t, time.Now().Add(-2*time.Hour), *run.Started, time.Minute)
	_, err = f.eng.CancelRun(f.ctx, run.ID)
	require.NoError(t, err)
	f.clock.Set(time.Now())
	_, err = f.eng.RerunRun(f.ctx, run.ID)
	require.NoError(t, err)
	get := func() ci.Run {
		r, err := f.st.GetRun(f.ctx, run.ID)
		require.NoError(t, err)
		return r
	}
	require.Equal(t, ci.RunInProgress, get().State)

	f.clock.Set(time.Now().Add(5 * time.Minute))
	f.wd.Check(f.ctx)
	require.Equal(t, ci.RunInProgress, get().State, "started 2 h ago but rerun 5 minutes ago")
	f.clock.Set(time.Now().Add(11 * time.Minute))
	f.wd.Check(f.ctx)
	r := get()
	require.Equal(t, ci.RunCompleted, r.State)
	require.Contains(t, r.Note, "run timeout of 600 s exceeded")
}
