package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// readSpool parses the records on disk in dir, in order; a record still
// being written at the end is left out.
func readSpool(t *testing.T, dir string) (recs []record, bytes int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	sort.Strings(segs)
	for _, seg := range segs {
		data, err := os.ReadFile(seg)
		if errors.Is(err, os.ErrNotExist) {
			continue // delivered and deleted meanwhile
		}
		require.NoError(t, err)
		bytes += int64(len(data))
		for len(data) >= recordHeaderSize {
			n := int(binary.BigEndian.Uint32(data[13:]))
			if len(data) < recordHeaderSize+n {
				break
			}
			recs = append(recs, record{
				kind: recordKind(data[0]),
				step: int(binary.BigEndian.Uint32(data[1:])),
				seq:  int64(binary.BigEndian.Uint64(data[5:])),
				data: data[recordHeaderSize : recordHeaderSize+n],
			})
			data = data[recordHeaderSize+n:]
		}
	}
	return recs, bytes
}

// pollUntil polls cond until it holds or the deadline passes.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

// gate is a FIFO a step blocks on (`read x < gate`) until the test opens it.
func gate(t *testing.T) (path string, open func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "gate")
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	return path, func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString("go\n")
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
}

// expectedEvents is the exact sequence a fake server must see for a job
// whose steps ended with statuses and produced nLogs chunks each: every
// record once, strictly in order.
func expectedEvents(statuses []string, nLogs []int, result ci.JobResult) []string {
	ev := []string{"start"}
	for i, st := range statuses {
		ev = append(ev, fmt.Sprintf("step %d running", i))
		for k := range nLogs[i] {
			ev = append(ev, fmt.Sprintf("log %d %d", i, k))
		}
		ev = append(ev, fmt.Sprintf("step %d %s", i, st))
	}
	return append(ev, "complete "+string(result))
}

func TestOutageSpoolsAndDeliversInOrder(t *testing.T) {
	t.Parallel()
	for _, mode := range []outage{unavailable, dropped} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			s := newFakeServer(t)
			var dataDir string
			builtinAgent(t, s, func(c *Config) { dataDir = c.DataDir })
			fifo, openGate := gate(t)
			s.addJob(assignment(1,
				shell("echo before; read x < "+fifo+"; i=1; while [ $i -le 2000 ]; do echo line $i; i=$((i+1)); done"),
				shell("echo second; exit 3"),
				shell("echo always", "when", "always"),
			))
			s.await("the first chunk", 10*time.Second, func(s *fakeServer) bool { return s.job(1).logText(0) == "before\n" })

			s.setDown(mode)
			s.mu.Lock()
			seen := len(s.events)
			s.mu.Unlock()
			openGate()
			// The job goes on and ends while kkd is down: everything, the
			// completion last, is in the spool.
			spool := filepath.Join(dataDir, spoolDir, "1-1")
			pollUntil(t, 20*time.Second, "the completion in the spool", func() bool {
				recs, _ := readSpool(t, spool)
				return len(recs) > 0 && recs[len(recs)-1].kind == recComplete
			})
			s.await("refused requests", 10*time.Second, func(s *fakeServer) bool { return s.downHits > 0 })
			s.mu.Lock()
			assert.Len(t, s.events, seen, "nothing is accepted while kkd is down")
			s.mu.Unlock()

			s.setDown(up)
			c := s.completed(1, 30*time.Second)
			assert.Equal(t, ci.JobFailed, c.Result)
			pollUntil(t, 10*time.Second, "the spool to be deleted", func() bool {
				_, err := os.Stat(spool)
				return errors.Is(err, os.ErrNotExist)
			})

			s.mu.Lock()
			defer s.mu.Unlock()
			j := s.job(1)
			var want strings.Builder
			want.WriteString("before\n")
			for i := 1; i <= 2000; i++ {
				fmt.Fprintf(&want, "line %d\n", i)
			}
			assert.Equal(t, want.String(), j.logText(0))
			assert.Equal(t, "second\n", j.logText(1))
			assert.Equal(t, "always\n", j.logText(2))
			nLogs := []int{len(j.logs[0]), len(j.logs[1]), len(j.logs[2])}
			assert.Equal(t, expectedEvents([]string{"ok", "failed", "ok"}, nLogs, ci.JobFailed), s.events,
				"every record exactly once, in order, the completion last")
			assert.Zero(t, s.dupLogs, "no acknowledged chunk is sent again")
		})
	}
}

func TestSpoolKeepsMemoryBounded(t *testing.T) {
	t.Parallel()
	const segSize = 256 << 10
	s := newFakeServer(t)
	var dataDir string
	builtinAgent(t, s, func(c *Config) {
		dataDir = c.DataDir
		c.SpoolSegmentSize = segSize
	})
	fifo, openGate := gate(t)
	s.addJob(assignment(1, shell("read x < "+fifo+"; seq 1 1000000")))
	s.await("the step running", 10*time.Second, func(s *fakeServer) bool { return s.job(1).lastStep(0).Status == ci.StepRunning })

	s.setDown(unavailable)
	openGate()
	spool := filepath.Join(dataDir, spoolDir, "1-1")
	var recs []record
	var size int64
	pollUntil(t, 60*time.Second, "the completion in the spool", func() bool {
		recs, size = readSpool(t, spool)
		return len(recs) > 0 && recs[len(recs)-1].kind == recComplete
	})
	var want strings.Builder
	for i := 1; i <= 1000000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	// The whole output is on disk, in segments of bounded size: the agent
	// holds at most a chunk of it in memory.
	assert.GreaterOrEqual(t, size, int64(want.Len()))
	segs, err := filepath.Glob(filepath.Join(spool, "*.seg"))
	require.NoError(t, err)
	assert.Greater(t, len(segs), want.Len()/segSize-1)
	for _, seg := range segs {
		fi, err := os.Stat(seg)
		require.NoError(t, err)
		assert.LessOrEqual(t, fi.Size(), int64(segSize+DefaultLogChunkSize+recordHeaderSize), seg)
	}

	s.setDown(up)
	c := s.completed(1, 60*time.Second)
	assert.Equal(t, ci.JobOK, c.Result)
	s.mu.Lock()
	got := s.job(1).logText(0)
	dups := s.dupLogs
	s.mu.Unlock()
	assert.Equal(t, want.Len(), len(got))
	assert.True(t, want.String() == got, "the log arrives complete and in order")
	assert.Zero(t, dups)
	pollUntil(t, 10*time.Second, "the spool to be deleted", func() bool {
		_, err := os.Stat(spool)
		return errors.Is(err, os.ErrNotExist)
	})
}

func TestStaleAfterOutageDropsSpool(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	var dataDir string
	builtinAgent(t, s, func(c *Config) { dataDir = c.DataDir })
	fifo, openGate := gate(t)
	s.addJob(assignment(1, shell("echo $$; read x < "+fifo+"; echo after-outage; exec sleep 1000"), shell("true", "when", "always")))
	pid := pidFromLog(t, s, 1, 0)

	s.setDown(dropped)
	openGate()
	spool := filepath.Join(dataDir, spoolDir, "1-1")
	pollUntil(t, 10*time.Second, "the late output in the spool", func() bool {
		recs, _ := readSpool(t, spool)
		for _, r := range recs {
			if r.kind == recLog && strings.Contains(string(r.data), "after-outage") {
				return true
			}
		}
		return false
	})
	// Meanwhile kkd gave the job to another attempt.
	s.update(func(s *fakeServer) { s.job(1).attempt = 2 })
	s.setDown(up)

	pollUntil(t, 15*time.Second, "the stale job's process to be killed and its spool deleted", func() bool {
		_, err := os.Stat(spool)
		return !processAlive(pid) && errors.Is(err, os.ErrNotExist)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(1)
	assert.Nil(t, j.complete, "a stale attempt reports nothing more")
	assert.NotContains(t, j.logText(0), "after-outage")
	assert.Empty(t, j.steps[1])
}

func TestLeftoverSpoolsDeleted(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	s.update(func(s *fakeServer) { s.credential, s.authorized = "builtin-cred", true })
	cfg := testConfig(t, s)
	cfg.Credential = "builtin-cred"
	left := filepath.Join(cfg.DataDir, spoolDir, "7-2")
	require.NoError(t, os.MkdirAll(left, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(left, "000000.seg"), []byte("left by a crashed kkagent"), 0o600))
	a, err := New(cfg)
	require.NoError(t, err)
	runAgent(t, a)
	s.await("a work poll", 10*time.Second, func(s *fakeServer) bool { return len(s.workPolls) > 0 })
	assert.NoDirExists(t, left)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Empty(t, s.events, "nothing of a stale attempt is delivered")
}

func TestSpoolSegmentsAndDiskFailure(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "9-1")
	sp, err := openSpool(dir, 100)
	require.NoError(t, err)
	ctx := t.Context()

	for i := range 6 {
		require.NoError(t, sp.append(record{kind: recLog, step: 0, seq: int64(i), data: []byte(strings.Repeat("x", 40))}))
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	assert.Len(t, segs, 3, "two 57-byte records fill a 100-byte segment")
	for i := range 3 {
		r, err := sp.next(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(i), r.seq)
		again, err := sp.next(ctx)
		require.NoError(t, err)
		assert.Equal(t, r, again, "next returns the same record until ack")
		sp.ack()
	}
	_, err = sp.next(ctx) // steps over the delivered segment 0
	require.NoError(t, err)
	assert.NoFileExists(t, segmentPath(dir, 0), "a delivered segment is deleted")

	// The disk fails: log chunks are refused, control records wait in
	// memory behind the records on disk.
	sp.wmu.Lock()
	require.NoError(t, sp.w.Close())
	sp.wmu.Unlock()
	assert.Error(t, sp.append(record{kind: recLog, step: 0, seq: 6, data: []byte("lost")}))
	require.NoError(t, sp.append(record{kind: recStep, step: 0, data: []byte(`{"status":"ok"}`)}))
	assert.Equal(t, 1, sp.memLen())
	// The disk is back, but the memory backlog comes first.
	sp.wmu.Lock()
	sp.w, err = os.OpenFile(segmentPath(dir, sp.wseg), os.O_WRONLY|os.O_APPEND, 0)
	sp.wmu.Unlock()
	require.NoError(t, err)
	err = sp.append(record{kind: recLog, step: 0, seq: 6, data: []byte("still lost")})
	assert.ErrorContains(t, err, "records wait in memory since a write failed")
	require.NoError(t, sp.append(record{kind: recStep, step: 1, data: []byte(`{"status":"ok"}`)}))

	var kinds []recordKind
	var seqs []int64
	for len(kinds) < 6 {
		r, err := sp.next(ctx)
		require.NoError(t, err)
		kinds = append(kinds, r.kind)
		seqs = append(seqs, r.seq)
		sp.ack()
		if r.kind == recStep && r.step == 1 {
			// The memory backlog is delivered: the disk is used again.
			require.Zero(t, sp.memLen())
			require.NoError(t, sp.append(record{kind: recLog, step: 1, seq: 0, data: []byte("back")}))
		}
	}
	// Everything was delivered: an open spool waits for more, a closed one
	// says it is done.
	waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = sp.next(waitCtx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	sp.close()
	_, err = sp.next(ctx)
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, []recordKind{recLog, recLog, recLog, recStep, recStep, recLog}, kinds)
	assert.Equal(t, []int64{3, 4, 5, 0, 0, 0}, seqs)
	require.NoError(t, sp.remove())
	assert.NoDirExists(t, dir)
}

func TestStepWriterNotesLostOutput(t *testing.T) {
	t.Parallel()
	sp, err := openSpool(filepath.Join(t.TempDir(), "1-1"), 0)
	require.NoError(t, err)
	ob := newOutbox(sp, nil, nil, nil, slog.New(slog.DiscardHandler), backoff{}, 64, time.Hour, redaction{})
	w := ob.writer(0)

	sp.wmu.Lock()
	good := sp.w
	broken, err := os.Open(segmentPath(sp.dir, 0)) // read-only: writes fail
	require.NoError(t, err)
	sp.w = broken
	sp.wmu.Unlock()
	_, _ = w.Write([]byte("lost output\n"))
	w.flush()
	sp.wmu.Lock()
	sp.w = good
	sp.wmu.Unlock()
	_, _ = w.Write([]byte("kept\n"))
	w.flush()
	sp.close()

	var got []string
	var seqs []int64
	for {
		r, err := sp.next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got = append(got, string(r.data))
		seqs = append(seqs, r.seq)
		sp.ack()
	}
	require.Len(t, got, 2)
	assert.Contains(t, got[0], "[kkagent: 12 bytes of this step's output were lost")
	assert.Equal(t, "kept\n", got[1])
	assert.Equal(t, []int64{0, 1}, seqs, "a chunk that was not spooled uses no seq")
	_ = broken.Close()
	require.NoError(t, sp.remove())
}

// The outbox delivers a job's records in order even when kkd refuses some
// for a while, and completion comes last (covered end to end above; this
// checks the wire encoding of spooled control records).
func TestSpooledControlRecordsEncoding(t *testing.T) {
	t.Parallel()
	sp, err := openSpool(filepath.Join(t.TempDir(), "1-1"), 0)
	require.NoError(t, err)
	ob := newOutbox(sp, nil, nil, nil, slog.New(slog.DiscardHandler), backoff{}, 64, time.Hour, redaction{})
	ok := 0
	ob.appendStep(2, api.StepResult{Attempt: 3, Status: ci.StepFailed, ExitCode: &ok})
	ob.appendComplete(api.CompleteJob{Attempt: 3, Result: ci.JobFailed, Message: "a step failed"})
	recs, _ := readSpool(t, sp.dir)
	require.Len(t, recs, 2)
	assert.Equal(t, recStep, recs[0].kind)
	assert.Equal(t, 2, recs[0].step)
	assert.JSONEq(t, `{"attempt":3,"status":"failed","exit_code":0}`, string(recs[0].data))
	assert.JSONEq(t, `{"attempt":3,"result":"failed","message":"a step failed"}`, string(recs[1].data))
	require.NoError(t, sp.remove())
}
