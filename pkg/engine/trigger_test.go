package engine_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
)

func TestTriggerStageRootStartsAFlowOfItsOwn(t *testing.T) {
	f := newFixture(t)
	nightly := f.stage("nightly", stageCode("root", `"triggers": {"cron": "0 3 * * *"},`, job("long", "all")))
	f.stage("build", stageCode("root", "", job("compile", "all")))

	data := json.RawMessage(`{"forge":"repo","after":"0123456789012345678901234567890123456789"}`)
	got, err := f.eng.TriggerStage(f.ctx, nightly, "cron", data)
	require.NoError(t, err)
	require.Empty(t, got.Skipped)
	require.NotZero(t, got.Flow.ID)
	require.Equal(t, ci.FlowCI, got.Flow.Kind)
	require.JSONEq(t, string(data), string(got.Flow.TriggerData))
	runs := f.runs(got.Flow.ID)
	require.Len(t, runs, 1, "only the triggered root stage runs, not its sibling")
	require.Equal(t, "cron", runs["nightly"].Reason)
	require.Equal(t, got.Run.ID, runs["nightly"].ID)
	require.Len(t, f.jobs(got.Run.ID), 1)

	_, err = f.eng.TriggerStage(f.ctx, nightly, "cron", json.RawMessage(`[1]`))
	require.ErrorIs(t, err, ci.ErrInvalid)
}

func TestTriggerStageChildJoinsTheLatestFlowWithItsParent(t *testing.T) {
	f := newFixture(t)
	f.stage("build", stageCode("root", "", job("compile", "all")))
	child := f.stage("deploy", stageCode("build", `"triggers": {"interval": "1h"},`, job("ship", "all")))

	got, err := f.eng.TriggerStage(f.ctx, child, "interval", nil)
	require.NoError(t, err)
	require.Contains(t, got.Skipped, `no CI flow has a run of the parent stage "build"`)

	older := f.flow(nil)
	newer := f.flow(nil)
	// The parent fails: no child run starts by itself.
	f.finish(f.runs(newer.ID)["build"].ID, ci.JobFailed)
	require.NotContains(t, f.runs(newer.ID), "deploy")

	got, err = f.eng.TriggerStage(f.ctx, child, "interval", nil)
	require.NoError(t, err)
	require.Empty(t, got.Skipped)
	require.Equal(t, newer.ID, got.Flow.ID, "the latest flow with a run of the parent")
	runs := f.runs(newer.ID)
	require.Equal(t, "interval", runs["deploy"].Reason)
	require.Equal(t, ci.FlowInProgress, f.getFlow(newer.ID).State, "the completed flow is in progress again")
	require.NotContains(t, f.runs(older.ID), "deploy")

	// The latest flow already has a run of the stage: nothing starts.
	got, err = f.eng.TriggerStage(f.ctx, child, "interval", nil)
	require.NoError(t, err)
	require.Contains(t, got.Skipped, "already has a run of \"deploy\"")
	require.Len(t, f.runs(newer.ID), 2)
	require.NotContains(t, f.runs(older.ID), "deploy")
}
