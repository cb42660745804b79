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
//   - Tools run in the agent process, whatever the executor: the job's
//     workspace is visible at the same path to the agent and to the commands
//     (executor.SystemFiles), so file work (artifacts, caches, git checkouts,
//     reading reports) happens on the host's view of the workspace, network
//     work (kkd calls through Step.Services, git remotes) in the agent, and
//     only the commands a tool inherently needs (go test, pytest, pylint)
//     run in the job's system through Env.Run. Paths given to tools are
//     resolved inside the workspace (see Workspace).
//
// The registry is a plain map built by Builtin; there is no package state.
package tools

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/kraken-go/kk/pkg/api"
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
	// Job describes the job the step belongs to.
	Job JobInfo
	// Creds are the secrets named by tool parameters (ssh-key,
	// access-token), resolved by kkd (api.Assignment.Creds).
	Creds map[string]api.SecretValue
	// Trigger is the flow's trigger data (api.Assignment.Trigger), nil when
	// the flow was started by hand.
	Trigger json.RawMessage
	// Services are the step's calls to kkd (nil: not available, the tools
	// that need them fail with a clear message).
	Services Services
}

// JobInfo names the job a step belongs to.
type JobInfo struct {
	ID       int64
	Attempt  int
	RunID    int64
	FlowID   int64
	Name     string
	Project  string
	Branch   string
	Stage    string
	FlowKind ci.FlowKind
}

// Services are the calls to kkd a tool makes for its step (the agent routes
// of pkg/api: artifacts, cache, results, data). pkg/agent implements them on
// the agent's authenticated client.
//
// Contract:
//   - Every call belongs to the step's job attempt. Transient failures
//     (network errors, 5xx, 429) are retried with backoff until the call
//     succeeds, ctx ends or the retry budget is spent; a refused attempt
//     (409 stale_attempt, revoked credential, job gone) stops the job and
//     comes back as an error.
//   - Bodies are streamed: open is called once per try and must return a
//     fresh reader of the whole body each time (it is closed after the try);
//     write and extract get the response body and may be called again after
//     a transient failure, so they must start over each time (write to a new
//     temporary file). Errors of open's reader, write and extract themselves
//     are not retried.
//   - Safe for concurrent use.
type Services interface {
	// UploadArtifact stores one file of an artifacts upload.
	UploadArtifact(ctx context.Context, up ArtifactUpload, open func() (io.ReadCloser, error)) (api.Artifact, error)
	// ListArtifacts lists the artifacts of the job's flow, newest run first.
	ListArtifacts(ctx context.Context) ([]api.Artifact, error)
	// DownloadArtifact fetches an artifact of the job's flow into write.
	DownloadArtifact(ctx context.Context, id int64, write func(io.Reader) error) error
	// SaveCache stores a tar.gz cache archive under key; expiry 0 lets kkd
	// choose.
	SaveCache(ctx context.Context, key string, expiry time.Duration, open func() (io.ReadCloser, error)) (api.CacheEntry, error)
	// RestoreCache fetches the archive saved under key into extract; it
	// reports false (and does not call extract) when there is none.
	RestoreCache(ctx context.Context, key string, extract func(io.Reader) error) (bool, error)
	// ReportResults sends test results and issues of the step. A test name
	// sent again replaces the earlier result.
	ReportResults(ctx context.Context, tests []api.TestResult, issues []api.Issue) error
	// Data applies a data operation (Attempt is filled in).
	Data(ctx context.Context, op api.DataOp) (api.DataValue, error)
}

// ArtifactUpload describes one file to store.
type ArtifactUpload struct {
	// Path in the store: relative, forward slashes, no "..".
	Path string
	// Size in bytes (-1: unknown).
	Size        int64
	Public      bool
	ReportEntry bool
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
		"shell":          Shell{},
		"git":            Git{},
		"artifacts":      Artifacts{},
		"cache":          Cache{},
		"data":           Data{},
		"junit_collect":  JUnitCollect{},
		"gotest":         GoTest{},
		"pytest":         Pytest{},
		"values_collect": ValuesCollect{},
		"pylint":         Pylint{},
		"nglint":         NgLint{},
		"cloc":           Cloc{},
		"rndtest":        RndTest{},
	}
}
