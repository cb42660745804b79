package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
)

// ResultsAnalyzer analyses the test results and issues of completed runs
// in the background (pkg/results.Analyzer). Enqueue must not block.
type ResultsAnalyzer interface {
	Enqueue(runID int64)
}

// runCompleted hands a run that just completed to the results analysis.
func (e *Engine) runCompleted(r ci.Run) {
	if e.cfg.Results != nil {
		e.cfg.Results.Enqueue(r.ID)
	}
}

// addScopeData puts the data tool's documents into the evaluation context:
// ctx.flow.data, ctx.branch.data, ctx.branch.data_ci, ctx.branch.data_dev
// and ctx.project_data (Kraken's ctx.project.data; ctx.project is the
// project's name here). A document that is not a JSON object is left out.
func (e *Engine) addScopeData(ctx context.Context, c *schema.Context, f ci.Flow, b ci.Branch, p ci.Project) error {
	for _, d := range []struct {
		scope store.DataScope
		dst   *map[string]any
	}{
		{store.DataScope{Kind: "flow", OwnerID: f.ID}, &c.Flow.Data},
		{store.DataScope{Kind: "branch", OwnerID: b.ID}, &c.BranchData},
		{store.DataScope{Kind: "branch-ci", OwnerID: b.ID}, &c.BranchCIData},
		{store.DataScope{Kind: "branch-dev", OwnerID: b.ID}, &c.BranchDevData},
		{store.DataScope{Kind: "project", OwnerID: p.ID}, &c.ProjectData},
	} {
		if d.scope.OwnerID == 0 {
			continue // no flow yet (stage validation)
		}
		doc, _, err := e.cfg.Store.GetData(ctx, d.scope)
		if err != nil {
			return fmt.Errorf("read %s data: %w", d.scope.Kind, err)
		}
		if doc == nil {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			e.cfg.Logger.Warn("data document is not a JSON object: not visible to stages", "scope", d.scope.Kind, "owner_id", d.scope.OwnerID)
			continue
		}
		*d.dst = m
	}
	return nil
}
