package ci

import "time"

// TestStatus is the status of one test result (Kraken's result codes).
type TestStatus string

const (
	TestNotRun   TestStatus = "not-run"
	TestPassed   TestStatus = "passed"
	TestFailed   TestStatus = "failed"
	TestError    TestStatus = "error"
	TestDisabled TestStatus = "disabled"
	TestUnstable TestStatus = "unstable"
)

// TestStatuses lists the valid statuses, most severe first.
var TestStatuses = []TestStatus{TestFailed, TestError, TestUnstable, TestNotRun, TestDisabled, TestPassed}

// Valid reports whether s is a known status.
func (s TestStatus) Valid() bool {
	for _, v := range TestStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// TestChange is how a test result changed against its history.
type TestChange string

const (
	// ChangeNone: not analysed yet.
	ChangeNone     TestChange = ""
	ChangeNew      TestChange = "new"
	ChangeFix      TestChange = "fix"
	ChangeRegr     TestChange = "regr"
	ChangeNoChange TestChange = "no-change"
)

// Valid reports whether c is a known change (ChangeNone excluded).
func (c TestChange) Valid() bool {
	switch c {
	case ChangeNew, ChangeFix, ChangeRegr, ChangeNoChange:
		return true
	}
	return false
}

// TestValue is one metric of a test result.
type TestValue struct {
	Value      float64  `json:"value"`
	Iterations int      `json:"iterations,omitempty"`
	Median     *float64 `json:"median,omitempty"`
	Min        *float64 `json:"min,omitempty"`
	Max        *float64 `json:"max,omitempty"`
	Stddev     *float64 `json:"stddev,omitempty"`
}

// TestResult is the result of one test case in one job. (JobID, Name) is
// unique: a later result of the same test in the job replaces the earlier.
type TestResult struct {
	ID       int64                `json:"id"`
	JobID    int64                `json:"job_id"`
	JobName  string               `json:"job_name,omitempty"`
	RunID    int64                `json:"run_id,omitempty"`
	FlowID   int64                `json:"flow_id,omitempty"`
	FlowKind FlowKind             `json:"flow_kind,omitempty"`
	Group    string               `json:"agents_group,omitempty"`
	System   string               `json:"system,omitempty"`
	Name     string               `json:"name"`
	Status   TestStatus           `json:"status"`
	Message  string               `json:"message,omitempty"`
	Cmd      string               `json:"cmd,omitempty"`
	Duration float64              `json:"duration"`
	Values   map[string]TestValue `json:"values,omitempty"`
	// Analysis (zero until the job is analysed).
	Change      TestChange `json:"change,omitempty"`
	Instability int        `json:"instability"`
	Age         int        `json:"age"`
	Relevancy   int        `json:"relevancy"`
	Analyzed    bool       `json:"analyzed"`
	Created     time.Time  `json:"created"`
}

// Issue is one linter finding of a job.
type Issue struct {
	ID      int64  `json:"id"`
	JobID   int64  `json:"job_id"`
	JobName string `json:"job_name,omitempty"`
	Path    string `json:"path"`
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Type    string `json:"type"`
	Symbol  string `json:"symbol"`
	Message string `json:"message"`
	// Age is 0 for a new issue, else how many earlier CI jobs in a row had it.
	Age      int  `json:"age"`
	Analyzed bool `json:"analyzed"`
}

// New reports whether the analysed issue was not seen in the previous job.
func (i Issue) New() bool { return i.Analyzed && i.Age == 0 }

// RunResultCounts sums up the results of a run's non-covered jobs.
type RunResultCounts struct {
	TestsTotal  int `json:"tests_total"`
	TestsPassed int `json:"tests_passed"`
	TestsNotRun int `json:"tests_not_run"`
	New         int `json:"new"`
	NoChange    int `json:"no_change"`
	Regr        int `json:"regr"`
	Fix         int `json:"fix"`
	IssuesTotal int `json:"issues_total"`
	IssuesNew   int `json:"issues_new"`
	// Analyzed tells whether every completed non-covered job of the run is analysed.
	Analyzed bool `json:"analyzed"`
}
