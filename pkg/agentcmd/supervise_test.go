package agentcmd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	kkagent   string // the built binary
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if kkagent != "" {
		os.RemoveAll(filepath.Dir(kkagent))
	}
	os.Exit(code)
}

// binary builds kkagent once: the supervisor re-executes its own binary, so
// `kkagent run` is tested as a real process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "agentcmd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		kkagent = filepath.Join(dir, "kkagent")
		cmd := exec.Command("go", "build", "-o", kkagent, "../../cmd/kkagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return kkagent
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type agentProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startKKAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("kkagent output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *agentProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("kkagent did not exit within %s", within)
	}
	return p.cmd.ProcessState.ExitCode()
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

var workerStarted = regexp.MustCompile(`msg="worker started".* pid=(\d+)`)

func workerPIDs(out string) []int {
	var pids []int
	for _, m := range workerStarted.FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	return pids
}

func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	st := string(data)
	i := strings.LastIndexByte(st, ')')
	return i < 0 || len(st) < i+3 || st[i+2] != 'Z'
}

// A second kkagent on a data dir in use exits at once with a clear error,
// also through the supervisor (which does not restart a worker that cannot
// run).
func TestSupervisedDataDirInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startKKAgent(t, "run", "-s", "127.0.0.1:1", "-d", dir)
	pollUntil(t, 20*time.Second, "the first agent to hold the data dir", func() bool {
		return strings.Contains(first.out.String(), `msg="kkagent starting"`)
	})
	pid := workerPIDs(first.out.String())[0]

	start := time.Now()
	second := startKKAgent(t, "run", "-s", "127.0.0.1:1", "-d", dir)
	assert.Equal(t, 1, second.wait(t, 20*time.Second))
	assert.Less(t, time.Since(start), 10*time.Second, "exits at once")
	out := second.out.String()
	assert.Contains(t, out, fmt.Sprintf("data dir %s is in use by another kkagent (pid %d)", dir, pid))
	assert.Contains(t, out, "restarting does not help")
	assert.NotContains(t, out, "worker crashed")
	assert.Len(t, workerPIDs(out), 1)
}

func TestSupervisorRestartsKilledWorker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startKKAgent(t, "run", "-s", "127.0.0.1:1", "-d", dir, "--name", "n1", "--group", "a", "--group", "b")
	pollUntil(t, 20*time.Second, "the worker to start the agent", func() bool {
		return strings.Contains(p.out.String(), `msg="kkagent starting"`)
	})
	worker := workerPIDs(p.out.String())[0]
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(worker) + "/cmdline")
	require.NoError(t, err)
	assert.Equal(t, []string{binary(t), "worker", "--supervised", "--data-dir=" + dir, "--group=a", "--group=b", "--name=n1", "--server=127.0.0.1:1"},
		strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), "the worker gets the flags set on the command line")

	require.NoError(t, syscall.Kill(worker, syscall.SIGKILL))
	pollUntil(t, 20*time.Second, "a new worker", func() bool { return len(workerPIDs(p.out.String())) == 2 })
	assert.Contains(t, p.out.String(), "the worker was killed by signal killed")
	next := workerPIDs(p.out.String())[1]
	assert.NotEqual(t, worker, next)
	// The new worker gets the data dir's lock the killed one held.
	pollUntil(t, 20*time.Second, "the new worker to start the agent", func() bool {
		return strings.Count(p.out.String(), `msg="kkagent starting"`) == 2
	})

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.wait(t, 30*time.Second))
	assert.False(t, processAlive(next))
	assert.Contains(t, p.out.String(), "worker stopped; supervisor exiting")
}

// Killing only the supervisor's pid kills the agent: the worker does not run
// on unsupervised with the data dir locked.
func TestWorkerDiesWithSupervisor(t *testing.T) {
	t.Parallel()
	p := startKKAgent(t, "run", "-s", "127.0.0.1:1", "-d", t.TempDir())
	pollUntil(t, 20*time.Second, "the worker to start the agent", func() bool {
		return strings.Contains(p.out.String(), `msg="kkagent starting"`)
	})
	worker := workerPIDs(p.out.String())[0]
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL))
	p.wait(t, 10*time.Second)
	pollUntil(t, 10*time.Second, "the worker to die with its supervisor", func() bool { return !processAlive(worker) })
}
