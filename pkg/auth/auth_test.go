package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPassword(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("s3cret")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "pbkdf2-sha256$"))
	tests := []struct {
		name, hash, pw string
		want           bool
	}{
		{"right", h, "s3cret", true},
		{"wrong", h, "s3cret!", false},
		{"empty", h, "", false},
		{"garbage hash", "nope", "s3cret", false},
		{"bad iterations", "pbkdf2-sha256$x$AA$AA", "s3cret", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, CheckPassword(tc.hash, tc.pw))
		})
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	a, b := NewToken("kkt"), NewToken("kkt")
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "kkt_"))
	require.Equal(t, HashToken(a), HashToken(a))
	require.NotEqual(t, HashToken(a), HashToken(b))
	require.True(t, EqualHash(HashToken(a), HashToken(a)))
	require.False(t, EqualHash(HashToken(a), HashToken(b)))
}
