// Package tools holds the step tools the agent runs (Kraken's `tool:` of a
// step). A tool turns one step's fields into commands run in a prepared
// executor environment and reports how the step ended.
//
// Contract for Tool implementations:
//   - Run is called once per attempt, by the job runner, with the job's
//     context: it carries the job deadline and is cancelled when the job is
//     cancelled. Run must return promptly once ctx is done.
//   - Fields are already interpolated by the server. A tool validates them and
//     returns StepError with reason "bad-parameters" when they are wrong.
//   - Output is written to Step.Output as it is produced.
//   - Processes a tool leaves running after Run returns (background steps) are
//     registered with Step.Background, which the runner stops at job end.
//
// The registry is a plain map built by Builtin; there is no package state.
package tools

import (
	"context"
	"io"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// Step is what a tool gets to run one step.
type Step struct {
	Index int
	Name  string
	Tool  string
	// Fields are the step's fields as assigned (tool, when, attempts, and the
	// tool's parameters).
	Fields map[string]any
	// Env is the job's environment (branch env and KK_* variables); tools add
	// the step's own env on top.
	Env map[string]string
	// Output receives the step's log. It stays valid until the job ends, so
	// background processes may keep writing to it.
	Output io.Writer
	// Deadline is the job's deadline (zero: none). ctx carries it as well;
	// tools use it to size their own timeouts or to explain a timeout.
	Deadline time.Time
	// Background keeps processes that outlive the step (nil: not supported).
	Background *Background
}

// Reasons reported with a step's status.
const (
	ReasonRetcode          = "retcode"
	ReasonStepTimeout      = "step-timeout"
	ReasonJobTimeout       = "job-timeout"
	ReasonCancelled        = "cancelled"
	ReasonBadParameters    = "bad-parameters"
	ReasonExecError        = "exec-error"
	ReasonToolNotAvailable = "tool-not-available"
)

// Result is how a step attempt ended.
type Result struct {
	Status   ci.StepStatus
	ExitCode *int
	Reason   string
	Message  string
}

// Tool runs steps of one kind.
type Tool interface {
	// Run runs one attempt of the step in env; see the package contract.
	Run(ctx context.Context, env executor.Env, st Step) Result
}

// Builtin returns a new registry of the tools this agent version implements,
// keyed by Kraken tool name.
func Builtin() map[string]Tool {
	return map[string]Tool{
		"shell": Shell{},
	}
}
