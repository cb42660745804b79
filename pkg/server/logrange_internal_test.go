package server

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLogRangeWriters cuts a text into writes of every size and checks
// the tail and the ranges against slices of the whole text.
func TestLogRangeWriters(t *testing.T) {
	t.Parallel()
	text := []byte(strings.Repeat("abcdefghij", 7) + "xyz")
	for size := 1; size <= len(text); size += 3 {
		for _, n := range []int{1, 4, 10, 73, 200} {
			tw := newTailWriter(n)
			for p := text; len(p) > 0; p = p[min(size, len(p)):] {
				_, _ = tw.Write(p[:min(size, len(p))])
			}
			from := max(0, len(text)-n)
			require.Equal(t, string(text[from:]), string(tw.Bytes()), "tail %d, writes of %d", n, size)
			require.Equal(t, int64(from), tw.Offset())
		}
		for _, r := range [][2]int{{0, 5}, {3, 20}, {70, 10}, {10, -1}, {100, 5}} {
			var out bytes.Buffer
			rw := &rangeWriter{w: &out, skip: int64(r[0]), left: int64(r[1])}
			var err error
			for p := text; len(p) > 0 && err == nil; p = p[min(size, len(p)):] {
				_, err = rw.Write(p[:min(size, len(p))])
			}
			end := len(text)
			if r[1] >= 0 {
				end = min(end, r[0]+r[1])
			}
			want := ""
			if r[0] < end {
				want = string(text[r[0]:end])
			}
			require.Equal(t, want, out.String(), "range %v, writes of %d", r, size)
			if r[1] > 0 && r[0]+r[1] <= len(text) {
				require.True(t, errors.Is(err, errRangeDone), "range %v ends the stream", r)
			}
		}
	}
}
