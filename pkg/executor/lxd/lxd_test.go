package lxd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/executor"
)

const agentID = "5d8c1c0e-8f7a-4c52-9d55-0a4cb3c1e2f1"

type fixture struct {
	lxd  *fakeLXD
	exec *Executor
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFakeLXD(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	// The fake runs the wrapper's work itself, so any helper file does.
	e, err := newExecutor(Config{DataDir: t.TempDir(), AgentID: agentID, Helper: exe, Socket: f.socket})
	require.NoError(t, err)
	return &fixture{lxd: f, exec: e}
}

func (fx *fixture) prepare(t *testing.T, job int64) *Env {
	t.Helper()
	env, err := fx.exec.Prepare(context.Background(), executor.JobSpec{JobID: job, Attempt: 1, System: "busybox"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.Close(context.Background()) })
	return env.(*Env)
}

// syncBuffer is an io.Writer safe to read while a command writes to it.
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

func run(t *testing.T, env executor.Env, ctx context.Context, cmd executor.Command) (executor.Result, string) {
	t.Helper()
	var out syncBuffer
	cmd.Output = &out
	res, err := env.Run(ctx, cmd)
	require.NoError(t, err)
	return res, out.String()
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	caps := fx.exec.Capabilities(context.Background())
	assert.Equal(t, executor.Capabilities{Name: "lxd", Available: true, Version: "5.0.2"}, caps)

	off, err := newExecutor(Config{DataDir: t.TempDir(), Socket: filepath.Join(t.TempDir(), "none.socket")})
	require.NoError(t, err)
	assert.False(t, off.Capabilities(context.Background()).Available)
}

func TestSocketPath(t *testing.T) {
	t.Setenv("LXD_SOCKET", "/tmp/x.socket")
	assert.Equal(t, "/tmp/x.socket", SocketPath())
}

func TestInstanceName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, agent, want string
	}{
		{"uuid", agentID, "kk-" + agentID + "-7-2"},
		{"upper and odd characters", "Build_Host.1", "kk-build-host-1-7-2"},
		{"empty", "", "kk-agent-7-2"},
		{"too long", strings.Repeat("a", 80), "kk-" + strings.Repeat("a", 63-3-4) + "-7-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InstanceName(tt.agent, 7, 2)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, len(got), 63)
		})
	}
}

func TestPrepareLaunchesInstance(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	env := fx.prepare(t, 42)
	name := InstanceName(agentID, 42, 1)
	require.Equal(t, name, env.InstanceName())
	in := fx.lxd.instances[name]
	require.NotNil(t, in)
	assert.Equal(t, "Running", in.Status)
	assert.Equal(t, map[string]string{
		KeyAgent: agentID, KeyJob: "42", KeyAttempt: "1",
		"raw.lxc": "lxc.init.cmd = /.kk-bin/kkagent __kk-init",
	}, in.Config)
	assert.Equal(t, env.Workspace(), in.Devices["kk-workspace"]["path"])
	assert.True(t, fx.lxd.hasInstanceFile(name, helperPath))
	assert.True(t, fx.lxd.hasInstanceFile(name, runDir))
	assert.True(t, env.HasFile(context.Background(), helperPath))
	assert.False(t, env.HasFile(context.Background(), runDir))
	assert.False(t, env.HasFile(context.Background(), "/bin/bash"))
}

func TestRun(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	env := fx.prepare(t, 1)
	require.NoError(t, os.Mkdir(filepath.Join(env.Workspace(), "sub"), 0o755))
	res, out := run(t, env, context.Background(), executor.Command{
		Argv: []string{"sh", "-c", `echo "hello $KK_X"; pwd; echo oops >&2; exit 3`},
		Env:  []string{"KK_X=world"},
		Dir:  "sub",
	})
	assert.Equal(t, 3, res.ExitCode)
	assert.False(t, res.Cancelled || res.TimedOut)
	assert.Equal(t, "hello world\n"+filepath.Join(env.Workspace(), "sub")+"\noops\n", out)
}

func TestOutputStreamsInOrder(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	env := fx.prepare(t, 1)
	var out syncBuffer
	done := make(chan executor.Result)
	go func() {
		res, err := env.Run(context.Background(), executor.Command{
			Argv:   []string{"sh", "-c", `i=0; while [ $i -lt 50 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; echo first; sleep 30`},
			Output: &out,
		})
		assert.NoError(t, err)
		done <- res
	}()
	// Output arrives while the command still runs.
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "first") }, 10*time.Second, 10*time.Millisecond)
	var want strings.Builder
	for i := range 50 {
		want.WriteString("out" + strconv.Itoa(i) + "\nerr" + strconv.Itoa(i) + "\n")
	}
	want.WriteString("first\n")
	assert.Equal(t, want.String(), out.String())
	require.NoError(t, env.Close(context.Background()))
	res := <-done
	assert.True(t, res.Cancelled)
}

func TestTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	env := fx.prepare(t, 1)
	start := time.Now()
	res, _ := run(t, env, context.Background(), executor.Command{
		Argv:    []string{"sh", "-c", `trap "" TERM; sleep 30 & sleep 30`},
		Timeout: 300 * time.Millisecond,
		Grace:   200 * time.Millisecond,
	})
	assert.True(t, res.TimedOut)
	assert.Equal(t, -1, res.ExitCode)
	assert.Less(t, time.Since(start), 5*time.Second)
	sigs := fx.lxd.signalsSent()
	require.NotEmpty(t, sigs)
	assert.True(t, strings.HasPrefix(sigs[0], "TERM "+runDir+"/"), sigs[0])
	assert.Contains(t, strings.Join(sigs, ","), "KILL ")
}

func TestCancelKillsGroup(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	env := fx.prepare(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan executor.Result)
	go func() {
		res, err := env.Run(ctx, executor.Command{Argv: []string{"sh", "-c", "echo started; sleep 30"}, Output: &out})
		assert.NoError(t, err)
		done <- res
	}()
	require.Eventually(t, func() bool { return out.String() == "started\n" }, 10*time.Second, 10*time.Millisecond)
	start := time.Now()
	cancel()
	res := <-done
	assert.True(t, res.Cancelled)
	assert.Less(t, time.Since(start), 2*time.Second)
	sigs := fx.lxd.signalsSent()
	require.Len(t, sigs, 1)
	assert.True(t, strings.HasPrefix(sigs[0], "TERM "), sigs[0])
}

func TestCloseDeletesInstanceAndWorkspace(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	env := fx.prepare(t, 1)
	require.NoError(t, os.WriteFile(filepath.Join(env.Workspace(), "f"), []byte("x"), 0o644))
	require.NoError(t, env.Close(context.Background()))
	assert.Empty(t, fx.lxd.instanceNames())
	assert.NoDirExists(t, env.Workspace())
	require.NoError(t, env.Close(context.Background()), "Close is idempotent")
	_, err := env.Run(context.Background(), executor.Command{Argv: []string{"true"}})
	assert.ErrorContains(t, err, "closed")
}

func TestLeftoversDeleted(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.lxd.instances["kk-old-1-1"] = &fakeInstance{Name: "kk-old-1-1", Status: "Running", Config: map[string]string{KeyAgent: agentID, KeyJob: "1"}, files: map[string]fakeFile{}}
	fx.lxd.instances["kk-other-1-1"] = &fakeInstance{Name: "kk-other-1-1", Status: "Running", Config: map[string]string{KeyAgent: "other"}, files: map[string]fakeFile{}}
	fx.lxd.instances["mine"] = &fakeInstance{Name: "mine", Status: "Stopped", files: map[string]fakeFile{}}
	assert.Equal(t, 1, fx.exec.KillLeftovers())
	assert.ElementsMatch(t, []string{"kk-other-1-1", "mine"}, fx.lxd.instanceNames())

	// Prepare removes them too.
	fx.lxd.instances["kk-old-2-1"] = &fakeInstance{Name: "kk-old-2-1", Status: "Stopped", Config: map[string]string{KeyAgent: agentID}, files: map[string]fakeFile{}}
	env := fx.prepare(t, 3)
	assert.ElementsMatch(t, []string{"kk-other-1-1", "mine", env.InstanceName()}, fx.lxd.instanceNames())
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	_, err := fx.exec.Prepare(context.Background(), executor.JobSpec{JobID: 1, Attempt: 1, System: "debian/12"})
	require.Error(t, err)
	assert.ErrorContains(t, err, `image alias "debian/12" is not on this agent's LXD host`)
	assert.ErrorContains(t, err, "lxc image")
	assert.Empty(t, fx.lxd.instanceNames())

	_, err = fx.exec.Prepare(context.Background(), executor.JobSpec{JobID: 1})
	assert.ErrorContains(t, err, "no system")
}

func TestUserLookup(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	env := fx.prepare(t, 1)
	in := fx.lxd.instances[env.InstanceName()]
	fx.lxd.mu.Lock()
	in.files["/etc/passwd"] = fakeFile{typ: "file", data: []byte("root:x:0:0::/root:/bin/sh\nbuild:x:1001:100::/home/build:/bin/sh\n")}
	in.files["/etc/group"] = fakeFile{typ: "file", data: []byte("root:x:0:\nusers:x:100:\nwheel:x:10:\n")}
	fx.lxd.mu.Unlock()
	tests := []struct {
		user     string
		uid, gid uint32
		err      string
	}{
		{"", 0, 0, ""},
		{"1000", 1000, 1000, ""},
		{"1000:5", 1000, 5, ""},
		{"build", 1001, 100, ""},
		{"build:wheel", 1001, 10, ""},
		{"nobody", 0, 0, `no "nobody"`},
	}
	for _, tt := range tests {
		uid, gid, err := env.lookupUser(context.Background(), tt.user)
		if tt.err != "" {
			assert.ErrorContains(t, err, tt.err, tt.user)
			continue
		}
		require.NoError(t, err, tt.user)
		assert.Equal(t, [2]uint32{tt.uid, tt.gid}, [2]uint32{uid, gid}, tt.user)
	}
}

func TestStartFailureDeletesInstance(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	_, err := fx.exec.Prepare(context.Background(), executor.JobSpec{JobID: 666, Attempt: 1, System: "busybox"})
	assert.ErrorContains(t, err, "start instance kk-"+agentID+"-666-1")
	assert.ErrorContains(t, err, "forkstart")
	assert.Empty(t, fx.lxd.instanceNames())
}
