package logs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
	"github.com/kraken-go/kk/pkg/store"
)

// withBlobs gives the fixture's service a file blob store and returns an
// archiver on it.
func (f *fixture) withBlobs(t *testing.T, bs blob.Store) *logs.Archiver {
	t.Helper()
	if bs == nil {
		var err error
		bs, err = blob.OpenDir(t.TempDir())
		require.NoError(t, err)
	}
	f.svc.Blobs = bs
	return logs.NewArchiver(logs.ArchiverConfig{Store: f.st, Blobs: bs})
}

func (f *fixture) render(t *testing.T, step int) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, f.svc.Stream(context.Background(), &b, f.job.ID, logs.StreamOpts{Step: step}))
	return b.String()
}

func (f *fixture) chunks(t *testing.T) []ci.LogChunk {
	t.Helper()
	c, err := f.st.ReadLogs(context.Background(), f.job.ID, -1, -1, store.LogPos{}, 0)
	require.NoError(t, err)
	return c
}

func TestArchiveRendersLikeChunks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps int
		write func(t *testing.T, f *fixture)
	}{
		{"one step", 1, func(t *testing.T, f *fixture) {
			f.append(t, 0, 0, "hello\n")
			f.append(t, 0, 1, "world\n")
		}},
		{"steps out of turn", 3, func(t *testing.T, f *fixture) {
			f.append(t, 0, 0, "zero a\n")
			f.append(t, 1, 0, "one a\n")
			f.append(t, 0, 1, "zero b (background)\n")
			f.append(t, 2, 0, "two\n")
		}},
		{"attempts", 2, func(t *testing.T, f *fixture) {
			f.append(t, 0, 0, "first try\n")
			f.retry(t, "bob")
			f.retry(t, "carol") // an attempt without output
			f.append(t, 0, 0, "third try\n")
			f.append(t, 1, 0, "step 1\n")
		}},
		{"empty and binary chunks", 1, func(t *testing.T, f *fixture) {
			f.append(t, 0, 0, "")
			f.append(t, 0, 1, "\x00\x01\xff no newline")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.steps)
			arch := f.withBlobs(t, nil)
			tc.write(t, f)
			f.complete(t)
			want := map[int]string{-1: f.render(t, -1)}
			for i := range tc.steps {
				want[i] = f.render(t, i)
			}
			require.NotEmpty(t, want[-1])

			require.NoError(t, arch.Archive(context.Background(), f.job.ID))
			require.Empty(t, f.chunks(t), "the chunks are deleted once archived")
			_, err := f.svc.Blobs.Stat(context.Background(), logs.ArchiveKey(f.job.ID))
			require.NoError(t, err)
			for step, w := range want {
				require.Equal(t, w, f.render(t, step), "step %d", step)
			}
			require.NoError(t, arch.Archive(context.Background(), f.job.ID), "archiving again is a no-op")
			require.Equal(t, want[-1], f.render(t, -1))
		})
	}
}

func TestArchiveOnlyCompletedJobs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	arch := f.withBlobs(t, nil)
	f.append(t, 0, 0, "running\n")
	require.ErrorIs(t, arch.Archive(context.Background(), f.job.ID), ci.ErrConflict)
	require.Len(t, f.chunks(t), 1)
}

// failingBlobs fails every Put after reading some of it.
type failingBlobs struct{ blob.Store }

func (b failingBlobs) Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error) {
	_, _ = io.CopyN(io.Discard, r, 10)
	return blob.Info{}, errors.New("disk full")
}

func TestArchiveFailureKeepsChunks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	fs, err := blob.OpenDir(t.TempDir())
	require.NoError(t, err)
	arch := f.withBlobs(t, failingBlobs{fs})
	f.append(t, 0, 0, "keep me\n")
	f.complete(t)
	want := f.render(t, -1)
	require.ErrorContains(t, arch.Archive(context.Background(), f.job.ID), "disk full")
	require.Len(t, f.chunks(t), 1, "chunks are deleted only after the archive is written")
	require.Equal(t, want, f.render(t, -1))
}

// triggerWriter runs fn once, at the first write.
type triggerWriter struct {
	bytes.Buffer
	once sync.Once
	fn   func()
}

func (w *triggerWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	w.once.Do(w.fn)
	return n, err
}

// TestArchiveDuringRead archives (and deletes the chunks of) a job while its
// log is read from the chunks: the reader finishes from the archive.
func TestArchiveDuringRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	arch := f.withBlobs(t, nil)
	f.append(t, 0, 0, "zero\n")
	f.append(t, 1, 0, "one\n")
	f.append(t, 2, 0, "two\n")
	f.complete(t)
	want := f.render(t, -1)
	w := &triggerWriter{}
	w.fn = func() { require.NoError(t, arch.Archive(context.Background(), f.job.ID)) }
	// The archive is not there at the first look (a racing archiver): it
	// is written, and the chunks deleted, after the stream's first write.
	bs := f.svc.Blobs
	f.svc.Blobs = &lateBlobs{Store: bs}
	require.NoError(t, f.svc.Stream(context.Background(), w, f.job.ID, logs.StreamOpts{Step: -1}))
	require.Empty(t, f.chunks(t))
	require.Equal(t, want, w.String())
}

// lateBlobs hides the archive from the first Get, as if it was written just
// after it.
type lateBlobs struct {
	blob.Store
	once sync.Once
}

func (b *lateBlobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	first := false
	b.once.Do(func() { first = true })
	if first {
		return nil, fmt.Errorf("get %s: %w", key, ci.ErrNotFound)
	}
	return b.Store.Get(ctx, key)
}

func TestArchiverSweepAndJobCompleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newFixture(t, 1)
	arch := a.withBlobs(t, nil)
	a.append(t, 0, 0, "swept\n")
	a.complete(t)
	want := a.render(t, -1)

	arch.Start(ctx)
	arch.Stop() // waits for the sweep
	require.Empty(t, a.chunks(t))
	require.Equal(t, want, a.render(t, -1))

	// JobCompleted archives in the background; Stop waits for it.
	b := newFixture(t, 1)
	archB := b.withBlobs(t, nil)
	b.append(t, 0, 0, "completed\n")
	b.complete(t)
	wantB := b.render(t, -1)
	archB.Start(ctx)
	archB.JobCompleted(b.job.ID)
	archB.Stop()
	require.Empty(t, b.chunks(t))
	require.Equal(t, wantB, b.render(t, -1))
	archB.JobCompleted(b.job.ID) // after Stop: ignored, does not block
}

// TestArchiveLargeLog archives a 64 MiB log and reads it back in bounded
// memory. Not parallel: it measures the bytes the read allocates.
func TestArchiveLargeLog(t *testing.T) {
	const chunkSize, chunks = 64 << 10, 1024 // 64 MiB
	f := newFixture(t, 1)
	arch := f.withBlobs(t, nil)
	want := sha256.New()
	_, _ = io.WriteString(want, "==> step 0: shell (s0)\n")
	line := []byte(strings.Repeat("x", 63) + "\n")
	buf := make([]byte, chunkSize)
	for i := range chunks {
		for off := 0; off < chunkSize; off += len(line) {
			copy(buf[off:], line)
			copy(buf[off:], fmt.Sprintf("%08d:%08d ", i, off)) // unique lines
		}
		want.Write(buf)
		require.NoError(t, f.svc.Append(context.Background(), ci.LogChunk{JobID: f.job.ID, Attempt: f.attempt, Step: 0, Seq: int64(i), Data: buf}))
	}
	f.complete(t)
	require.NoError(t, arch.Archive(context.Background(), f.job.ID))
	require.Empty(t, f.chunks(t))

	got := &countingHash{h: sha256.New()}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	require.NoError(t, f.svc.Stream(context.Background(), got, f.job.ID, logs.StreamOpts{Step: -1}))
	runtime.ReadMemStats(&after)
	require.Equal(t, int64(len("==> step 0: shell (s0)\n")+chunkSize*chunks), got.n)
	require.Equal(t, want.Sum(nil), got.h.Sum(nil), "the archived log reads back identical")
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("reading the 64 MiB archived log allocated %d bytes", allocated)
	require.Less(t, allocated, uint64(8<<20), "reading a 64 MiB archived log allocated %d bytes", allocated)
}

type countingHash struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
