package agentdist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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

// Fake workers: scripts that exec this test binary, which then acts as a
// worker (fakeWorker, dispatched from TestMain) instead of running tests. A
// fake worker has no children, so nothing outlives it. Each start appends a
// line to $STARTS; a running worker waits for SIGTERM, notes it in
// $STARTS.term and exits 0.
const (
	// runScript runs until SIGTERM.
	runScript = "#!/bin/sh\nFAKE_WORKER=run exec \"$TEST_BINARY\"\n"
	// crashScript exits 1 (after $LIVE) on its first $CRASHES starts (all
	// when unset), then runs.
	crashScript = "#!/bin/sh\nFAKE_WORKER=crash exec \"$TEST_BINARY\"\n"
	// exitScript exits with $CODE.
	exitScript = "#!/bin/sh\nFAKE_WORKER=exit exec \"$TEST_BINARY\"\n"
)

// fakeWorker is the worker behind the scripts above.
func fakeWorker(mode string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	starts := os.Getenv("STARTS")
	appendLine := func(path string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			_, err = f.WriteString("start\n")
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake worker:", err)
			os.Exit(99)
		}
	}
	appendLine(starts)
	data, _ := os.ReadFile(starts)
	n := strings.Count(string(data), "\n")
	switch mode {
	case "exit":
		code, _ := strconv.Atoi(os.Getenv("CODE"))
		os.Exit(code)
	case "crash":
		crashes, err := strconv.Atoi(os.Getenv("CRASHES"))
		if err != nil {
			crashes = math.MaxInt
		}
		if n <= crashes {
			live, _ := time.ParseDuration(os.Getenv("LIVE"))
			select {
			case <-time.After(live): // the worker's lifetime, then it crashes
				os.Exit(1)
			case <-term:
				appendLine(starts + ".term")
				os.Exit(0)
			}
		}
	}
	<-term
	appendLine(starts + ".term")
	os.Exit(0)
}

type supFixture struct {
	dir, exe, starts string
	logs             *syncBuffer
	execs            chan execCall
}

type execCall struct {
	path       string
	argv, env  []string
	exeContent string
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return exe
}

func newSupFixture(t *testing.T, script string) *supFixture {
	t.Helper()
	dir := t.TempDir()
	f := &supFixture{dir: dir, exe: filepath.Join(dir, "kkagent"), starts: filepath.Join(dir, "starts"),
		logs: &syncBuffer{}, execs: make(chan execCall, 10)}
	require.NoError(t, os.WriteFile(f.exe, []byte(script), 0o755))
	return f
}

func (f *supFixture) count(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	return strings.Count(string(data), "\n")
}

// supervisor returns a supervisor of f's script with fast restarts; its Exec
// records the call, runs onExec and fails (the test process is not replaced).
func (f *supFixture) supervisor(t *testing.T, env []string, onExec func()) *Supervisor {
	t.Helper()
	s, err := NewSupervisor(SupervisorConfig{
		Exe:        f.exe,
		WorkerArgs: []string{"worker", "--supervised"},
		Argv:       []string{"kkagent", "run", "-s", "kkd:6363"},
		Env:        append(os.Environ(), append([]string{"STARTS=" + f.starts, "TEST_BINARY=" + testBinary(t)}, env...)...),
		Logger:     slog.New(slog.NewTextHandler(f.logs, nil)),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
		Exec: func(path string, argv, env []string) error {
			content, _ := os.ReadFile(path)
			f.execs <- execCall{path: path, argv: argv, env: env, exeContent: string(content)}
			if onExec != nil {
				onExec()
			}
			return errors.New("exec disabled in this test")
		},
	})
	require.NoError(t, err)
	return s
}

func runSupervisor(t *testing.T, ctx context.Context, s *Supervisor) <-chan error {
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- s.Run(ctx)
	}()
	t.Cleanup(func() {
		select {
		case <-finished:
		case <-time.After(20 * time.Second):
			t.Error("supervisor did not return")
		}
	})
	return done
}

func TestSupervisorRestartsCrashedWorker(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t, crashScript)
	ctx, cancel := context.WithCancel(t.Context())
	done := runSupervisor(t, ctx, f.supervisor(t, []string{"CRASHES=2"}, nil))

	pollUntil(t, 10*time.Second, "the third worker to run", func() bool { return f.count(t, f.starts) == 3 })
	assert.Equal(t, 2, strings.Count(f.logs.String(), "worker crashed; restarting it"), f.logs.String())
	assert.Contains(t, f.logs.String(), "exited with status 1")

	// Stop: the supervisor forwards SIGTERM and returns once the worker exited.
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 1, f.count(t, f.starts+".term"), "the worker got SIGTERM")
	assert.Contains(t, f.logs.String(), "worker stopped; supervisor exiting")
	assert.Empty(t, f.execs)
}

func TestSupervisorWorkerExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		code string
		err  string
	}{
		{name: "stopped", code: "0"},
		{name: "setup error", code: "4", err: "restarting does not help"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newSupFixture(t, exitScript)
			err := f.supervisor(t, []string{"CODE=" + tc.code}, nil).Run(t.Context())
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
			assert.Equal(t, 1, f.count(t, f.starts), "not restarted")
		})
	}
}

func TestSupervisorExecsNewBinaryAfterUpgrade(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t, exitScript)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := runSupervisor(t, ctx, f.supervisor(t, []string{"CODE=3", EnvUpgraded + "=1"}, cancel))
	call := <-f.execs
	require.NoError(t, <-done)
	assert.Equal(t, f.exe, call.path)
	assert.Equal(t, []string{"kkagent", "run", "-s", "kkd:6363"}, call.argv, "same argv")
	n := 0
	for _, kv := range call.env {
		if strings.HasPrefix(kv, EnvUpgraded+"=") {
			n++
			assert.Equal(t, EnvUpgraded+"=1", kv)
		}
	}
	assert.Equal(t, 1, n, "the new supervisor knows it was upgraded")
	assert.Contains(t, call.env, "STARTS="+f.starts, "same environment")
}

func TestSupervisorRestoresOldWhenExecFails(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t, exitScript) // the "new" binary: exits ExitUpgraded
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, OldName), []byte(runScript), 0o755))
	badSum, err := fileSHA256(f.exe)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := runSupervisor(t, ctx, f.supervisor(t, []string{"CODE=3"}, nil))
	<-f.execs // fails: the supervisor restores kkagent.old and runs it

	pollUntil(t, 10*time.Second, "the restored worker to run", func() bool { return f.count(t, f.starts) == 2 })
	got, err := os.ReadFile(f.exe)
	require.NoError(t, err)
	assert.Equal(t, runScript, string(got))
	assert.NoFileExists(t, filepath.Join(f.dir, OldName))
	assert.True(t, rejected(f.dir, badSum))
	cancel()
	require.NoError(t, <-done)
}

func TestSupervisorRollsBackAfterQuickCrashes(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t, crashScript) // the upgraded binary always crashes
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, OldName), []byte(runScript), 0o755))
	badSum, err := fileSHA256(f.exe)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := runSupervisor(t, ctx, f.supervisor(t, []string{EnvUpgraded + "=1"}, cancel))

	call := <-f.execs
	require.NoError(t, <-done)
	assert.Equal(t, 2, f.count(t, f.starts), "rolled back at the second quick crash")
	assert.Equal(t, f.exe, call.path)
	assert.Equal(t, runScript, call.exeContent, "the supervisor re-executes itself on the restored binary")
	for _, kv := range call.env {
		assert.False(t, strings.HasPrefix(kv, EnvUpgraded+"="), "the restored binary is not on probation")
	}
	assert.NoFileExists(t, filepath.Join(f.dir, OldName))
	assert.True(t, rejected(f.dir, badSum), "the failing binary is not installed again")
	assert.Contains(t, f.logs.String(), "crashed twice within its probation; rolling back")
	assert.Contains(t, f.logs.String(), "rolled back to the previous kkagent")
}

func TestSupervisorNoRollbackAfterProbation(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t, crashScript)
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, OldName), []byte(runScript), 0o755))
	s := f.supervisor(t, []string{EnvUpgraded + "=1", "LIVE=300ms"}, nil)
	s.cfg.Probation = 100 * time.Millisecond // each worker lives 300 ms: past probation
	ctx, cancel := context.WithCancel(t.Context())
	done := runSupervisor(t, ctx, s)
	pollUntil(t, 20*time.Second, "three crashes", func() bool { return f.count(t, f.starts) >= 3 })
	cancel()
	require.NoError(t, <-done)
	assert.Empty(t, f.execs, "no rollback: the workers outlived the probation")
	assert.FileExists(t, filepath.Join(f.dir, OldName))
	got, err := os.ReadFile(f.exe)
	require.NoError(t, err)
	assert.Equal(t, crashScript, string(got))
}

func TestSupervisorNothingToRollBack(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t, crashScript)
	ctx, cancel := context.WithCancel(t.Context())
	done := runSupervisor(t, ctx, f.supervisor(t, []string{EnvUpgraded + "=1", "CRASHES=3"}, nil))
	pollUntil(t, 10*time.Second, "the worker to run after its crashes", func() bool { return f.count(t, f.starts) == 4 })
	cancel()
	require.NoError(t, <-done)
	assert.Contains(t, f.logs.String(), "no previous binary to restore")
	assert.Empty(t, f.execs)
}
