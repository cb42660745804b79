package engine_test

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/scheduler"
)

// startRecorder records the runs the engine reports as started.
type startRecorder struct {
	mu   sync.Mutex
	runs []int64
}

func (r *startRecorder) RunStarted(runID int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, runID)
}

func (r *startRecorder) got() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.runs...)
}

func TestRunStartedAndNotification(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &startRecorder{}
	log := slog.New(slog.DiscardHandler)
	f.eng = engine.New(engine.Config{Store: f.st, Hub: f.hub, Dispatcher: scheduler.New(scheduler.Config{Store: f.st, Logger: log}), Logger: log, Notifier: rec})
	f.stage("build", stageCode("root", `"flow_label": "bld-#{flow.seq.own}",
        "notification": {"email": ["dev@example.com", "#{project}@example.com"], "github": {"credentials": "bot:#{secrets.gh}"}},`, job("a", "all")))
	f.stage("deploy", stageCode("build", `"triggers": {"manual": True},`, job("b", "all")))
	fl := f.flow(nil)
	runs := f.runs(fl.ID)
	require.Equal(t, []int64{runs["build"].ID}, rec.got(), "a manual run has not started")

	got, err := f.eng.RunNotification(f.ctx, runs["build"].ID)
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"email":  []any{"dev@example.com", "proj@example.com"},
		"github": map[string]any{"credentials": "bot:#{secrets.gh}"},
	}, got, "interpolated; secrets stay references")

	f.finish(runs["build"].ID, ci.JobOK)
	runs = f.runs(fl.ID)
	require.Equal(t, ci.RunManual, runs["deploy"].State)
	_, err = f.eng.StartRun(f.ctx, runs["deploy"].ID)
	require.NoError(t, err)
	require.Equal(t, []int64{runs["build"].ID, runs["deploy"].ID}, rec.got())
	got, err = f.eng.RunNotification(f.ctx, runs["deploy"].ID)
	require.NoError(t, err)
	require.Nil(t, got, "no notification key")
}
