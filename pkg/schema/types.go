package schema

import (
	"fmt"
	"strings"
)

// Context is what stage code sees as `ctx` and what #{...} expressions see as
// top-level names. Data maps and Args/Env are tolerant: a missing key reads as
// None, so `ctx.flow.data.x or default` works on the first evaluation.
type Context struct {
	IsCI       bool
	Args       map[string]string
	Project    string
	Branch     string // branch display name
	BranchName string // repository branch
	Env        map[string]string
	Stage      string
	Flow       FlowInfo
	Run        RunInfo
	// Secrets maps secret names to values (later issues); nil for none.
	Secrets map[string]any
	// Documents of the data tool's scopes: ctx.branch.data, .data_ci,
	// .data_dev and ctx.project_data (flow data is Flow.Data).
	BranchData, BranchCIData, BranchDevData, ProjectData map[string]any
}

// FlowInfo is ctx.flow.
type FlowInfo struct {
	ID      int64
	Kind    string // "CI" or "DEV" as Kraken shows it
	Seq     int64  // shared counter (flow.seq.shared)
	KindSeq int64  // own counter per kind (flow.seq.own)
	Label   string
	Data    map[string]any
	Trigger map[string]any
}

// RunInfo is ctx.run.
type RunInfo struct {
	ID    int64
	Seq   int64 // run.seq.own (and run.seq.shared)
	Label string
}

// Limits bound an evaluation (sandbox).
type Limits struct {
	MaxSteps uint64 // Starlark execution steps; 0 means DefaultMaxSteps
	Timeout  int64  // milliseconds of wall time; 0 means DefaultTimeoutMS
	// MaxMemory bounds the growth of the process heap during the evaluation,
	// in bytes; 0 means DefaultMaxMemory. See the package doc for its limits.
	MaxMemory int64
}

// Defaults of Limits.
const (
	DefaultMaxSteps  = 10_000_000
	DefaultTimeoutMS = 5_000
	DefaultMaxMemory = 256 << 20
)

// Fixed sandbox bounds.
const (
	// MaxCodeBytes is the largest stage source Eval accepts.
	MaxCodeBytes = 1 << 20
	// MaxResultBytes bounds the size of the dict returned by stage(ctx), as
	// an estimate of the memory its Go form takes (a bit more than its JSON).
	MaxResultBytes = 10 << 20
)

// Problem is one error found in a stage file. Line and Col are 1-based; they
// point at the offending key (or token) in the source when it can be located.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Key     string `json:"key,omitempty"` // JSON-path-like location, e.g. jobs[0].steps[1].cmdd
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is the error returned by Eval for any invalid stage: syntax errors,
// runtime errors, sandbox limits and validation failures.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// Stage is the evaluated, validated stage dict, in Kraken's JSON shape (the
// json tags are Kraken's keys). Defaults are filled in: parent "root",
// triggers {parent: true} when no trigger is given, empty lists.
type Stage struct {
	Parent       string              `json:"parent"`
	Triggers     Triggers            `json:"triggers"`
	Parameters   []Parameter         `json:"parameters"`
	Configs      []map[string]string `json:"configs,omitempty"`
	FlowLabel    string              `json:"flow_label,omitempty"`
	RunLabel     string              `json:"run_label,omitempty"`
	Jobs         []Job               `json:"jobs"`
	Notification map[string]any      `json:"notification,omitempty"`
	// Timeout is the run timeout in seconds (Kraken documents it but ignores it;
	// we honour it). 0 means the default of 3 hours.
	Timeout int `json:"timeout,omitempty"`
}

// Triggers of a stage. Parent is a pointer because an explicit false differs
// from absent (a root stage with parent: false is not started by new flows).
type Triggers struct {
	Parent   *bool          `json:"parent,omitempty"`
	Manual   bool           `json:"manual,omitempty"`
	Interval string         `json:"interval,omitempty"`
	Date     string         `json:"date,omitempty"`
	Cron     string         `json:"cron,omitempty"`
	Repo     map[string]any `json:"repo,omitempty"`
	// Webhook triggers (github/gitlab/gitea push or pull_request) are kept as written.
	Webhooks map[string]any `json:"-"`
}

// Parameter of a stage, available as ctx.args.NAME and #{args.NAME}.
type Parameter struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Default     string `json:"default"`
	Description string `json:"description,omitempty"`
}

// Job of a stage. One job instance runs per environment × system.
type Job struct {
	Name         string        `json:"name"`
	Timeout      int           `json:"timeout,omitempty"` // seconds; 0 means the default
	Steps        []Step        `json:"steps"`
	Environments []Environment `json:"environments"`
}

// DefaultJobTimeout is Kraken's default job timeout in seconds.
const DefaultJobTimeout = 300

// DefaultRunTimeout is the run timeout in seconds used when a stage sets none
// (Kraken's DEFAULT_RUN_TIMEOUT, 3 hours).
const DefaultRunTimeout = 3 * 3600

// Step is a step dict as written (tool, name, when, attempts, and the tool's
// parameters), after validation.
type Step map[string]any

// Tool returns the step's tool name without a @version suffix.
func (s Step) Tool() string {
	t, _ := s["tool"].(string)
	if i := strings.IndexByte(t, '@'); i >= 0 {
		t = t[:i]
	}
	return t
}

// Name returns the step's display name, or "".
func (s Step) Name() string { n, _ := s["name"].(string); return n }

// Environment of a job: where its instances run.
type Environment struct {
	AgentsGroup string   `json:"agents_group"`
	System      []string `json:"system"` // written as a string or a list
	Executor    string   `json:"executor"`
	Config      any      `json:"config,omitempty"`
	// Network is the Docker network mode of executor docker (bridge, host,
	// none, a network name; empty: the engine's default).
	Network string `json:"network,omitempty"`
}

// JobInstance is one (job, environment, system) combination to queue.
type JobInstance struct {
	Name    string
	Timeout int // seconds, defaulted
	// ExplicitTimeout tells whether the job set its timeout (else Timeout is
	// DefaultJobTimeout and kkd may estimate one from history).
	ExplicitTimeout bool
	Group           string
	System          string
	Executor        string
	Network         string // executor docker's network mode ("" for the default)
	Steps           []Step
}
