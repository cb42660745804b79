package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

// stage creates an enabled root stage in the branch.
func (f *fx) stage(branchID int64, name string) ci.Stage {
	f.t.Helper()
	st := ci.Stage{BranchID: branchID, Name: name, Enabled: true, Code: "def stage(ctx): pass",
		Schema: json.RawMessage(`{"parent":"root","jobs":[]}`), Parent: "root"}
	require.NoError(f.t, f.s.PutStage(f.ctx, &st))
	return st
}

func triggerCases() []testCase {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []testCase{
		{"ensure creates once and restarts on a new rule", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			st := f.stage(f.newBranch().ID, "nightly")

			got, err := s.EnsureTrigger(f.ctx, st.ID, "cron", "0 3 * * *", t0)
			require.NoError(t, err)
			require.Equal(t, store.TriggerState{StageID: st.ID, Kind: "cron", Rule: "0 3 * * *", Since: t0}, got)
			// The same rule later keeps the state.
			again, err := s.EnsureTrigger(f.ctx, st.ID, "cron", "0 3 * * *", t0.Add(time.Hour))
			require.NoError(t, err)
			require.Equal(t, got, again)

			ok, err := s.ClaimTriggerFire(f.ctx, st.ID, "cron", "0 3 * * *", t0.Add(15*time.Hour))
			require.NoError(t, err)
			require.True(t, ok)
			// Another rule starts over from now; the last fire is kept for display.
			t1 := t0.Add(20*time.Hour + 123*time.Millisecond)
			changed, err := s.EnsureTrigger(f.ctx, st.ID, "cron", "*/5 * * * *", t1)
			require.NoError(t, err)
			require.Equal(t, store.TriggerState{StageID: st.ID, Kind: "cron", Rule: "*/5 * * * *", Since: t1, LastFired: t0.Add(15 * time.Hour)}, changed)

			_, err = s.EnsureTrigger(f.ctx, st.ID+1000, "cron", "* * * * *", t0)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.EnsureTrigger(f.ctx, st.ID, "cron", "", t0)
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"claim: one winner per instant, never an earlier one", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			st := f.stage(f.newBranch().ID, "tick")
			_, err := s.EnsureTrigger(f.ctx, st.ID, "interval", "1m", t0)
			require.NoError(t, err)

			at := t0.Add(time.Minute)
			const n = 8
			var wins atomic.Int32
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					ok, err := s.ClaimTriggerFire(f.ctx, st.ID, "interval", "1m", at)
					errs[i] = err
					if ok {
						wins.Add(1)
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			require.EqualValues(t, 1, wins.Load(), "exactly one claim of an instant wins")

			ok, err := s.ClaimTriggerFire(f.ctx, st.ID, "interval", "1m", at.Add(-time.Second))
			require.NoError(t, err)
			require.False(t, ok, "an earlier instant cannot be claimed after a later one")
			ok, err = s.ClaimTriggerFire(f.ctx, st.ID, "interval", "2m", at.Add(time.Minute))
			require.NoError(t, err)
			require.False(t, ok, "a claim under an outdated rule fails")
			ok, err = s.ClaimTriggerFire(f.ctx, st.ID, "interval", "1m", at.Add(time.Minute))
			require.NoError(t, err)
			require.True(t, ok)

			states, err := s.ListTriggerStates(f.ctx, st.BranchID)
			require.NoError(t, err)
			require.Len(t, states, 1)
			require.Equal(t, at.Add(time.Minute), states[0].LastFired)

			_, err = s.ClaimTriggerFire(f.ctx, st.ID, "date", "2026-01-01", at)
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"repo: swap only from the state seen", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			st := f.stage(f.newBranch().ID, "poll")
			rule := `{"url":"file:///r","interval":"2s"}`
			_, err := s.EnsureTrigger(f.ctx, st.ID, "repo", rule, t0)
			require.NoError(t, err)

			// First poll records the head without a fire.
			ok, err := s.SwapTriggerRepo(f.ctx, st.ID, rule, "", `{"a":"1"}`, t0.Add(2*time.Second), time.Time{})
			require.NoError(t, err)
			require.True(t, ok)
			// A racer that saw the old state loses.
			ok, err = s.SwapTriggerRepo(f.ctx, st.ID, rule, "", `{"a":"2"}`, t0.Add(2*time.Second), t0.Add(2*time.Second))
			require.NoError(t, err)
			require.False(t, ok)
			// New commits: swap and record the fire.
			ok, err = s.SwapTriggerRepo(f.ctx, st.ID, rule, `{"a":"1"}`, `{"a":"2"}`, t0.Add(4*time.Second), t0.Add(4*time.Second))
			require.NoError(t, err)
			require.True(t, ok)
			// No change: only the poll time moves.
			ok, err = s.SwapTriggerRepo(f.ctx, st.ID, rule, `{"a":"2"}`, `{"a":"2"}`, t0.Add(6*time.Second), time.Time{})
			require.NoError(t, err)
			require.True(t, ok)

			states, err := s.ListTriggerStates(f.ctx, 0)
			require.NoError(t, err)
			var got store.TriggerState
			for _, x := range states {
				if x.StageID == st.ID {
					got = x
				}
			}
			require.Equal(t, store.TriggerState{StageID: st.ID, Kind: "repo", Rule: rule, Since: t0,
				LastFired: t0.Add(4 * time.Second), Repo: `{"a":"2"}`, Checked: t0.Add(6 * time.Second)}, got)

			// A new rule forgets the commits seen.
			rule2 := `{"url":"file:///other","interval":"2s"}`
			restarted, err := s.EnsureTrigger(f.ctx, st.ID, "repo", rule2, t0.Add(time.Minute))
			require.NoError(t, err)
			require.Empty(t, restarted.Repo)
			require.True(t, restarted.Checked.IsZero())
			ok, err = s.SwapTriggerRepo(f.ctx, st.ID, rule, "", `{"a":"3"}`, t0.Add(time.Minute), time.Time{})
			require.NoError(t, err)
			require.False(t, ok, "a poll under the old rule changes nothing")
		}},
		{"drop, list by branch, cascade with the stage", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			st := f.stage(b.ID, "a")
			other := f.stage(f.newBranch().ID, "b")
			for _, k := range []string{"cron", "date", "interval"} {
				_, err := s.EnsureTrigger(f.ctx, st.ID, k, "r-"+k, t0)
				require.NoError(t, err)
			}
			_, err := s.EnsureTrigger(f.ctx, other.ID, "cron", "* * * * *", t0)
			require.NoError(t, err)

			require.NoError(t, s.DropTriggers(f.ctx, st.ID, []string{"cron"}))
			states, err := s.ListTriggerStates(f.ctx, b.ID)
			require.NoError(t, err)
			require.Len(t, states, 1)
			require.Equal(t, "cron", states[0].Kind)

			require.NoError(t, s.DeleteStage(f.ctx, st.ID))
			states, err = s.ListTriggerStates(f.ctx, b.ID)
			require.NoError(t, err)
			require.Empty(t, states)
			require.NoError(t, s.DropTriggers(f.ctx, other.ID, nil))
			states, err = s.ListTriggerStates(f.ctx, other.BranchID)
			require.NoError(t, err)
			require.Empty(t, states)
		}},
		{"planned stages and the stages version", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			v0, err := s.StagesVersion(f.ctx)
			require.NoError(t, err)
			a := f.stage(b.ID, "a")
			v1, err := s.StagesVersion(f.ctx)
			require.NoError(t, err)
			require.NotEqual(t, v0, v1)
			off := ci.Stage{BranchID: b.ID, Name: "off", Enabled: false, Code: "x", Schema: json.RawMessage(`{}`), Parent: "root"}
			require.NoError(t, s.PutStage(f.ctx, &off))
			v2, err := s.StagesVersion(f.ctx)
			require.NoError(t, err)
			require.NotEqual(t, v1, v2)

			planned, err := s.ListPlannedStages(f.ctx)
			require.NoError(t, err)
			var names []string
			for _, p := range planned {
				if p.BranchID == b.ID {
					names = append(names, p.Name)
				}
			}
			require.Equal(t, []string{"a"}, names, "disabled stages are not planned")

			require.NoError(t, s.DeleteStage(f.ctx, a.ID))
			v3, err := s.StagesVersion(f.ctx)
			require.NoError(t, err)
			require.NotEqual(t, v2, v3)

			// Re-applying a stage changes the version every time, however
			// quickly the writes follow each other (same clock tick).
			seen := map[string]bool{v3: true}
			for i := range 5 {
				off.Code = fmt.Sprintf("x%d", i)
				require.NoError(t, s.PutStage(f.ctx, &off))
				v, err := s.StagesVersion(f.ctx)
				require.NoError(t, err)
				require.False(t, seen[v], "version %q repeated after re-apply %d", v, i)
				seen[v] = true
			}
		}},
	}
}
