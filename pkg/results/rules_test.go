package results

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kraken-go/kk/pkg/ci"
)

// hist builds a history newest first from statuses given oldest first, with
// the ages a chain of analyses would have given them.
func hist(statuses ...ci.TestStatus) []ci.TestResult {
	out := make([]ci.TestResult, len(statuses))
	age := 0
	for i, s := range statuses {
		if i > 0 && s == statuses[i-1] {
			age++
		} else {
			age = 0
		}
		out[len(statuses)-1-i] = ci.TestResult{Status: s, Age: age}
	}
	return out
}

const (
	P = ci.TestPassed
	F = ci.TestFailed
	E = ci.TestError
	N = ci.TestNotRun
)

func TestAnalyzeCI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hist []ci.TestResult
		cur  ci.TestStatus
		want Analysis
	}{
		{"new pass", nil, P, Analysis{Change: ci.ChangeNew, Relevancy: 2}},
		{"new failure", nil, F, Analysis{Change: ci.ChangeNew, Relevancy: 5}},
		{"stable pass", hist(P, P, P), P, Analysis{Change: ci.ChangeNoChange, Age: 3, Relevancy: 2}},
		{"old stable pass", hist(P, P, P, P, P, P), P, Analysis{Change: ci.ChangeNoChange, Age: 6, Relevancy: 1}},
		{"regression", hist(P, P), F, Analysis{Change: ci.ChangeRegr, Instability: 1, Relevancy: 6}},
		{"regression to error", hist(P), E, Analysis{Change: ci.ChangeRegr, Instability: 1, Relevancy: 5}},
		{"fix", hist(F, F, F), P, Analysis{Change: ci.ChangeFix, Instability: 1, Relevancy: 2}},
		{"failed to error is no change", hist(F), E, Analysis{Change: ci.ChangeNoChange, Instability: 1, Relevancy: 4}},
		{"not-run to pass is a fix", hist(N), P, Analysis{Change: ci.ChangeFix, Instability: 1, Relevancy: 2}},
		{"still failing", hist(P, F, F, F, F, F), F, Analysis{Change: ci.ChangeNoChange, Instability: 1, Age: 5, Relevancy: 4}},
		{"flips", hist(P, F, P, F), P, Analysis{Change: ci.ChangeFix, Instability: 4, Relevancy: 1}},
		{"flaky failure", hist(P, F, P, F, P), F, Analysis{Change: ci.ChangeRegr, Instability: 5, Relevancy: 5}},
		{"three flips", hist(P, F, P), F, Analysis{Change: ci.ChangeRegr, Instability: 3, Relevancy: 6}},
		// Only the last HistoryLen results count: the flips of the 11th
		// and 12th result (oldest) are ignored.
		{"history is capped", hist(F, P, P, P, P, P, P, P, P, P, P, P), P, Analysis{Change: ci.ChangeNoChange, Age: 11, Relevancy: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, AnalyzeCI(tc.cur, tc.hist))
		})
	}
}

func TestAnalyzeDEV(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		base *ci.TestResult
		cur  ci.TestStatus
		want Analysis
	}{
		{"no CI baseline", nil, F, Analysis{Change: ci.ChangeNew, Relevancy: 5}},
		{"same as CI", &ci.TestResult{Status: P, Age: 7, Instability: 2}, P, Analysis{Change: ci.ChangeNoChange, Age: 7, Instability: 2, Relevancy: 1}},
		{"regression against CI", &ci.TestResult{Status: P, Age: 7, Instability: 2}, F, Analysis{Change: ci.ChangeRegr, Age: 7, Instability: 2, Relevancy: 5}},
		{"fix against CI", &ci.TestResult{Status: E, Age: 1, Instability: 6}, P, Analysis{Change: ci.ChangeFix, Age: 1, Instability: 6, Relevancy: 1}},
		{"still failing as on CI", &ci.TestResult{Status: F, Age: 2, Instability: 1}, E, Analysis{Change: ci.ChangeNoChange, Age: 2, Instability: 1, Relevancy: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, AnalyzeDEV(tc.cur, tc.base))
		})
	}
}

func TestRelevancy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status ci.TestStatus
		a      Analysis
		want   int
	}{
		{"passed, stable, old", P, Analysis{Instability: 0, Age: 9}, 1},
		{"passed, unstable, old", P, Analysis{Instability: 4, Age: 5}, 0},
		{"failed regression, young, stable", F, Analysis{Change: ci.ChangeRegr}, 6},
		{"error regression", E, Analysis{Change: ci.ChangeRegr}, 5},
		{"failed, unstable, old", F, Analysis{Instability: 9, Age: 9}, 3},
		{"not-run, young", N, Analysis{Age: 1, Instability: 4}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, Relevancy(tc.status, tc.a))
		})
	}
}

func TestIssueAges(t *testing.T) {
	t.Parallel()
	is := func(path string, line int, typ, sym string, age int) ci.Issue {
		return ci.Issue{Path: path, Line: line, Type: typ, Symbol: sym, Age: age}
	}
	prev := []ci.Issue{
		is("a.py", 10, "error", "E1", 3),
		is("a.py", 14, "error", "E1", 7),
		is("a.py", 40, "warning", "W1", 0),
		is("b.py", 5, "error", "E1", 1),
	}
	for _, tc := range []struct {
		name string
		cur  ci.Issue
		want int
	}{
		{"same line", is("a.py", 10, "error", "E1", 0), 4},
		{"nearest wins", is("a.py", 13, "error", "E1", 0), 8},
		{"tie: first wins", is("a.py", 12, "error", "E1", 0), 4},
		{"moved by 5", is("a.py", 45, "warning", "W1", 0), 1},
		{"moved by 6 is new", is("a.py", 46, "warning", "W1", 0), 0},
		{"moved up by 5", is("a.py", 35, "warning", "W1", 0), 1},
		{"other path", is("c.py", 10, "error", "E1", 0), 0},
		{"other type", is("b.py", 5, "warning", "E1", 0), 0},
		{"other symbol", is("b.py", 5, "error", "E2", 0), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, []int{tc.want}, IssueAges([]ci.Issue{tc.cur}, prev))
		})
	}
	assert.Equal(t, []int{0, 0}, IssueAges([]ci.Issue{is("a", 1, "e", "", 0), is("b", 1, "e", "", 0)}, nil), "no previous job: all new")
}
