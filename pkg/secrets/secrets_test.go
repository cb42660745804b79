package secrets

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func testCipher(t *testing.T) *Cipher {
	t.Helper()
	c, err := New(bytes.Repeat([]byte{7}, KeySize))
	require.NoError(t, err)
	return c
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c := testCipher(t)
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"empty", nil},
		{"short", []byte("s3cr3t")},
		{"binary", []byte{0, 1, 2, 255, 254}},
		{"large", bytes.Repeat([]byte("k"), 64<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := c.Seal(3, "token", tc.value)
			require.NoError(t, err)
			require.Equal(t, currentKeyID, sealed[0])
			if len(tc.value) >= 4 {
				require.False(t, bytes.Contains(sealed, tc.value), "plaintext in the sealed value")
			}
			again, err := c.Seal(3, "token", tc.value)
			require.NoError(t, err)
			require.NotEqual(t, sealed, again, "nonces must differ")
			got, err := c.Open(3, "token", sealed)
			require.NoError(t, err)
			require.Equal(t, string(tc.value), string(got))
		})
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	c := testCipher(t)
	sealed, err := c.Seal(3, "token", []byte("s3cr3t-value"))
	require.NoError(t, err)
	other, err := New(bytes.Repeat([]byte{8}, KeySize))
	require.NoError(t, err)
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name    string
		c       *Cipher
		project int64
		secret  string
		sealed  []byte
	}{
		{"other project (row swapped)", c, 4, "token", sealed},
		{"other name (row swapped)", c, 3, "token2", sealed},
		{"other key", other, 3, "token", sealed},
		{"unknown key id", c, 3, "token", flip(0)},
		{"nonce changed", c, 3, "token", flip(1)},
		{"ciphertext changed", c, 3, "token", flip(1 + NonceSize)},
		{"tag changed", c, 3, "token", flip(len(sealed) - 1)},
		{"truncated", c, 3, "token", sealed[:overhead-1]},
		{"empty", c, 3, "token", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.c.Open(tc.project, tc.secret, tc.sealed)
			require.ErrorIs(t, err, ErrDecrypt)
		})
	}
}

func TestNewKeySize(t *testing.T) {
	t.Parallel()
	_, err := New(make([]byte, 16))
	require.ErrorContains(t, err, "want 32")
}

func TestLoadCreatesKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, created, err := Load(dir, "")
	require.NoError(t, err)
	require.True(t, created)
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.EqualValues(t, KeySize, fi.Size())
	sealed, err := c.Seal(1, "x", []byte("value"))
	require.NoError(t, err)

	// The next start reads the same key.
	c2, created, err := Load(dir, "")
	require.NoError(t, err)
	require.False(t, created)
	got, err := c2.Open(1, "x", sealed)
	require.NoError(t, err)
	require.Equal(t, "value", string(got))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
}

func TestLoadRefusesBadKeyFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
	}{
		{"group readable", make([]byte, KeySize), 0o640, "chmod 600"},
		{"world readable", make([]byte, KeySize), 0o604, "chmod 600"},
		{"too short", make([]byte, 16), 0o600, "is 16 bytes, want 32"},
		{"too long", make([]byte, 33), 0o600, "is 33 bytes, want 32"},
		{"empty", nil, 0o600, "is 0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			require.NoError(t, os.WriteFile(path, tc.content, 0o600))
			require.NoError(t, os.Chmod(path, tc.mode))
			_, _, err := Load(dir, "")
			require.ErrorContains(t, err, tc.want)
			// Nothing was changed.
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, len(tc.content), len(got))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, tc.mode, fi.Mode().Perm())
		})
	}
}

func TestLoadFromEnv(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{9}, KeySize)
	for _, tc := range []struct {
		name, env, want string
	}{
		{"std", base64.StdEncoding.EncodeToString(key), ""},
		{"raw std with newline", base64.RawStdEncoding.EncodeToString(key) + "\n", ""},
		{"not base64", "not base64!", "KKD_SECRET_KEY is not the base64 encoding of 32 bytes"},
		{"wrong size", base64.StdEncoding.EncodeToString(key[:31]), "KKD_SECRET_KEY is not the base64 encoding of 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			c, created, err := Load(dir, tc.env)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.False(t, created)
			_, err = os.Stat(filepath.Join(dir, KeyFile))
			require.ErrorIs(t, err, os.ErrNotExist, "an env key writes no key file")
			want, err := New(key)
			require.NoError(t, err)
			sealed, err := want.Seal(1, "x", []byte("v"))
			require.NoError(t, err)
			_, err = c.Open(1, "x", sealed)
			require.NoError(t, err)
		})
	}
}
