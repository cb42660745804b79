package blob_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/blob/blobtest"
	"github.com/kraken-go/kk/pkg/ci"
)

func TestFileStore(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := blob.Open(t.Context(), "file://"+t.TempDir())
		require.NoError(t, err)
		return s
	})
}

func TestS3Store(t *testing.T) {
	t.Parallel()
	m := blobtest.StartMinIO(t)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		// A new bucket per case: Open creates it.
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		s, err := blob.Open(t.Context(), m.URL("kk-test-"+hex.EncodeToString(b)))
		require.NoError(t, err)
		return s
	})
}

func TestS3StorePrefixAndEnvCredentials(t *testing.T) {
	t.Parallel()
	m := blobtest.StartMinIO(t)
	env := map[string]string{"KKD_S3_ACCESS_KEY": m.AccessKey, "KKD_S3_SECRET_KEY": m.SecretKey}
	s, err := blob.OpenEnv(t.Context(), "s3://"+m.Endpoint+"/kk-env/some/prefix?secure=false&region=us-east-1", func(k string) string { return env[k] })
	require.NoError(t, err)
	_, err = s.Put(t.Context(), "logs/1.gz", strings.NewReader("data"), 4)
	require.NoError(t, err)
	var keys []string
	for info, err := range s.List(t.Context(), "logs/") {
		require.NoError(t, err)
		keys = append(keys, info.Key)
	}
	require.Equal(t, []string{"logs/1.gz"}, keys)
	require.NotContains(t, s.String(), m.SecretKey)

	// The same bucket without the prefix shows where the blob is.
	whole, err := blob.Open(t.Context(), m.URL("kk-env"))
	require.NoError(t, err)
	_, err = whole.Stat(t.Context(), "some/prefix/logs/1.gz")
	require.NoError(t, err)

	// Wrong credentials fail at Open with a hint.
	_, err = blob.OpenEnv(t.Context(), "s3://wrong:credentials@"+m.Endpoint+"/kk-env?secure=false", func(string) string { return "" })
	require.ErrorContains(t, err, "credentials")
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	tests := []struct {
		name, url, want string
	}{
		{"no scheme", "/var/lib/kk", "no scheme"},
		{"unknown scheme", "gs://bucket", `unknown scheme "gs"`},
		{"file without path", "file://", "has no path"},
		{"file with query", "file:///tmp/x?a=b", "takes only a path"},
		{"s3 without host", "s3:///bucket", "no host"},
		{"s3 without bucket", "s3://a:b@127.0.0.1:1", "no bucket"},
		{"s3 bad bucket", "s3://a:b@127.0.0.1:1/Bad_Bucket", "bucket"},
		{"s3 bad secure", "s3://a:b@127.0.0.1:1/bucket?secure=maybe", "secure="},
		{"s3 unknown param", "s3://a:b@127.0.0.1:1/bucket?sekure=false", `unknown parameter "sekure"`},
		{"s3 no credentials", "s3://127.0.0.1:1/bucket", "KKD_S3_ACCESS_KEY"},
		{"s3 bad prefix", "s3://a:b@127.0.0.1:1/bucket/a/../b", "prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := blob.OpenEnv(t.Context(), tc.url, noEnv)
			require.ErrorIs(t, err, ci.ErrInvalid)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), ":b@", "no secret in errors")
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	require.Equal(t, "s3://ak:xxxxx@h:9000/b?secure=false", blob.Redact("s3://ak:sk@h:9000/b?secure=false"))
	require.Equal(t, "file:///x", blob.Redact("file:///x"))
}

func TestFileStoreLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := blob.OpenDir(dir)
	require.NoError(t, err)
	_, err = s.Put(t.Context(), "artifacts/1/f.txt", strings.NewReader("x"), 1)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, "artifacts", "1", "f.txt"))
	require.NoError(t, err)
	require.Equal(t, "x", string(b))
	tmp, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	require.NoError(t, err)
	require.Empty(t, tmp, "no temporary file is left")
	_, err = s.Put(t.Context(), ".tmp/x", strings.NewReader("x"), 1)
	require.ErrorIs(t, err, ci.ErrInvalid)
	_, err = s.Put(t.Context(), "artifacts/"+strings.Repeat("n", 300), strings.NewReader("x"), 1)
	require.ErrorIs(t, err, ci.ErrInvalid, "a name too long for the file system is invalid input")
	require.NoError(t, s.Delete(t.Context(), "artifacts/1/f.txt"))
	_, err = os.Stat(filepath.Join(dir, "artifacts"))
	require.ErrorIs(t, err, os.ErrNotExist, "empty directories are removed")
}
