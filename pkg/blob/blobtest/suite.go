package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
)

// Run runs the behaviour suite of blob.Store. newStore returns an empty
// store for each case (cases run in parallel).
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, s blob.Store)
	}{
		{"put get stat", testPutGet},
		{"put replaces", testReplace},
		{"missing key", testMissing},
		{"invalid keys", testInvalidKeys},
		{"size mismatch stores nothing", testSizeMismatch},
		{"reader error stores nothing", testReaderError},
		{"cancelled put stores nothing", testCancelledPut},
		{"unknown size streams", testUnknownSize},
		{"delete", testDelete},
		{"list", testList},
		{"concurrent puts", testConcurrent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

func put(t *testing.T, s blob.Store, key string, data []byte) blob.Info {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Equal(t, key, info.Key)
	require.Equal(t, int64(len(data)), info.Size)
	return info
}

func read(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func testPutGet(t *testing.T, s blob.Store) {
	tests := []struct {
		name, key string
		data      []byte
	}{
		{"empty", "logs/1.gz", []byte{}},
		{"small", "artifacts/1/2/3/a b/c.txt", []byte("hello\n")},
		{"binary", "caches/1/2/" + strings.Repeat("ab", 32), randBytes(t, 100_000)},
		{"unicode", "artifacts/1/2/3/Ünïcødé/ファイル.bin", []byte("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			put(t, s, tc.key, tc.data)
			require.Equal(t, tc.data, read(t, s, tc.key))
			info, err := s.Stat(t.Context(), tc.key)
			require.NoError(t, err)
			require.Equal(t, int64(len(tc.data)), info.Size)
			require.False(t, info.Modified.IsZero())
		})
	}
}

func testReplace(t *testing.T, s blob.Store) {
	put(t, s, "a/b", []byte("first"))
	put(t, s, "a/b", []byte("second, longer"))
	require.Equal(t, "second, longer", string(read(t, s, "a/b")))
}

func testMissing(t *testing.T, s blob.Store) {
	_, err := s.Get(t.Context(), "no/such/key")
	require.ErrorIs(t, err, ci.ErrNotFound)
	_, err = s.Stat(t.Context(), "no/such/key")
	require.ErrorIs(t, err, ci.ErrNotFound)
	require.NoError(t, s.Delete(t.Context(), "no/such/key"), "deleting a missing key is no error")
	put(t, s, "dir/file", []byte("x"))
	_, err = s.Get(t.Context(), "dir")
	require.ErrorIs(t, err, ci.ErrNotFound, "a prefix of keys is not a blob")
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	for _, key := range []string{
		"", "/abs", "a/../b", "..", "../escape", "a/./b", "a//b", "a/", "a\\b", "nul\x00", strings.Repeat("k", blob.MaxKeyLen+1),
	} {
		t.Run(key, func(t *testing.T) {
			_, err := s.Put(t.Context(), key, strings.NewReader("x"), 1)
			require.ErrorIs(t, err, ci.ErrInvalid)
			_, err = s.Get(t.Context(), key)
			require.ErrorIs(t, err, ci.ErrInvalid)
			_, err = s.Stat(t.Context(), key)
			require.ErrorIs(t, err, ci.ErrInvalid)
			require.ErrorIs(t, s.Delete(t.Context(), key), ci.ErrInvalid)
		})
	}
	for info, err := range s.List(t.Context(), "../") {
		require.ErrorIs(t, err, ci.ErrInvalid)
		require.Empty(t, info.Key)
	}
}

func testSizeMismatch(t *testing.T, s blob.Store) {
	put(t, s, "k/short", []byte("old"))
	_, err := s.Put(t.Context(), "k/short", strings.NewReader("abc"), 10)
	require.ErrorIs(t, err, ci.ErrInvalid)
	require.Equal(t, "old", string(read(t, s, "k/short")), "a short reader leaves the old blob")

	_, err = s.Put(t.Context(), "k/long", strings.NewReader("abcdef"), 3)
	require.ErrorIs(t, err, ci.ErrInvalid)
	_, err = s.Stat(t.Context(), "k/long")
	require.ErrorIs(t, err, ci.ErrNotFound, "a long reader stores nothing")
}

func testReaderError(t *testing.T, s blob.Store) {
	put(t, s, "k/err", []byte("old"))
	boom := errors.New("boom")
	for _, size := range []int64{-1, 1 << 20} {
		r := io.MultiReader(bytes.NewReader(randBytes(t, 1000)), iotest.ErrReader(boom))
		_, err := s.Put(t.Context(), "k/err", r, size)
		require.ErrorIs(t, err, boom)
		require.Equal(t, "old", string(read(t, s, "k/err")), "size %d", size)
	}
}

func testCancelledPut(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	data := randBytes(t, 1000)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(data)
		cancel()
		_ = pw.CloseWithError(errors.New("cancelled upload"))
	}()
	_, err := s.Put(ctx, "k/cancelled", pr, -1)
	require.Error(t, err)
	_, err = s.Stat(t.Context(), "k/cancelled")
	require.ErrorIs(t, err, ci.ErrNotFound)
}

// testUnknownSize streams a blob larger than one S3 part with size -1.
func testUnknownSize(t *testing.T, s blob.Store) {
	const n = blob.S3PartSize + 12345
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.Reader, n), h)
	info, err := s.Put(t.Context(), "big/blob", struct{ io.Reader }{src}, -1)
	require.NoError(t, err)
	require.Equal(t, int64(n), info.Size)
	rc, err := s.Get(t.Context(), "big/blob")
	require.NoError(t, err)
	defer rc.Close()
	got := sha256.New()
	m, err := io.CopyBuffer(got, rc, make([]byte, 4096))
	require.NoError(t, err)
	require.Equal(t, int64(n), m)
	require.Equal(t, h.Sum(nil), got.Sum(nil))
}

func testDelete(t *testing.T, s blob.Store) {
	put(t, s, "d/1/a", []byte("a"))
	put(t, s, "d/1/b", []byte("b"))
	require.NoError(t, s.Delete(t.Context(), "d/1/a"))
	_, err := s.Stat(t.Context(), "d/1/a")
	require.ErrorIs(t, err, ci.ErrNotFound)
	require.Equal(t, "b", string(read(t, s, "d/1/b")))
	require.NoError(t, s.Delete(t.Context(), "d/1/b"))
	require.Empty(t, keys(t, s, "d/"))
	put(t, s, "d/1/a", []byte("again"))
	require.Equal(t, "again", string(read(t, s, "d/1/a")))
}

func keys(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	var out []string
	for info, err := range s.List(t.Context(), prefix) {
		require.NoError(t, err)
		out = append(out, info.Key)
	}
	slices.Sort(out)
	return out
}

func testList(t *testing.T, s blob.Store) {
	for _, k := range []string{"artifacts/1/a", "artifacts/1/sub/b", "artifacts/12/c", "caches/1/x", "logs/1.gz", "logs/10.gz"} {
		put(t, s, k, []byte(k))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"artifacts/1/a", "artifacts/1/sub/b", "artifacts/12/c", "caches/1/x", "logs/1.gz", "logs/10.gz"}},
		{"artifacts/1/", []string{"artifacts/1/a", "artifacts/1/sub/b"}},
		{"artifacts/1", []string{"artifacts/1/a", "artifacts/1/sub/b", "artifacts/12/c"}},
		{"logs/1", []string{"logs/1.gz", "logs/10.gz"}},
		{"logs/1.", []string{"logs/1.gz"}},
		{"nothing/", nil},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			require.Equal(t, tc.want, keys(t, s, tc.prefix))
		})
	}
	// Stopping early is allowed.
	n := 0
	for _, err := range s.List(t.Context(), "") {
		require.NoError(t, err)
		n++
		break
	}
	require.Equal(t, 1, n)
}

func testConcurrent(t *testing.T, s blob.Store) {
	var wg sync.WaitGroup
	datas := make([][]byte, 8)
	for i := range datas {
		datas[i] = randBytes(t, 50_000)
	}
	for i := range datas {
		wg.Go(func() {
			_, err := s.Put(t.Context(), "same/key", bytes.NewReader(datas[i]), int64(len(datas[i])))
			require.NoError(t, err)
		})
	}
	wg.Wait()
	got := read(t, s, "same/key")
	require.True(t, slices.ContainsFunc(datas, func(d []byte) bool { return bytes.Equal(d, got) }),
		"the key holds one of the written blobs, whole")
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}
