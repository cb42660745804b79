package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/schema"
)

// RunNotifier is told when a run starts (its jobs were queued), to send the
// stage's start notifications (GitHub's pending commit status). RunStarted
// must not block; the notifier sends in the background and never changes
// the run's state. The end notifications are sent after the run's results
// analysis (pkg/results Config.Processed), so they carry its counts.
type RunNotifier interface {
	RunStarted(runID int64)
}

// runStarted tells the notifier that run r started.
func (e *Engine) runStarted(r ci.Run) {
	if e.cfg.Notifier != nil {
		e.cfg.Notifier.RunStarted(r.ID)
	}
}

// RunNotification evaluates the stage of the run in the run's context and
// returns its notification key with #{...} interpolated; nil when the stage
// has none. Secrets stay references (#{secrets.NAME}): the caller resolves
// them right before sending.
func (e *Engine) RunNotification(ctx context.Context, runID int64) (map[string]any, error) {
	r, err := e.cfg.Store.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	f, s, err := e.flowAndStage(ctx, r)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(s.Code, "notification") {
		// Code that never names the key cannot return it: skip evaluating
		// the stage again for every run start and end.
		return nil, nil
	}
	c, err := e.context(ctx, f, s, r)
	if err != nil {
		return nil, err
	}
	st, err := schema.Eval(ctx, s.Name+".py", []byte(s.Code), c, e.cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("evaluate stage %q: %w", s.Name, err)
	}
	if len(st.Notification) == 0 {
		return nil, nil
	}
	v, err := schema.InterpolateValue(st.Notification, c.Vars())
	if err != nil {
		return nil, fmt.Errorf("stage %q notification: %w", s.Name, err)
	}
	m, _ := v.(map[string]any)
	return m, nil
}
