// Package results analyses test results and issues against their history,
// with Kraken's rules:
//
//   - A CI result is compared with the previous HistoryLen results of the
//     same test in the same branch, agents group and system (CI flows only,
//     non-covered jobs, by flow creation). Instability is the number of status
//     flips across them and the current result; age is the previous age + 1
//     when the status is unchanged, else 0; change is fix (non-pass → pass),
//     regr (pass → non-pass), new (no history) or no-change (also between two
//     non-pass statuses).
//   - A DEV result is compared with the latest CI result of the same test,
//     group and system in the branch; age and instability are copied from it.
//   - Relevancy (0–6): +1 not passed, +1 not root-caused (for a result that is
//     not passed; comments do not exist yet, so every such result counts),
//     +1 failed, +1 instability ≤ 3, +1 age < 5, +1 regression.
//   - An issue matches an issue of the previous successful CI job with the
//     same name, system, group and stage when path, type and symbol are equal
//     and the lines are at most IssueLineWindow apart (the nearest wins); its
//     age is then the matched issue's age + 1, else 0 (a new issue).
//
// The Analyzer runs the analysis in the background when runs complete, in
// flow order for CI runs of a stage (see Analyzer).
package results

import (
	"github.com/kraken-go/kk/pkg/ci"
)

// HistoryLen is how many previous CI results a CI result is compared with.
const HistoryLen = 10

// IssueLineWindow is how far (in lines) an issue may have moved and still
// match the previous job's issue.
const IssueLineWindow = 5

// Analysis is what the rules compute for one test result.
type Analysis struct {
	Change      ci.TestChange
	Instability int
	Age         int
	Relevancy   int
}

// change classifies a status against the previous one.
func change(prev, cur ci.TestStatus) ci.TestChange {
	switch {
	case prev != ci.TestPassed && cur == ci.TestPassed:
		return ci.ChangeFix
	case prev == ci.TestPassed && cur != ci.TestPassed:
		return ci.ChangeRegr
	}
	return ci.ChangeNoChange
}

// AnalyzeCI computes the analysis of a CI result with status cur from the
// previous results of the same test, newest first (as store.CIHistory
// returns them; at most HistoryLen are used).
func AnalyzeCI(cur ci.TestStatus, prev []ci.TestResult) Analysis {
	if len(prev) > HistoryLen {
		prev = prev[:HistoryLen]
	}
	if len(prev) == 0 {
		a := Analysis{Change: ci.ChangeNew}
		a.Relevancy = Relevancy(cur, a)
		return a
	}
	var a Analysis
	// Flips between consecutive previous results (newest first, so each
	// pair is (older, newer) reversed: the count is the same).
	for i := 1; i < len(prev); i++ {
		if prev[i].Status != prev[i-1].Status {
			a.Instability++
		}
	}
	last := prev[0]
	if last.Status == cur {
		a.Age = last.Age + 1
		a.Change = ci.ChangeNoChange
	} else {
		a.Instability++
		a.Change = change(last.Status, cur)
	}
	a.Relevancy = Relevancy(cur, a)
	return a
}

// AnalyzeDEV computes the analysis of a DEV result with status cur against
// the latest CI result of the same test (nil when there is none).
func AnalyzeDEV(cur ci.TestStatus, base *ci.TestResult) Analysis {
	a := Analysis{Change: ci.ChangeNew}
	if base != nil {
		a.Age, a.Instability = base.Age, base.Instability
		a.Change = ci.ChangeNoChange
		if base.Status != cur {
			a.Change = change(base.Status, cur)
		}
	}
	a.Relevancy = Relevancy(cur, a)
	return a
}

// Relevancy scores how much a result needs attention, from 0 to 6.
func Relevancy(status ci.TestStatus, a Analysis) int {
	r := 0
	if status != ci.TestPassed {
		r++ // not passed
		r++ // not root-caused: there are no comments yet
	}
	if status == ci.TestFailed {
		r++
	}
	if a.Instability <= 3 {
		r++
	}
	if a.Age < 5 {
		r++
	}
	if a.Change == ci.ChangeRegr {
		r++
	}
	return r
}

// IssueAges returns the age of each current issue against the previous
// job's issues: the nearest previous issue (same path, type and symbol,
// lines at most IssueLineWindow apart; the first on a tie) gives age + 1,
// no match gives 0.
func IssueAges(cur, prev []ci.Issue) []int {
	ages := make([]int, len(cur))
	for i, is := range cur {
		best, dist := -1, IssueLineWindow+1
		for j, p := range prev {
			if p.Path != is.Path || p.Type != is.Type || p.Symbol != is.Symbol {
				continue
			}
			d := p.Line - is.Line
			if d < 0 {
				d = -d
			}
			if d < dist {
				best, dist = j, d
			}
		}
		if best >= 0 {
			ages[i] = prev[best].Age + 1
		}
	}
	return ages
}
