package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/store"
)

func TestMatchGlob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"*", "a/b::c", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbb", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*::test_*", "pkg/x.py::test_one", true},
		{"**x", "x", true},
		{"é?", "éa", true},
		{"[a]", "a", false},
	} {
		require.Equal(t, tc.want, store.MatchGlob(tc.pattern, tc.name), "%q %q", tc.pattern, tc.name)
	}
}
