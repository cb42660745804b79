package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// ResultFilter filters ListRunResults. Zero fields do not filter.
type ResultFilter struct {
	Status         ci.TestStatus
	Change         ci.TestChange
	MinInstability int
	// Name is a glob: * matches any run of characters (also '/'), ? one
	// character; everything else matches itself.
	Name    string
	JobID   int64
	JobName string
	// Sort is "relevancy" (default: relevancy desc, then name), "name" or
	// "status" (most severe first, then name).
	Sort string
}

// IssueFilter filters ListRunIssues.
type IssueFilter struct {
	NewOnly bool // analysed issues with age 0
	JobID   int64
	JobName string
}

// ResultAnalysis is the analysis of one test result.
type ResultAnalysis struct {
	ID          int64
	Change      ci.TestChange
	Instability int
	Age         int
	Relevancy   int
}

// IssueAnalysis is the analysis of one issue.
type IssueAnalysis struct {
	ID  int64
	Age int
}

// RunRef names a run for the ordering of the analysis.
type RunRef struct {
	RunID  int64
	FlowID int64
	State  ci.RunState
	// Processed: the run is completed and every completed non-covered job of
	// it is analysed.
	Processed bool
}

// ResultStore holds test results and issues of jobs and answers the history
// queries of the results analysis (pkg/results).
//
// Test cases are kept per branch, by name. "History" always means results
// of non-covered jobs whose analysis is stored (SaveAnalysis), ordered by
// flow creation (flow IDs grow with creation).
type ResultStore interface {
	// PutResults stores a batch of step step of the job's attempt: test
	// results are upserted by (job, name), so a later result replaces an
	// earlier one (a tool registers its tests as not-run first); issues are
	// added, an issue identical to one the job has is stored once (a resent
	// batch is a no-op). The first batch of a new attempt drops what earlier
	// attempts stored. Fenced like UpdateStep (attempt 0 is not fenced).
	// ErrInvalid for an empty name or path or an unknown status; then nothing
	// is stored.
	PutResults(ctx context.Context, jobID int64, attempt, step int, tests []ci.TestResult, issues []ci.Issue) error
	// ListJobResults returns the job's test results ordered by name.
	ListJobResults(ctx context.Context, jobID int64) ([]ci.TestResult, error)
	// ListJobIssues returns the job's issues ordered by path, line, column.
	ListJobIssues(ctx context.Context, jobID int64) ([]ci.Issue, error)
	// ListRunResults returns the results of the run's non-covered jobs.
	ListRunResults(ctx context.Context, runID int64, f ResultFilter) ([]ci.TestResult, error)
	// ListRunIssues returns the issues of the run's non-covered jobs ordered
	// by job, path, line.
	ListRunIssues(ctx context.Context, runID int64, f IssueFilter) ([]ci.Issue, error)
	// RunResultCounts sums up the run's results and issues (non-covered jobs).
	RunResultCounts(ctx context.Context, runID int64) (ci.RunResultCounts, error)
	// TestHistory returns the results of the named test in the branch's
	// flows of kind (both when ""), newest first, at most limit (0: all).
	TestHistory(ctx context.Context, branchID int64, name string, kind ci.FlowKind, limit int) ([]ci.TestResult, error)

	// CIHistory returns, for each test of the job, the previous results of
	// the same test in the same branch, agents group and system: analysed
	// results of non-covered jobs of CI flows created before the job's flow,
	// newest first, at most limit per test. Tests without history are absent.
	CIHistory(ctx context.Context, jobID int64, limit int) (map[string][]ci.TestResult, error)
	// CIBaseline returns, for each test of the job, the latest analysed
	// result of the same test, agents group and system in a CI flow of the
	// branch (for DEV results).
	CIBaseline(ctx context.Context, jobID int64) (map[string]ci.TestResult, error)
	// PreviousIssues finds the latest analysed job of an earlier CI flow of
	// the branch with the same name, system, agents group and stage that
	// completed ok and is not covered; it returns its issues (found=false
	// when there is no such job).
	PreviousIssues(ctx context.Context, jobID int64) (issues []ci.Issue, found bool, err error)
	// SaveAnalysis stores the analysis of the job's results and issues and
	// marks the job analysed, in one transaction. ErrConflict when the job was
	// analysed already (the first analysis stands).
	SaveAnalysis(ctx context.Context, jobID int64, results []ResultAnalysis, issues []IssueAnalysis, at time.Time) error
	// PendingAnalysis returns the completed, non-covered jobs of the run
	// that are not analysed yet, in ID order.
	PendingAnalysis(ctx context.Context, runID int64) ([]ci.Job, error)
	// AdjacentCIRun returns the run of the same stage name in the closest
	// CI flow of the run's branch created before (next=false) or after
	// (next=true) the run's flow, ignoring runs in state manual. found=false
	// when there is none.
	AdjacentCIRun(ctx context.Context, runID int64, next bool) (ref RunRef, found bool, err error)
	// ListRunsToAnalyze returns completed runs that have completed,
	// non-covered jobs not analysed yet, in flow order.
	ListRunsToAnalyze(ctx context.Context) ([]int64, error)
}

// DataScope names the JSON document of a data scope: Kind is one of the
// api.Scope* names (flow, branch, branch-ci, branch-dev, project); OwnerID is
// the flow's, branch's or project's ID.
type DataScope struct {
	Kind    string
	OwnerID int64
}

// DataScopeKinds are the valid DataScope kinds.
var DataScopeKinds = []string{"flow", "branch", "branch-ci", "branch-dev", "project"}

// DataStore holds the JSON documents of the data tool's scopes. Deleting the
// owner deletes its documents.
type DataStore interface {
	// GetData returns the scope's document and its version; a scope without
	// a document gives doc nil and version 0. ErrNotFound when the owner
	// does not exist; ErrInvalid for an unknown kind.
	GetData(ctx context.Context, scope DataScope) (doc json.RawMessage, version int64, err error)
	// PutData stores doc (valid JSON) as the scope's document if its version
	// is still version (0: no document yet) and returns the new version;
	// ErrConflict when another write came first (compare-and-swap).
	PutData(ctx context.Context, scope DataScope, doc json.RawMessage, version int64) (int64, error)
}

// UpdateData applies fn to the scope's document atomically: it reads the
// document, calls fn with it (nil when there is none) and stores fn's result
// with PutData, retrying from the read when another writer came first. An
// error of fn changes nothing and is returned as is.
func UpdateData(ctx context.Context, ds DataStore, scope DataScope, fn func(doc json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error) {
	const maxTries = 20
	for range maxTries {
		doc, version, err := ds.GetData(ctx, scope)
		if err != nil {
			return nil, err
		}
		out, err := fn(doc)
		if err != nil {
			return nil, err
		}
		if _, err := ds.PutData(ctx, scope, out, version); err != nil {
			if errors.Is(err, ci.ErrConflict) {
				continue
			}
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("update %s data %d: %d concurrent writers won every try: retry later: %w", scope.Kind, scope.OwnerID, maxTries, ci.ErrConflict)
}

// MatchGlob reports whether name matches pattern: * matches any run of
// characters (including '/'), ? exactly one character, everything else
// itself.
func MatchGlob(pattern, name string) bool {
	p, n := []rune(pattern), []rune(name)
	// Iterative matching with backtracking to the last star.
	pi, ni, star, mark := 0, 0, -1, 0
	for ni < len(n) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == n[ni]):
			pi++
			ni++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ni
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ni = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
