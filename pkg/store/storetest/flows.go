package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func flowCases() []testCase {
	return []testCase{
		{"create and get", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			fl := ci.Flow{BranchID: b.ID, Kind: ci.FlowDEV, Label: "x",
				State:       ci.FlowCompleted, // ignored: a new flow is in progress
				Args:        map[string]string{"COMMIT": "abc", "DEBUG": "1"},
				TriggerData: json.RawMessage(`[{"repo":"r","commits":[]}]`)}
			require.NoError(t, s.CreateFlow(f.ctx, &fl))
			require.NotZero(t, fl.ID)
			require.Equal(t, ci.FlowInProgress, fl.State)
			requireRecent(t, fl.Created)
			require.Nil(t, fl.Finished)
			got, err := s.GetFlow(f.ctx, fl.ID)
			require.NoError(t, err)
			require.Equal(t, fl, got)
		}},
		{"shared and per-kind counters", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			want := []struct {
				kind         ci.FlowKind
				seq, kindSeq int64
			}{
				{ci.FlowCI, 1, 1}, {ci.FlowDEV, 2, 1}, {ci.FlowCI, 3, 2}, {ci.FlowCI, 4, 3}, {ci.FlowDEV, 5, 2},
			}
			for _, w := range want {
				fl := f.flow(b.ID, w.kind)
				require.Equal(t, w.seq, fl.Seq, "kind %s", w.kind)
				require.Equal(t, w.kindSeq, fl.KindSeq, "kind %s", w.kind)
			}
			// Another branch has its own counters.
			fl := f.flow(f.newBranch().ID, ci.FlowDEV)
			require.EqualValues(t, 1, fl.Seq)
			require.EqualValues(t, 1, fl.KindSeq)
		}},
		{"concurrent creates get distinct consecutive numbers", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			const n = 20
			flows := make([]ci.Flow, n)
			requireNoErrors(t, parallel(n, func(i int) error {
				flows[i] = ci.Flow{BranchID: b.ID, Kind: []ci.FlowKind{ci.FlowCI, ci.FlowDEV}[i%2]}
				return s.CreateFlow(f.ctx, &flows[i])
			}))
			var seqs []int64
			kindSeqs := map[ci.FlowKind][]int64{}
			for _, fl := range flows {
				seqs = append(seqs, fl.Seq)
				kindSeqs[fl.Kind] = append(kindSeqs[fl.Kind], fl.KindSeq)
			}
			require.Equal(t, seqRange(n), sorted(seqs))
			require.Equal(t, seqRange(n/2), sorted(kindSeqs[ci.FlowCI]))
			require.Equal(t, seqRange(n/2), sorted(kindSeqs[ci.FlowDEV]))
			// Higher numbers were created later: the list (newest first) agrees.
			list, err := s.ListFlows(f.ctx, b.ID, store.ListFlowsOpts{})
			require.NoError(t, err)
			require.Len(t, list, n)
			for i := 1; i < n; i++ {
				require.Greater(t, list[i-1].Seq, list[i].Seq)
			}
		}},
		{"invalid kind", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			require.ErrorIs(t, s.CreateFlow(f.ctx, &ci.Flow{BranchID: b.ID, Kind: "nightly"}), ci.ErrInvalid)
		}},
		{"missing branch", func(t *testing.T, s store.Store) {
			require.ErrorIs(t, s.CreateFlow(t.Context(), &ci.Flow{BranchID: 42, Kind: ci.FlowCI}), ci.ErrNotFound)
		}},
		{"list newest first with kind and limit", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			var ids []int64
			for _, k := range []ci.FlowKind{ci.FlowCI, ci.FlowDEV, ci.FlowCI, ci.FlowDEV, ci.FlowCI} {
				ids = append(ids, f.flow(b.ID, k).ID)
			}
			f.flow(f.newBranch().ID, ci.FlowCI) // other branch

			tests := []struct {
				name string
				opts store.ListFlowsOpts
				want []int64
			}{
				{"all", store.ListFlowsOpts{}, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
				{"ci", store.ListFlowsOpts{Kind: ci.FlowCI}, []int64{ids[4], ids[2], ids[0]}},
				{"dev", store.ListFlowsOpts{Kind: ci.FlowDEV}, []int64{ids[3], ids[1]}},
				{"limit", store.ListFlowsOpts{Limit: 2}, []int64{ids[4], ids[3]}},
				{"ci limit", store.ListFlowsOpts{Kind: ci.FlowCI, Limit: 1}, []int64{ids[4]}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					list, err := s.ListFlows(f.ctx, b.ID, tc.opts)
					require.NoError(t, err)
					var got []int64
					for _, fl := range list {
						got = append(got, fl.ID)
					}
					require.Equal(t, tc.want, got)
				})
			}
		}},
		{"set label", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			require.NoError(t, s.SetFlowLabel(f.ctx, fl.ID, "v1.2.3"))
			got, err := s.GetFlow(f.ctx, fl.ID)
			require.NoError(t, err)
			require.Equal(t, "v1.2.3", got.Label)
			require.ErrorIs(t, s.SetFlowLabel(f.ctx, 42, "x"), ci.ErrNotFound)
		}},
		{"not found", func(t *testing.T, s store.Store) {
			_, err := s.GetFlow(t.Context(), 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, _, err = s.CompleteFlowIfDone(t.Context(), 42, now())
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"complete when no run is in progress", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			r := f.run(fl.ID, "build", newJob("j", 1))
			manual := ci.Run{FlowID: fl.ID, StageName: "deploy", State: ci.RunManual}
			require.NoError(t, s.CreateRun(f.ctx, &manual, nil))

			got, changed, err := s.CompleteFlowIfDone(f.ctx, fl.ID, now())
			require.NoError(t, err)
			require.False(t, changed, "a run is in progress")
			require.Equal(t, ci.FlowInProgress, got.State)
			require.Nil(t, got.Finished)

			jobs, err := s.ListJobs(f.ctx, r.ID)
			require.NoError(t, err)
			f.complete(jobs[0].ID, ci.JobOK)
			_, changed, err = s.CompleteRunIfDone(f.ctx, r.ID, now())
			require.NoError(t, err)
			require.True(t, changed)

			at := now()
			got, changed, err = s.CompleteFlowIfDone(f.ctx, fl.ID, at)
			require.NoError(t, err)
			require.True(t, changed, "a manual run does not hold the flow open")
			require.Equal(t, ci.FlowCompleted, got.State)
			requireTime(t, at, got.Finished)

			got, changed, err = s.CompleteFlowIfDone(f.ctx, fl.ID, at.Add(time.Second))
			require.NoError(t, err)
			require.False(t, changed)
			requireTime(t, at, got.Finished)
		}},
		{"complete has one winner among concurrent callers", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			const n = 10
			changed := make([]bool, n)
			requireNoErrors(t, parallel(n, func(i int) error {
				var err error
				_, changed[i], err = s.CompleteFlowIfDone(f.ctx, fl.ID, now())
				return err
			}))
			require.Equal(t, 1, count(changed))
		}},
	}
}

func runCases() []testCase {
	return []testCase{
		{"create with jobs and steps", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			jobs := []*ci.Job{newJob("linux", 3), newJob("windows", 0)}
			jobs[0].State, jobs[0].Attempt, jobs[0].Result = ci.JobCompleted, 7, ci.JobFailed // ignored
			r := ci.Run{FlowID: fl.ID, StageName: "build", State: ci.RunInProgress, Reason: "parent",
				Label: "L", Args: map[string]string{"X": "y"}}
			require.NoError(t, s.CreateRun(f.ctx, &r, jobs))
			require.NotZero(t, r.ID)
			require.EqualValues(t, 1, r.Seq)
			requireRecent(t, r.Created)
			requireTime(t, r.Created, r.Started)
			require.Nil(t, r.Finished)
			require.Equal(t, 2, r.JobsTotal)
			require.Zero(t, r.JobsError)

			got, err := s.GetRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, r, got)

			for _, j := range jobs {
				require.NotZero(t, j.ID)
				require.Equal(t, r.ID, j.RunID)
				require.Equal(t, fl.ID, j.FlowID)
				require.Equal(t, ci.JobQueued, j.State)
				require.Zero(t, j.Attempt)
				require.Empty(t, j.Result)
				require.Equal(t, r.Created, j.Created)
				for i, st := range j.Steps {
					require.Equal(t, j.ID, st.JobID)
					require.Equal(t, i, st.Index)
					require.Equal(t, ci.StepPending, st.Status)
				}
			}
			list, err := s.ListJobs(f.ctx, r.ID)
			require.NoError(t, err)
			require.Len(t, list, 2)
			require.Equal(t, *jobs[0], list[0])
			require.Equal(t, *jobs[1], list[1])
			require.Len(t, list[0].Steps, 3)
			require.Equal(t, map[string]any{"tool": "shell", "cmd": "echo 1", "attempts": float64(1)},
				list[0].Steps[1].Fields)
			got1, err := s.GetJob(f.ctx, jobs[0].ID)
			require.NoError(t, err)
			require.Equal(t, *jobs[0], got1)
		}},
		{"run counter per branch and stage name", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			fl1, fl2 := f.flow(b.ID, ci.FlowCI), f.flow(b.ID, ci.FlowDEV)
			require.EqualValues(t, 1, f.run(fl1.ID, "build").Seq)
			require.EqualValues(t, 1, f.run(fl1.ID, "test").Seq)
			require.EqualValues(t, 2, f.run(fl2.ID, "build").Seq)
			require.EqualValues(t, 2, f.run(fl2.ID, "test").Seq)
			require.EqualValues(t, 3, f.run(fl2.ID, "build").Seq)
			require.EqualValues(t, 1, f.run(f.newFlow().ID, "build").Seq, "other branch")

			runs, err := s.ListRuns(f.ctx, fl2.ID)
			require.NoError(t, err)
			var seqs []int64
			for _, r := range runs {
				seqs = append(seqs, r.Seq)
			}
			require.Equal(t, []int64{2, 2, 3}, seqs, "creation order")
		}},
		{"missing flow", func(t *testing.T, s store.Store) {
			err := s.CreateRun(t.Context(), &ci.Run{FlowID: 42, StageName: "b", State: ci.RunInProgress}, nil)
			require.ErrorIs(t, err, ci.ErrNotFound)
			_, err = s.GetRun(t.Context(), 42)
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"invalid state", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			err := s.CreateRun(f.ctx, &ci.Run{FlowID: fl.ID, StageName: "b", State: ci.RunCompleted}, nil)
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"create reopens a completed flow", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			_, changed, err := s.CompleteFlowIfDone(f.ctx, fl.ID, now())
			require.NoError(t, err)
			require.True(t, changed)
			f.run(fl.ID, "late", newJob("j", 1))
			got, err := s.GetFlow(f.ctx, fl.ID)
			require.NoError(t, err)
			require.Equal(t, ci.FlowInProgress, got.State)
			require.Nil(t, got.Finished)
		}},
		{"manual run starts once", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			r := ci.Run{FlowID: fl.ID, StageName: "deploy", State: ci.RunManual}
			require.NoError(t, s.CreateRun(f.ctx, &r, []*ci.Job{newJob("ignored", 1)}))
			require.Nil(t, r.Started)
			require.Zero(t, r.JobsTotal)
			jobs, err := s.ListJobs(f.ctx, r.ID)
			require.NoError(t, err)
			require.Empty(t, jobs, "a manual run has no jobs before it starts")

			at := now()
			newJobs := []*ci.Job{newJob("a", 2), newJob("b", 1)}
			started, err := s.StartRun(f.ctx, r.ID, newJobs, at)
			require.NoError(t, err)
			require.Equal(t, ci.RunInProgress, started.State)
			requireTime(t, at, started.Started)
			require.Equal(t, 2, started.JobsTotal)
			for _, j := range newJobs {
				require.NotZero(t, j.ID)
				require.Equal(t, ci.JobQueued, j.State)
				require.Equal(t, fl.ID, j.FlowID)
			}
			jobs, err = s.ListJobs(f.ctx, r.ID)
			require.NoError(t, err)
			require.Len(t, jobs, 2)
			require.Equal(t, *newJobs[0], jobs[0])

			_, err = s.StartRun(f.ctx, r.ID, []*ci.Job{newJob("c", 1)}, at)
			require.ErrorIs(t, err, ci.ErrConflict)
			jobs, err = s.ListJobs(f.ctx, r.ID)
			require.NoError(t, err)
			require.Len(t, jobs, 2, "a failed start inserts nothing")
		}},
		{"start of a run that is not manual conflicts", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r := f.run(f.newFlow().ID, "build", newJob("j", 1))
			_, err := s.StartRun(f.ctx, r.ID, nil, now())
			require.ErrorIs(t, err, ci.ErrConflict)
			_, err = s.StartRun(f.ctx, 42, nil, now())
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"start reopens a completed flow", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			r := ci.Run{FlowID: fl.ID, StageName: "deploy", State: ci.RunManual}
			require.NoError(t, s.CreateRun(f.ctx, &r, nil))
			_, changed, err := s.CompleteFlowIfDone(f.ctx, fl.ID, now())
			require.NoError(t, err)
			require.True(t, changed)
			_, err = s.StartRun(f.ctx, r.ID, []*ci.Job{newJob("j", 1)}, now())
			require.NoError(t, err)
			got, err := s.GetFlow(f.ctx, fl.ID)
			require.NoError(t, err)
			require.Equal(t, ci.FlowInProgress, got.State)
			require.Nil(t, got.Finished)
		}},
		{"complete when every job is completed", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r, jobs := f.queued(3, 1)
			for i, res := range []ci.JobResult{ci.JobOK, ci.JobFailed} {
				f.complete(jobs[i].ID, res)
				got, changed, err := s.CompleteRunIfDone(f.ctx, r.ID, now())
				require.NoError(t, err)
				require.False(t, changed)
				require.Equal(t, ci.RunInProgress, got.State)
				require.Nil(t, got.Finished)
			}
			f.complete(jobs[2].ID, ci.JobTimeout)
			at := now()
			got, changed, err := s.CompleteRunIfDone(f.ctx, r.ID, at)
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, ci.RunCompleted, got.State)
			requireTime(t, at, got.Finished)
			require.Equal(t, 3, got.JobsTotal)
			require.Equal(t, 2, got.JobsError)

			again, changed, err := s.CompleteRunIfDone(f.ctx, r.ID, at.Add(time.Minute))
			require.NoError(t, err)
			require.False(t, changed)
			require.Equal(t, got, again)
		}},
		{"complete has one winner among concurrent callers", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r, jobs := f.queued(2, 0)
			for _, j := range jobs {
				f.complete(j.ID, ci.JobOK)
			}
			const n = 10
			changed := make([]bool, n)
			requireNoErrors(t, parallel(n, func(i int) error {
				var err error
				_, changed[i], err = s.CompleteRunIfDone(f.ctx, r.ID, now())
				return err
			}))
			require.Equal(t, 1, count(changed))
		}},
		{"complete of a manual or missing run", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			fl := f.newFlow()
			r := ci.Run{FlowID: fl.ID, StageName: "deploy", State: ci.RunManual}
			require.NoError(t, s.CreateRun(f.ctx, &r, nil))
			got, changed, err := s.CompleteRunIfDone(f.ctx, r.ID, now())
			require.NoError(t, err)
			require.False(t, changed)
			require.Equal(t, ci.RunManual, got.State)
			_, _, err = s.CompleteRunIfDone(f.ctx, 42, now())
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"set note and label", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r := f.run(f.newFlow().ID, "build")
			require.NoError(t, s.SetRunNote(f.ctx, r.ID, "timed out"))
			require.NoError(t, s.SetRunLabel(f.ctx, r.ID, "build-7"))
			got, err := s.GetRun(f.ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, "timed out", got.Note)
			require.Equal(t, "build-7", got.Label)
			require.ErrorIs(t, s.SetRunNote(f.ctx, 42, "x"), ci.ErrNotFound)
			require.ErrorIs(t, s.SetRunLabel(f.ctx, 42, "x"), ci.ErrNotFound)
		}},
		{"rerun run covers old jobs and reopens run and flow", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r, jobs := f.queued(2, 1)
			f.complete(jobs[0].ID, ci.JobOK)
			f.complete(jobs[1].ID, ci.JobFailed)
			_, changed, err := s.CompleteRunIfDone(f.ctx, r.ID, now())
			require.NoError(t, err)
			require.True(t, changed)
			_, changed, err = s.CompleteFlowIfDone(f.ctx, r.FlowID, now())
			require.NoError(t, err)
			require.True(t, changed)

			fresh := []*ci.Job{newJob("job-0", 1), newJob("job-1", 1)}
			got, err := s.RerunRun(f.ctx, r.ID, fresh)
			require.NoError(t, err)
			require.Equal(t, ci.RunInProgress, got.State)
			require.Nil(t, got.Finished)
			require.Equal(t, 2, got.JobsTotal)
			require.Zero(t, got.JobsError)
			fl, err := s.GetFlow(f.ctx, r.FlowID)
			require.NoError(t, err)
			require.Equal(t, ci.FlowInProgress, fl.State)
			require.Nil(t, fl.Finished)

			list, err := s.ListJobs(f.ctx, r.ID)
			require.NoError(t, err)
			require.Len(t, list, 4, "covered jobs are listed too")
			require.True(t, list[0].Covered)
			require.True(t, list[1].Covered)
			require.False(t, list[2].Covered)
			require.Equal(t, *fresh[0], list[2])
			require.Equal(t, ci.JobQueued, list[3].State)

			for _, j := range fresh {
				f.complete(j.ID, ci.JobOK)
			}
			done, changed, err := s.CompleteRunIfDone(f.ctx, r.ID, now())
			require.NoError(t, err)
			require.True(t, changed)
			require.Equal(t, 2, done.JobsTotal, "covered jobs do not count")
			require.Zero(t, done.JobsError)
		}},
		{"rerun of a manual run conflicts", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r := ci.Run{FlowID: f.newFlow().ID, StageName: "deploy", State: ci.RunManual}
			require.NoError(t, s.CreateRun(f.ctx, &r, nil))
			_, err := s.RerunRun(f.ctx, r.ID, []*ci.Job{newJob("j", 1)})
			require.ErrorIs(t, err, ci.ErrConflict)
			_, err = s.RerunRun(f.ctx, 42, nil)
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
	}
}

func seqRange(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func sorted(v []int64) []int64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

func count(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}
