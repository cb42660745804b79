package api

import (
	"encoding/json"
	"time"
)

// Routes of artifacts, caches, secrets, results and data (the contract of
// the tools; see also the route table in the package comment).
//
// User routes ({p} project id or name; others numeric ids):
//
//	GET    /api/v1/flows/{id}/artifacts            → []Artifact (every run of the flow)
//	GET    /api/v1/runs/{id}/artifacts             → []Artifact
//	GET    /api/v1/artifacts/{id}                  → Artifact
//	GET    /api/v1/artifacts/{id}/content          → raw bytes (application/octet-stream)
//	GET    /public/artifacts/{id}/{name...}        → raw bytes, no token, only when Artifact.Public
//	GET    /api/v1/projects/{p}/secrets            → []Secret (never a value)
//	POST   /api/v1/projects/{p}/secrets            CreateSecret → Secret (201; 409 if the name exists)
//	PUT    /api/v1/projects/{p}/secrets/{name}     CreateSecret → Secret (create or replace)
//	DELETE /api/v1/projects/{p}/secrets/{name}     → 204
//	GET    /api/v1/runs/{id}/results?status=&change=&min_instability=&name=&job=&sort=relevancy|name|status
//	                                               → []TestResult (name: a glob, * and ?)
//	GET    /api/v1/runs/{id}/issues?new=1&job=      → []Issue
//	GET    /api/v1/branches/{id}/tests/history?name=TEST&limit=N&kind=ci|dev
//	                                               → []TestResult, newest first
//	GET    /api/v1/flows/{id}/data                 → DataValue of scope flow
//	GET    /api/v1/branches/{id}/data?scope=branch|branch-ci|branch-dev → DataValue
//	GET    /api/v1/projects/{p}/data               → DataValue of scope project
//
// Agent routes (Authorization: Bearer <agent credential>; every call carries
// the attempt and is fenced like the other agent writes):
//
//	PUT  /api/v1/agent/jobs/{id}/artifacts?attempt=N&path=REL&public=0|1&report_entry=0|1
//	                                               raw bytes (Content-Length when known) → Artifact (201)
//	GET  /api/v1/agent/jobs/{id}/artifacts?attempt=N → []Artifact of the job's flow, newest run first
//	GET  /api/v1/agent/jobs/{id}/artifacts/{aid}?attempt=N → raw bytes (only artifacts of the job's flow)
//	PUT  /api/v1/agent/jobs/{id}/cache?attempt=N&key=K&expiry=SECONDS
//	                                               tar.gz bytes → CacheEntry (201)
//	GET  /api/v1/agent/jobs/{id}/cache?attempt=N&key=K → tar.gz bytes, 404 not_found when no entry
//	POST /api/v1/agent/jobs/{id}/results           ResultsBatch → 204
//	POST /api/v1/agent/jobs/{id}/data              DataOp → DataValue (the value after the op)
//
// Blob bodies are streamed in both directions: neither kkd nor the agent
// holds a whole artifact or cache archive in memory, and agents never see the
// blob store's credentials.

// Artifact is one file stored by an artifacts step.
type Artifact struct {
	ID     int64 `json:"id"`
	FlowID int64 `json:"flow_id"`
	RunID  int64 `json:"run_id"`
	JobID  int64 `json:"job_id"`
	// Stage is the name of the run's stage.
	Stage string `json:"stage,omitempty"`
	// Path is the file's path relative to the upload's destination root,
	// with forward slashes and no "..".
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Public bool   `json:"public"`
	// ReportEntry marks the run's report entry page (implies Public).
	ReportEntry bool      `json:"report_entry,omitempty"`
	Created     time.Time `json:"created"`
	// URL is the public download URL (set when Public).
	URL string `json:"url,omitempty"`
}

// CacheEntry is one saved cache archive. Caches are scoped to the project
// and branch; a key saved again replaces the entry.
type CacheEntry struct {
	Key     string    `json:"key"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Secret kinds.
const (
	SecretSimple = "simple"
	SecretSSHKey = "ssh-key"
)

// Secret is what the API shows of a project secret: never its value.
type Secret struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// CreateSecret creates or replaces a secret. Kind simple takes Value; kind
// ssh-key takes Key (a PEM/OpenSSH private key) and optionally Username.
type CreateSecret struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Value    string `json:"value,omitempty"`
	Username string `json:"username,omitempty"`
	Key      string `json:"key,omitempty"`
}

// SecretValue is a resolved secret handed to the agent with an assignment
// (Assignment.Creds), for tool parameters that name a secret (ssh-key,
// access-token).
type SecretValue struct {
	Kind     string `json:"kind"`
	Value    string `json:"value,omitempty"`
	Username string `json:"username,omitempty"`
	Key      string `json:"key,omitempty"`
}

// Test result statuses (Kraken's).
const (
	TestNotRun   = "not-run"
	TestPassed   = "passed"
	TestFailed   = "failed"
	TestError    = "error"
	TestDisabled = "disabled"
	TestUnstable = "unstable"
)

// Changes of a test result against its history.
const (
	ChangeNew      = "new"
	ChangeFix      = "fix"
	ChangeRegr     = "regr"
	ChangeNoChange = "no-change"
)

// TestValue is one metric of a test result (values_collect, cloc, rndtest).
type TestValue struct {
	Value      float64  `json:"value"`
	Iterations int      `json:"iterations,omitempty"`
	Median     *float64 `json:"median,omitempty"`
	Min        *float64 `json:"min,omitempty"`
	Max        *float64 `json:"max,omitempty"`
	Stddev     *float64 `json:"stddev,omitempty"`
}

// TestResult is one result of one test case in one job. Agents send Name,
// Status, Message, Duration, Values (and Cmd); kkd fills the rest.
type TestResult struct {
	ID       int64                `json:"id,omitempty"`
	JobID    int64                `json:"job_id,omitempty"`
	JobName  string               `json:"job_name,omitempty"`
	RunID    int64                `json:"run_id,omitempty"`
	FlowID   int64                `json:"flow_id,omitempty"`
	FlowKind string               `json:"flow_kind,omitempty"`
	Name     string               `json:"name"`
	Status   string               `json:"status"`
	Message  string               `json:"message,omitempty"`
	Cmd      string               `json:"cmd,omitempty"`
	Duration float64              `json:"duration"` // seconds
	Values   map[string]TestValue `json:"values,omitempty"`
	// Analysis, set by kkd once the job completed (nil/empty before).
	Change      string    `json:"change,omitempty"`
	Instability int       `json:"instability"`
	Age         int       `json:"age"`
	Relevancy   int       `json:"relevancy"`
	Analyzed    bool      `json:"analyzed"`
	Created     time.Time `json:"created,omitempty"`
}

// Issue is one finding of a linter (pylint, nglint).
type Issue struct {
	ID      int64  `json:"id,omitempty"`
	JobID   int64  `json:"job_id,omitempty"`
	JobName string `json:"job_name,omitempty"`
	Path    string `json:"path"`
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Type    string `json:"type"` // error, warning, convention, refactor, ...
	Symbol  string `json:"symbol"`
	Message string `json:"message"`
	// Age is 0 for a new issue, else how many CI jobs in a row had it (set by kkd).
	Age int  `json:"age"`
	New bool `json:"new"`
}

// ResultsBatch streams test results and issues of a job during a step. A
// result with a name already sent in this job replaces the earlier one, so a
// tool first registers its collected tests as "not-run" and then reports each.
type ResultsBatch struct {
	Attempt int          `json:"attempt"`
	Step    int          `json:"step"`
	Tests   []TestResult `json:"tests,omitempty"`
	Issues  []Issue      `json:"issues,omitempty"`
}

// Data scopes of the data tool.
const (
	ScopeFlow      = "flow"
	ScopeBranch    = "branch"
	ScopeBranchCI  = "branch-ci"
	ScopeBranchDev = "branch-dev"
	ScopeProject   = "project"
)

// Data operations.
const (
	DataSet       = "set"
	DataJQ        = "jq"
	DataJSONPatch = "jsonpatch"
	DataGet       = "get"
)

// DataOp is one operation of the data tool on a scope's JSON document,
// applied atomically by kkd. JSONPointer (default "/") selects where set
// writes Value and what get returns. jq replaces the document by the result
// of the jq program Expr; jsonpatch applies the RFC 6902 patch in Value.
type DataOp struct {
	Attempt     int             `json:"attempt"`
	Scope       string          `json:"scope"`
	Op          string          `json:"op"`
	JSONPointer string          `json:"json_pointer,omitempty"`
	Value       json.RawMessage `json:"value,omitempty"`
	Expr        string          `json:"expr,omitempty"`
}

// DataValue is a scope's JSON document (or the part a pointer selected).
type DataValue struct {
	Scope string          `json:"scope"`
	Value json.RawMessage `json:"value"`
}
