package store

import (
	"context"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// TriggerState is the planner's record of one time or repository trigger of
// a stage (kinds: interval, date, cron, repo). It lets the leader that runs
// the planner, whichever replica that is, continue where the last one
// stopped: one catch-up run per missed trigger, never two fires of one
// scheduled instant.
type TriggerState struct {
	StageID int64
	Kind    string
	// Rule is the trigger as the planner read it from the stage's schema (a
	// cron rule, an interval, a date, the repo trigger's JSON). When the
	// stage gets another rule, the trigger starts over from Since.
	Rule string
	// Since is when the planner started planning this rule: the first
	// interval fire is Since+interval, cron fires after Since, a date
	// before Since never fires.
	Since time.Time
	// LastFired is the scheduled instant of the last fire (for repo: when
	// new commits were last found); zero: never.
	LastFired time.Time
	// Repo is the repo trigger's last seen commits (the planner's JSON);
	// Checked is when the repositories were last polled (zero: never).
	Repo    string
	Checked time.Time
}

// TriggerStore holds the planner's trigger states. They are deleted with
// their stage.
type TriggerStore interface {
	// ListPlannedStages returns every enabled stage of every branch, ordered
	// by ID: what the planner schedules from.
	ListPlannedStages(ctx context.Context) ([]ci.Stage, error)
	// StagesVersion changes whenever a stage is applied, enabled, disabled
	// or deleted; the planner re-plans when it does.
	StagesVersion(ctx context.Context) (string, error)

	// EnsureTrigger returns the stage's trigger state of kind, creating it
	// with Since=now when there is none, and starting it over (Since=now,
	// Repo and Checked cleared; LastFired kept) when its Rule is not rule.
	// Concurrent callers get the same state. ErrNotFound if the stage does
	// not exist.
	EnsureTrigger(ctx context.Context, stageID int64, kind, rule string, now time.Time) (TriggerState, error)
	// DropTriggers deletes the stage's trigger states whose kind is not in keep.
	DropTriggers(ctx context.Context, stageID int64, keep []string) error
	// ListTriggerStates returns the trigger states of a branch's stages
	// (branchID 0: of all stages), ordered by stage ID and kind.
	ListTriggerStates(ctx context.Context, branchID int64) ([]TriggerState, error)
	// ClaimTriggerFire records that the trigger fires for the scheduled
	// instant at, when its state has rule and its LastFired is before at (or
	// zero). Exactly one of several callers (also in other kkd processes)
	// claiming the same instant gets true; the others, and any later claim
	// of an earlier instant, get false. The caller starts the run only after
	// a true claim. ErrNotFound when the stage has no such trigger state.
	ClaimTriggerFire(ctx context.Context, stageID int64, kind, rule string, at time.Time) (bool, error)
	// SwapTriggerRepo records a poll of a repo trigger at checked: when the
	// state's Rule is rule and its Repo is still prev, Repo becomes next,
	// Checked becomes checked and, when fired is not zero, LastFired becomes
	// fired. It returns false (and changes nothing) when another caller
	// changed the state meanwhile. ErrNotFound when the stage has no repo
	// trigger state.
	SwapTriggerRepo(ctx context.Context, stageID int64, rule, prev, next string, checked, fired time.Time) (bool, error)
}
