package local

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/executor"
)

func prepare(t *testing.T) (*Executor, executor.Env) {
	t.Helper()
	ex := New(t.TempDir(), slog.New(slog.DiscardHandler))
	env, err := ex.Prepare(t.Context(), executor.JobSpec{JobID: 7, Attempt: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.Close(context.Background()) })
	return ex, env
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// alive reports whether pid exists and is not a zombie (a dead process waiting
// to be reaped by whoever adopted it).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}

// waitGone polls until pid is gone or the deadline passes.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still alive after %s", pid, within)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// readPID reads the first line of r as a pid.
func readPID(t *testing.T, r *bufio.Reader) int {
	t.Helper()
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err, "line %q", line)
	return pid
}

func TestCapabilitiesAndName(t *testing.T) {
	t.Parallel()
	ex := New(t.TempDir(), nil)
	assert.Equal(t, "local", ex.Name())
	assert.Equal(t, executor.Capabilities{Name: "local", Available: true}, ex.Capabilities(t.Context()))
}

func TestPrepareWipesOldWorkspacesAndCloseRemoves(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := filepath.Join(dir, "jobs", "1", "sub")
	require.NoError(t, os.MkdirAll(old, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs", "stray"), []byte("x"), 0o644))

	ex := New(dir, nil)
	env, err := ex.Prepare(t.Context(), executor.JobSpec{JobID: 2})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "jobs", "2"), env.Workspace())
	entries, err := os.ReadDir(filepath.Join(dir, "jobs"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "2", entries[0].Name())
	ws, err := os.ReadDir(env.Workspace())
	require.NoError(t, err)
	assert.Empty(t, ws)

	require.NoError(t, env.Close(t.Context()))
	assert.NoDirExists(t, env.Workspace())
	require.NoError(t, env.Close(t.Context()), "close is idempotent")
	_, err = env.Run(t.Context(), executor.Command{Argv: []string{"true"}})
	assert.ErrorContains(t, err, "closed")
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	for _, tc := range []struct {
		name string
		cmd  string
		want int
	}{
		{"ok", "exit 0", 0},
		{"one", "exit 1", 1},
		{"high", "exit 42", 42},
		{"not found", "no-such-command-kk", 127},
		{"killed by signal", "kill -9 $$", -1},
	} {
		res, err := env.Run(t.Context(), executor.Command{Argv: []string{"sh", "-c", tc.cmd}})
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, res.ExitCode, tc.name)
		assert.False(t, res.Cancelled || res.TimedOut, tc.name)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	_, err := env.Run(t.Context(), executor.Command{Argv: []string{"no-such-binary-kk"}})
	assert.ErrorContains(t, err, "not found")
	_, err = env.Run(t.Context(), executor.Command{Argv: []string{"true"}, Dir: "missing"})
	assert.ErrorContains(t, err, "working directory")
	_, err = env.Run(t.Context(), executor.Command{})
	assert.Error(t, err)
}

func TestEnvDirAndMergedOutput(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	require.NoError(t, os.Mkdir(filepath.Join(env.Workspace(), "sub"), 0o755))
	var out syncBuffer
	res, err := env.Run(t.Context(), executor.Command{
		Argv:   []string{"sh", "-c", `echo "$FOO $HOME_OVERRIDE"; pwd; echo err >&2; echo last`},
		Env:    []string{"FOO=bar", "HOME_OVERRIDE=x", "FOO=baz"},
		Dir:    "sub",
		Output: &out,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	want := "baz x\n" + filepath.Join(env.Workspace(), "sub") + "\nerr\nlast\n"
	assert.Equal(t, want, out.String())

	out = syncBuffer{}
	_, err = env.Run(t.Context(), executor.Command{Argv: []string{"pwd"}, Output: &out})
	require.NoError(t, err)
	assert.Equal(t, env.Workspace()+"\n", out.String(), "default dir is the workspace")
}

func TestOutputStreamsWhileRunning(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	pr, pw := io.Pipe()
	defer pr.Close()
	done := make(chan executor.Result, 1)
	// The fifo exists before the command starts, so its read blocks on it.
	require.NoError(t, syscall.Mkfifo(filepath.Join(env.Workspace(), "fifo"), 0o600))
	go func() {
		// The command blocks on read until the test has seen its first line.
		res, _ := env.Run(t.Context(), executor.Command{
			Argv:   []string{"sh", "-c", `echo first; read x < "$FIFO"; echo second`},
			Env:    []string{"FIFO=" + filepath.Join(env.Workspace(), "fifo")},
			Output: pw,
		})
		pw.Close()
		done <- res
	}()
	r := bufio.NewReader(pr)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "first\n", line)
	select {
	case <-done:
		t.Fatal("command finished before it was released")
	default:
	}
	f, err := os.OpenFile(filepath.Join(env.Workspace(), "fifo"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, _ = f.WriteString("go\n")
	f.Close()
	rest, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "second\n", string(rest))
	assert.Equal(t, 0, (<-done).ExitCode)
}

// runGroup starts `sh -c 'sleep 100 & echo $!; sleep 100'` and returns the
// grandchild's pid and the channel with Run's result.
func runGroup(t *testing.T, env executor.Env, ctx context.Context, cmd executor.Command) (int, <-chan executor.Result) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	cmd.Output = pw
	done := make(chan executor.Result, 1)
	go func() {
		res, err := env.Run(ctx, cmd)
		assert.NoError(t, err)
		pw.Close()
		done <- res
	}()
	pid := readPID(t, bufio.NewReader(pr))
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return pid, done
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	start := time.Now()
	pid, done := runGroup(t, env, t.Context(), executor.Command{
		Argv:    []string{"sh", "-c", "sleep 100 & echo $!; sleep 100"},
		Timeout: 300 * time.Millisecond,
		Grace:   time.Second,
	})
	res := <-done
	assert.True(t, res.TimedOut)
	assert.False(t, res.Cancelled)
	assert.Less(t, time.Since(start), 5*time.Second)
	waitGone(t, pid, 2*time.Second)
}

func TestCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pid, done := runGroup(t, env, ctx, executor.Command{
		Argv:  []string{"sh", "-c", "sleep 100 & echo $!; sleep 100"},
		Grace: time.Second,
	})
	require.True(t, alive(pid))
	start := time.Now()
	cancel()
	res := <-done
	assert.True(t, res.Cancelled)
	assert.Less(t, time.Since(start), 3*time.Second)
	waitGone(t, pid, 2*time.Second)
}

func TestCloseAbortsRunningCommand(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	pid, done := runGroup(t, env, t.Context(), executor.Command{
		Argv:  []string{"sh", "-c", "sleep 100 & echo $!; sleep 100"},
		Grace: time.Second,
	})
	require.NoError(t, env.Close(t.Context()))
	res := <-done
	assert.True(t, res.Cancelled)
	waitGone(t, pid, 2*time.Second)
	assert.NoDirExists(t, env.Workspace())
}

func TestSigtermIgnoredGetsSigkillAfterGrace(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The shell ignores TERM and so does its background child; only KILL ends them.
	pid, done := runGroup(t, env, ctx, executor.Command{
		Argv:  []string{"sh", "-c", `trap "" TERM; sleep 100 & echo $!; while :; do sleep 0.05; done`},
		Grace: 500 * time.Millisecond,
	})
	start := time.Now()
	cancel()
	res := <-done
	elapsed := time.Since(start)
	assert.True(t, res.Cancelled)
	assert.Equal(t, -1, res.ExitCode, "killed by a signal")
	assert.GreaterOrEqual(t, elapsed, 500*time.Millisecond, "SIGKILL comes only after the grace period")
	assert.Less(t, elapsed, 3*time.Second)
	waitGone(t, pid, 2*time.Second)
}

func TestBackgroundChildKilledAfterNormalExit(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	var out syncBuffer
	res, err := env.Run(t.Context(), executor.Command{
		Argv:   []string{"sh", "-c", "sleep 100 > /dev/null 2>&1 & echo $!"},
		Output: &out,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	waitGone(t, pid, 2*time.Second)
}

func TestRunReturnsWhenEscapedProcessHoldsOutput(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	var out syncBuffer
	start := time.Now()
	// setsid puts sleep in its own session, out of reach of the group kill,
	// still holding the output pipe.
	res, err := env.Run(t.Context(), executor.Command{
		Argv:   []string{"sh", "-c", "setsid sleep 30 & echo $!"},
		Output: &out,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Less(t, time.Since(start), outputDrainDelay+2*time.Second)
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func TestUser(t *testing.T) {
	t.Parallel()
	_, env := prepare(t)
	cur, err := user.Current()
	require.NoError(t, err)

	var out syncBuffer
	res, err := env.Run(t.Context(), executor.Command{Argv: []string{"id", "-u"}, User: cur.Username, Output: &out})
	require.NoError(t, err, "running as oneself needs no privileges")
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, cur.Uid+"\n", out.String())

	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("this test needs the user nobody: %v", err)
	}
	out = syncBuffer{}
	res, err = env.Run(t.Context(), executor.Command{Argv: []string{"sh", "-c", "id -u; echo $HOME"}, Dir: "/", User: "nobody", Output: &out})
	if os.Geteuid() != 0 {
		assert.ErrorContains(t, err, "only when it runs as root")
		return
	}
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, nobody.Uid+"\n"+nobody.HomeDir+"\n", out.String())

	_, err = env.Run(t.Context(), executor.Command{Argv: []string{"true"}, User: "no-such-user-kk"})
	assert.ErrorContains(t, err, "no-such-user-kk")
}
