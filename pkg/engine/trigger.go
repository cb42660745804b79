package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
)

// flowsSearched bounds how many of the newest CI flows TriggerStage looks
// through for one with a run of a child stage's parent.
const flowsSearched = 50

// Triggered is what TriggerStage did.
type Triggered struct {
	Flow ci.Flow
	Run  ci.Run
	// Skipped says why no run was started (empty when one was).
	Skipped string
}

// TriggerStage starts a run of stage s for a planner trigger (reason is
// "cron", "interval", "date" or "commit to repo"), as Kraken's trigger_run
// does: for a root stage, a new CI flow with only this stage's run (its other
// root stages are not started); for a child stage, a run in the latest CI
// flow that has a run of the parent, unless that flow already has a run of
// this stage (then nothing starts). triggerData, a JSON object or empty, is
// stored with a new flow (ctx.flow.trigger; the git tool checks out its
// commit).
func (e *Engine) TriggerStage(ctx context.Context, s ci.Stage, reason string, triggerData json.RawMessage) (Triggered, error) {
	st, err := ParseStageSchema(s)
	if err != nil {
		return Triggered{}, err
	}
	if st.Parent == "root" || st.Parent == "" {
		return e.triggerRoot(ctx, s, reason, triggerData)
	}
	flows, err := e.cfg.Store.ListFlows(ctx, s.BranchID, store.ListFlowsOpts{Kind: ci.FlowCI, Limit: flowsSearched})
	if err != nil {
		return Triggered{}, fmt.Errorf("list flows: %w", err)
	}
	for _, f := range flows {
		runs, err := e.cfg.Store.ListRuns(ctx, f.ID)
		if err != nil {
			return Triggered{}, fmt.Errorf("list runs of flow %d: %w", f.ID, err)
		}
		hasParent, hasOwn := false, false
		for _, r := range runs {
			hasParent = hasParent || r.StageName == st.Parent
			hasOwn = hasOwn || r.StageName == s.Name
		}
		if !hasParent {
			continue
		}
		if hasOwn {
			return Triggered{Flow: f, Skipped: fmt.Sprintf("the latest flow with a run of %q (%d) already has a run of %q", st.Parent, f.ID, s.Name)}, nil
		}
		r, err := e.startStage(ctx, f, s, reason)
		if err != nil {
			return Triggered{Flow: f}, err
		}
		return Triggered{Flow: f, Run: r}, nil
	}
	return Triggered{Skipped: fmt.Sprintf("no CI flow has a run of the parent stage %q", st.Parent)}, nil
}

// triggerRoot creates a CI flow with a run of the root stage s only.
func (e *Engine) triggerRoot(ctx context.Context, s ci.Stage, reason string, triggerData json.RawMessage) (Triggered, error) {
	if len(triggerData) > 0 {
		var obj map[string]any
		if err := json.Unmarshal(triggerData, &obj); err != nil {
			return Triggered{}, fmt.Errorf("%w: trigger data must be a JSON object: %v", ci.ErrInvalid, err)
		}
	}
	stages, err := e.cfg.Store.ListStages(ctx, s.BranchID)
	if err != nil {
		return Triggered{}, fmt.Errorf("list stages: %w", err)
	}
	var schemas []*schema.Stage
	for _, x := range stages {
		st, err := ParseStageSchema(x)
		if err != nil {
			return Triggered{}, err
		}
		schemas = append(schemas, st)
	}
	f := ci.Flow{BranchID: s.BranchID, Kind: ci.FlowCI, Args: DefaultArgs(schemas, nil), TriggerData: triggerData}
	if err := e.cfg.Store.CreateFlow(ctx, &f); err != nil {
		return Triggered{}, fmt.Errorf("create flow: %w", err)
	}
	f.Label = strconv.FormatInt(f.KindSeq, 10)
	if st, err := ParseStageSchema(s); err == nil && st.FlowLabel != "" {
		if c, err := e.context(ctx, f, s, ci.Run{}); err == nil {
			if l, err := schema.Interpolate(st.FlowLabel, c.Vars()); err == nil && l != "" {
				f.Label = l
			}
		}
	}
	if err := e.cfg.Store.SetFlowLabel(ctx, f.ID, f.Label); err != nil {
		return Triggered{}, fmt.Errorf("set flow label: %w", err)
	}
	r, err := e.startStage(ctx, f, s, reason)
	if err != nil {
		// The flow must not stay in progress without runs.
		e.cfg.Logger.Error("start triggered stage", "flow_id", f.ID, "stage", s.Name, "err", err)
	}
	if _, _, err := e.cfg.Store.CompleteFlowIfDone(ctx, f.ID, e.now()); err != nil {
		return Triggered{}, fmt.Errorf("complete flow: %w", err)
	}
	got, gerr := e.cfg.Store.GetFlow(ctx, f.ID)
	if gerr != nil {
		return Triggered{}, fmt.Errorf("get flow: %w", gerr)
	}
	return Triggered{Flow: got, Run: r}, err
}
