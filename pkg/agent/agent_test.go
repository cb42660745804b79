package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// testLogger writes the agent's log to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testConfig is a config with short waits for s.
func testConfig(t *testing.T, s *fakeServer) Config {
	return Config{
		ServerURL:     s.srv.URL,
		DataDir:       t.TempDir(),
		Name:          "test-agent",
		Logger:        testLogger(t),
		WorkWait:      2 * time.Second,
		HeartbeatWait: 2 * time.Second,
		RegisterWait:  2 * time.Second,
		MinBackoff:    10 * time.Millisecond,
		MaxBackoff:    100 * time.Millisecond,
	}
}

// builtinAgent starts an agent holding a pre-issued credential, as kkd's
// built-in agent does.
func builtinAgent(t *testing.T, s *fakeServer, mod func(*Config)) *Agent {
	t.Helper()
	s.update(func(s *fakeServer) { s.credential, s.authorized = "builtin-cred", true })
	cfg := testConfig(t, s)
	cfg.Credential = "builtin-cred"
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	require.NoError(t, err)
	runAgent(t, a)
	return a
}

func shell(cmd string, extra ...any) api.AssignedStep {
	f := map[string]any{"tool": "shell", "cmd": cmd}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i].(string)] = extra[i+1]
	}
	return api.AssignedStep{Tool: "shell", Fields: f}
}

func assignment(id int64, steps ...api.AssignedStep) api.Assignment {
	for i := range steps {
		steps[i].Index = i
	}
	return api.Assignment{
		JobID: id, Attempt: 1, Name: "job", Project: "p", Branch: "b", Stage: "s",
		FlowKind: ci.FlowCI, Executor: ci.ExecutorLocal, System: "any",
		Timeout: 120, LeaseSeconds: 30, Env: map[string]string{"KK_JOB": "yes"}, Steps: steps,
	}
}

func TestRegistrationWaitsForAuthorization(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	cfg := testConfig(t, s)
	cfg.Groups = []string{"linux"}
	a, err := New(cfg)
	require.NoError(t, err)
	stop := runAgent(t, a)

	s.await("two register calls", 10*time.Second, func(s *fakeServer) bool { return len(s.registrations) >= 2 })
	s.mu.Lock()
	reg := s.registrations[0]
	polls := len(s.workPolls)
	s.mu.Unlock()
	assert.Equal(t, "test-agent", reg.Name)
	assert.Equal(t, []string{"linux"}, reg.Groups)
	assert.Len(t, reg.EnrollSecret, 64)
	assert.NotEmpty(t, reg.HostInfo.OS)
	assert.Zero(t, polls, "no work before authorization")
	assert.NoFileExists(t, filepath.Join(cfg.DataDir, credentialFile))

	s.authorize()
	s.await("a work poll with the credential", 10*time.Second, func(s *fakeServer) bool {
		return len(s.workPolls) > 0 && s.workPolls[0] == "Bearer cred-1"
	})
	cred, err := os.ReadFile(filepath.Join(cfg.DataDir, credentialFile))
	require.NoError(t, err)
	assert.Equal(t, "cred-1\n", string(cred))
	for _, f := range []string{credentialFile, identityFile} {
		fi, err := os.Stat(filepath.Join(cfg.DataDir, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	var id identity
	data, err := os.ReadFile(filepath.Join(cfg.DataDir, identityFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &id))
	assert.Equal(t, reg.UUID, id.UUID)
	assert.Equal(t, reg.EnrollSecret, id.EnrollSecret)
	require.NoError(t, stop())

	// A restart keeps the identity and the credential: no new registration.
	s.mu.Lock()
	regs := len(s.registrations)
	s.mu.Unlock()
	a2, err := New(cfg)
	require.NoError(t, err)
	stop2 := runAgent(t, a2)
	s.await("a work poll after restart", 10*time.Second, func(s *fakeServer) bool { return len(s.workPolls) >= 2 })
	require.NoError(t, stop2())
	s.mu.Lock()
	assert.Equal(t, regs, len(s.registrations))
	s.mu.Unlock()
}

func TestRegistrationKey(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	s.update(func(s *fakeServer) { s.regKey = "sesame" })
	cfg := testConfig(t, s)
	cfg.RegistrationKey = "sesame"
	a, err := New(cfg)
	require.NoError(t, err)
	runAgent(t, a)
	s.await("a work poll", 10*time.Second, func(s *fakeServer) bool { return len(s.workPolls) > 0 })
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, "sesame", s.registrations[0].RegistrationKey)
	assert.Equal(t, 1, s.hostInfos, "host info goes with the first work poll")
}

func TestRevokedCredentialRegistersAgain(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	cfg := testConfig(t, s)
	a, err := New(cfg)
	require.NoError(t, err)
	s.authorize()
	runAgent(t, a)
	s.await("a work poll", 10*time.Second, func(s *fakeServer) bool { return len(s.workPolls) > 0 })
	s.revoke()
	s.await("a work poll with a new credential", 10*time.Second, func(s *fakeServer) bool {
		return s.workPolls[len(s.workPolls)-1] == "Bearer cred-2"
	})
	cred, err := os.ReadFile(filepath.Join(cfg.DataDir, credentialFile))
	require.NoError(t, err)
	assert.Equal(t, "cred-2\n", string(cred))
}

func TestDataDirLock(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	cfg := testConfig(t, s)
	a, err := New(cfg)
	require.NoError(t, err)
	stop := runAgent(t, a)
	s.await("a register call", 10*time.Second, func(s *fakeServer) bool { return len(s.registrations) > 0 })

	b, err := New(cfg)
	require.NoError(t, err)
	err = b.Run(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("data dir %s is in use by another kkagent (pid %d)", cfg.DataDir, os.Getpid()))

	require.NoError(t, stop())
	// Once released, the data dir can be used again.
	c, err := New(cfg)
	require.NoError(t, err)
	stopC := runAgent(t, c)
	s.await("a third register call", 10*time.Second, func(s *fakeServer) bool { return len(s.registrations) > 1 })
	require.NoError(t, stopC())
}

func TestJobStepStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		steps  []api.AssignedStep
		want   []string
		result ci.JobResult
	}{
		{
			name:   "all ok",
			steps:  []api.AssignedStep{shell("echo $KK_JOB $STEP_VAR", "env", map[string]any{"STEP_VAR": 5}), shell("true")},
			want:   []string{"ok", "ok"},
			result: ci.JobOK,
		},
		{
			name:   "failure then always",
			steps:  []api.AssignedStep{shell("true"), shell("exit 3"), shell("true", "when", "always")},
			want:   []string{"ok", "failed", "ok"},
			result: ci.JobFailed,
		},
		{
			name:   "was_no_error skipped after failure",
			steps:  []api.AssignedStep{shell("exit 1"), shell("true", "when", "was_no_error"), shell("true"), shell("true", "when", "was_any_error")},
			want:   []string{"failed", "skipped", "skipped", "ok"},
			result: ci.JobFailed,
		},
		{
			name:   "tool not available",
			steps:  []api.AssignedStep{{Tool: "local_tool", Fields: map[string]any{"tool": "local_tool", "tool_location": "/opt/tools/x"}}},
			want:   []string{"error"},
			result: ci.JobFailed,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newFakeServer(t)
			builtinAgent(t, s, nil)
			s.addJob(assignment(1, tc.steps...))
			c := s.completed(1, 20*time.Second)
			assert.Equal(t, tc.result, c.Result, c.Message)
			s.mu.Lock()
			defer s.mu.Unlock()
			j := s.job(1)
			assert.True(t, j.started)
			assert.Equal(t, tc.want, j.stepStatuses(len(tc.steps)))
			for i, want := range tc.want {
				rs := j.steps[i]
				if want == "skipped" {
					assert.Len(t, rs, 1, "a skipped step is reported once")
					continue
				}
				require.Len(t, rs, 2, "step %d: running, then final", i)
				assert.Equal(t, ci.StepRunning, rs[0].Status)
				assert.NotNil(t, rs[1].Started)
				assert.NotNil(t, rs[1].Finished)
			}
			switch tc.name {
			case "all ok":
				assert.Equal(t, "yes 5\n", j.logText(0))
				assert.Equal(t, 0, *j.lastStep(0).ExitCode)
			case "failure then always":
				assert.Equal(t, 3, *j.lastStep(1).ExitCode)
				assert.Equal(t, "retcode", j.lastStep(1).Reason)
			case "tool not available":
				assert.Equal(t, "tool local_tool is not available in this agent version", j.lastStep(0).Message)
				assert.Contains(t, j.logText(0), "tool local_tool is not available")
			}
		})
	}
}

func TestAttempts(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	// Succeeds on the third attempt: the counter lives in the workspace.
	flaky := `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "try $n"; [ $n -ge 3 ]`
	s.addJob(assignment(1,
		shell(flaky, "attempts", 3, "sleep_time_after_attempt", 0.05),
		shell("exit 2", "attempts", "2", "when", "always"),
	))
	c := s.completed(1, 20*time.Second)
	assert.Equal(t, ci.JobFailed, c.Result)
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(1)
	assert.Equal(t, []string{"ok", "failed"}, j.stepStatuses(2))
	log0 := j.logText(0)
	assert.Contains(t, log0, "try 1\n")
	assert.Contains(t, log0, "attempt 1 of 3 failed")
	assert.Contains(t, log0, "try 3\n")
	assert.Equal(t, 2, strings.Count(j.logText(1), "attempt"), "two attempts, one retry message: %q", j.logText(1))
}

func TestLogChunksInOrderDespiteFailures(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	s.update(func(s *fakeServer) { s.failLogEvery = 3 })
	builtinAgent(t, s, func(c *Config) { c.LogChunkSize = 100 })
	var want0, want1 strings.Builder
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&want0, "line %d\n", i)
	}
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&want1, "second %d\n", i)
	}
	s.addJob(assignment(1,
		shell("i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done"),
		// Slow output: several chunks cut by the flush delay, not by size.
		shell("i=1; while [ $i -le 20 ]; do echo second $i; [ $((i % 5)) -eq 0 ] && sleep 0.15; i=$((i+1)); done"),
	))
	c := s.completed(1, 30*time.Second)
	assert.Equal(t, ci.JobOK, c.Result)
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(1)
	assert.Equal(t, want0.String(), j.logText(0))
	assert.Equal(t, want1.String(), j.logText(1))
	assert.Greater(t, len(j.logs[0]), 20, "100-byte chunks")
	assert.GreaterOrEqual(t, len(j.logs[1]), 4, "flushed by the delay while the step ran")
	assert.GreaterOrEqual(t, s.logPosts, 30)

	// The fake stores a chunk only when its seq is the next one, so ordered
	// storage proves consecutive seqs; the events show the global order and
	// that the job was completed only after the last chunk.
	var logEvents []string
	for _, e := range s.events {
		if strings.HasPrefix(e, "log ") {
			logEvents = append(logEvents, e)
		}
	}
	next := map[string]int{}
	for _, e := range logEvents {
		f := strings.Fields(e)
		seq, _ := strconv.Atoi(f[2])
		assert.Equal(t, next[f[1]], seq, "step %s", f[1])
		next[f[1]]++
	}
	assert.Equal(t, "complete ok", s.events[len(s.events)-1])
	lastStep0 := -1
	for i, e := range s.events {
		if strings.HasPrefix(e, "log 0 ") {
			lastStep0 = i
		}
		if strings.HasPrefix(e, "log 1 ") {
			assert.Greater(t, i, lastStep0, "step 1's chunks come after step 0's")
		}
	}
}

// pidFromLog waits until the step's log has a first line and returns it as a pid.
func pidFromLog(t *testing.T, s *fakeServer, job int64, step int) int {
	t.Helper()
	var pid int
	s.await("the step's pid in its log", 10*time.Second, func(s *fakeServer) bool {
		j := s.job(job)
		line, _, ok := strings.Cut(j.logText(step), "\n")
		if !ok {
			return false
		}
		p, err := strconv.Atoi(line)
		pid = p
		return err == nil
	})
	return pid
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	st := string(data)
	i := strings.LastIndexByte(st, ')')
	return i < 0 || len(st) < i+3 || st[i+2] != 'Z'
}

func TestCancelViaHeartbeat(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	s.addJob(assignment(1, shell("echo $$; exec sleep 1000"), shell("true", "when", "always")))
	pid := pidFromLog(t, s, 1, 0)
	require.True(t, processAlive(pid))
	s.await("a held heartbeat", 10*time.Second, func(s *fakeServer) bool { return s.job(1).heartbeats > 0 })

	cancelled := time.Now()
	s.update(func(s *fakeServer) { s.job(1).cancel = true })
	s.await("the step's final status", 10*time.Second, func(s *fakeServer) bool {
		return s.job(1).lastStep(0).Status.Done()
	})
	assert.Less(t, time.Since(cancelled), time.Second, "cancel reaches the step within a second")
	assert.False(t, processAlive(pid), "the step's process is killed")

	c := s.completed(1, 10*time.Second)
	assert.Equal(t, ci.JobCancelled, c.Result)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, []string{"cancelled", "skipped"}, s.job(1).stepStatuses(2))
}

func TestJobTimeout(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	asg := assignment(1, shell("echo $$; exec sleep 1000"), shell("true", "when", "always"))
	asg.Timeout = 1
	start := time.Now()
	s.addJob(asg)
	pid := pidFromLog(t, s, 1, 0)
	c := s.completed(1, 15*time.Second)
	assert.Equal(t, ci.JobTimeout, c.Result)
	assert.Less(t, time.Since(start), 8*time.Second)
	assert.False(t, processAlive(pid))
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(1)
	assert.Equal(t, []string{"timeout", "skipped"}, j.stepStatuses(2))
	assert.Equal(t, "job-timeout", j.lastStep(0).Reason)
}

func TestStaleAttemptStopsJob(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	s.addJob(assignment(1, shell("echo $$; exec sleep 1000"), shell("true", "when", "always")))
	pid := pidFromLog(t, s, 1, 0)
	s.await("a held heartbeat", 10*time.Second, func(s *fakeServer) bool { return s.job(1).heartbeats > 0 })
	s.mu.Lock()
	polls := len(s.workPolls)
	s.mu.Unlock()

	// The job is handed to another attempt: this agent's copy is stale.
	s.update(func(s *fakeServer) { s.job(1).attempt = 2 })
	s.await("the agent to ask for work again", 10*time.Second, func(s *fakeServer) bool { return len(s.workPolls) > polls })
	assert.False(t, processAlive(pid), "the stale job's process is killed")
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(1)
	assert.Nil(t, j.complete, "a stale attempt reports nothing more")
	assert.Equal(t, ci.StepRunning, j.lastStep(0).Status)
	assert.Empty(t, j.steps[1])
}

func TestBackgroundStepKilledAtJobEnd(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	s.addJob(assignment(1,
		shell("echo $$; exec sleep 1000", "background", true),
		shell("sleep 0.2; echo done"),
	))
	c := s.completed(1, 20*time.Second)
	assert.Equal(t, ci.JobOK, c.Result)
	s.mu.Lock()
	j := s.job(1)
	assert.Equal(t, []string{"ok", "ok"}, j.stepStatuses(2))
	log0 := j.logText(0)
	s.mu.Unlock()
	pid, err := strconv.Atoi(strings.SplitN(log0, "\n", 2)[0])
	require.NoError(t, err, "log %q", log0)
	assert.False(t, processAlive(pid), "killed at job end")
	assert.Contains(t, log0, "background command stopped at the end of the job")
}

func TestUnknownExecutor(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	asg := assignment(1, shell("true"))
	asg.Executor = "lxd"
	s.addJob(asg)
	c := s.completed(1, 10*time.Second)
	assert.Equal(t, ci.JobError, c.Result)
	assert.Contains(t, c.Message, `executor "lxd" is not available`)
}

func TestAgentStopCancelsJob(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	s.update(func(s *fakeServer) { s.credential, s.authorized = "builtin-cred", true })
	cfg := testConfig(t, s)
	cfg.Credential = "builtin-cred"
	a, err := New(cfg)
	require.NoError(t, err)
	stop := runAgent(t, a)
	s.addJob(assignment(1, shell("echo $$; exec sleep 1000")))
	pid := pidFromLog(t, s, 1, 0)
	require.NoError(t, stop())
	assert.False(t, processAlive(pid))
	c := s.completed(1, time.Second)
	assert.Equal(t, ci.JobError, c.Result)
	assert.Contains(t, c.Message, "kkagent was stopped")
}

func TestProbeHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                    string
		files                   map[string]string
		distro, version, system string
		isolation               string
		memMiB                  int64
	}{
		{
			name: "debian container",
			files: map[string]string{
				"etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
				"proc/meminfo":   "MemTotal:       16303072 kB\nMemFree: 1 kB\n",
				".dockerenv":     "",
			},
			distro: "debian", version: "12", system: "debian-12", isolation: "container", memMiB: 15920,
		},
		{
			name: "ubuntu lxc",
			files: map[string]string{
				"etc/os-release": "ID=ubuntu\nVERSION_ID='22.04'\n",
				"proc/1/cgroup":  "0::/lxc.payload.c1\n",
			},
			distro: "ubuntu", version: "22.04", system: "ubuntu-22.04", isolation: "container",
		},
		{
			name:      "no os-release",
			files:     map[string]string{"proc/1/cgroup": "0::/init.scope\n"},
			system:    "linux",
			isolation: "bare-metal",
		},
		{
			name:   "rolling release",
			files:  map[string]string{"etc/os-release": "ID=arch\n"},
			distro: "arch", system: "arch", isolation: "bare-metal",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fsys := mapFS(tc.files)
			h := probeHost(fsys, "host1", "v1.2.3")
			assert.Equal(t, tc.distro, h.Distro)
			assert.Equal(t, tc.version, h.DistroVersion)
			if tc.system == "linux" {
				assert.Equal(t, h.OS, h.System)
			} else {
				assert.Equal(t, tc.system, h.System)
			}
			assert.Equal(t, tc.isolation, h.Isolation)
			assert.Equal(t, tc.memMiB, h.MemoryMiB)
			assert.Equal(t, "host1", h.Hostname)
			assert.Equal(t, "v1.2.3", h.AgentVersion)
			assert.Positive(t, h.CPUs)
			assert.Empty(t, h.Docker)
			assert.Empty(t, h.LXD)
		})
	}
}

func TestStepWriterChunks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []record
	sent := make(chan struct{}, 100)
	sp, err := openSpool(filepath.Join(t.TempDir(), "spool"), 0)
	require.NoError(t, err)
	ob := newOutbox(sp, func(_ context.Context, r record) error {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		sent <- struct{}{}
		return nil
	}, func(error) {}, func() bool { return false }, slog.New(slog.DiscardHandler), backoff{min: time.Millisecond, max: time.Millisecond}, 8, 50*time.Millisecond, redaction{})
	go ob.run(t.Context())
	w := ob.writer(0)

	start := time.Now()
	_, _ = w.Write([]byte("abc"))
	<-sent // flushed by the delay
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	_, _ = w.Write([]byte("0123456789abcdefXY")) // two full chunks at once, "XY" waits
	<-sent
	<-sent
	_, _ = ob.writer(1).Write([]byte("other"))
	require.NoError(t, ob.finish(t.Context()))
	assert.True(t, ob.drained)
	mu.Lock()
	defer mu.Unlock()
	// "XY" (step 0) and "other" (step 1) may go in either order; within a step
	// the order is fixed.
	var b bytes.Buffer
	var seqs0 []int64
	var step1 []record
	for _, c := range got {
		if c.step == 0 {
			b.Write(c.data)
			seqs0 = append(seqs0, c.seq)
		} else {
			step1 = append(step1, c)
		}
	}
	assert.Equal(t, "abc0123456789abcdefXY", b.String())
	assert.Equal(t, []int64{0, 1, 2, 3}, seqs0)
	assert.Equal(t, []record{{kind: recLog, step: 1, seq: 0, data: []byte("other")}}, step1)
	n, err := w.Write([]byte("late"))
	assert.NoError(t, err)
	assert.Equal(t, 4, n, "writes after the end are dropped quietly")
}

func TestNormalizeServerURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"localhost:6363":         "http://localhost:6363",
		"http://kkd.example:80/": "http://kkd.example:80",
		"https://ci.example/kk/": "https://ci.example/kk",
	} {
		got, err := NormalizeServerURL(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"", "ftp://x", "http://"} {
		_, err := NormalizeServerURL(bad)
		assert.Error(t, err, bad)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	prevMax := time.Duration(0)
	for i := range 10 {
		d := b.next()
		ceiling := min(100*time.Millisecond<<i, time.Second)
		assert.LessOrEqual(t, d, ceiling)
		assert.GreaterOrEqual(t, d, ceiling/2)
		prevMax = max(prevMax, d)
	}
	assert.LessOrEqual(t, prevMax, time.Second)
	b.reset()
	assert.LessOrEqual(t, b.next(), 100*time.Millisecond)
}

// Ensure the process-group kill reaches grandchildren of a cancelled step.
func TestCancelKillsGrandchildren(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	s.addJob(assignment(1, shell("sleep 1000 & echo $!; wait")))
	pid := pidFromLog(t, s, 1, 0)
	s.update(func(s *fakeServer) { s.job(1).cancel = true })
	c := s.completed(1, 10*time.Second)
	assert.Equal(t, ci.JobCancelled, c.Result)
	assert.False(t, processAlive(pid))
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func mapFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, data := range files {
		m[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

// TestCredentialRotatedDuringJob: `kk agent rotate-token` while a job runs. The
// agent's next write gets 401, it fetches a new credential with its enroll
// secret and goes on: the job is not interrupted.
func TestCredentialRotatedDuringJob(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	cfg := testConfig(t, s)
	a, err := New(cfg)
	require.NoError(t, err)
	s.authorize()
	runAgent(t, a)
	s.await("a work poll", 10*time.Second, func(s *fakeServer) bool { return len(s.workPolls) > 0 })
	s.addJob(assignment(1, shell("echo before; sleep 1; echo after"), shell("echo second step")))
	s.await("the first step's output", 10*time.Second, func(s *fakeServer) bool {
		return strings.Contains(s.job(1).logText(0), "before")
	})
	s.revoke()
	c := s.completed(1, 15*time.Second)
	assert.Equal(t, ci.JobOK, c.Result)
	s.mu.Lock()
	log := s.job(1).logText(0) + s.job(1).logText(1)
	s.mu.Unlock()
	assert.Contains(t, log, "after")
	assert.Contains(t, log, "second step")
	cred, err := os.ReadFile(filepath.Join(cfg.DataDir, credentialFile))
	require.NoError(t, err)
	assert.Equal(t, "cred-2\n", string(cred))
}
