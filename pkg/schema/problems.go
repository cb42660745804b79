package schema

import (
	"fmt"
	"sort"
)

// maxProblems bounds the problems reported for one stage.
const maxProblems = 100

// capProblems sorts problems by position (unpositioned ones last, order
// otherwise kept) and keeps at most maxProblems, noting how many were left out.
func capProblems(ps Problems) Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	if len(ps) > maxProblems {
		more := len(ps) - maxProblems
		ps = append(ps[:maxProblems:maxProblems], Problem{File: ps[0].File, Message: fmt.Sprintf("and %d more problems", more)})
	}
	return ps
}
