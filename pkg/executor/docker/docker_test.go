package docker_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/docker"
	"github.com/kraken-go/kk/pkg/executor/docker/dockertest"
)

// These tests run against this host's real Docker engine, with a busybox-only
// image they build themselves (see dockertest).

type fixture struct {
	cli   *client.Client
	image string
	exec  *docker.Executor
	agent string
	dir   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cli := dockertest.Client(t)
	f := &fixture{cli: cli, image: dockertest.BusyboxImage(t, cli), dir: t.TempDir(),
		agent: "test-" + strings.ReplaceAll(t.Name(), "/", "-")}
	f.exec = f.newExecutor(t)
	t.Cleanup(func() { f.exec.KillLeftovers() })
	return f
}

func (f *fixture) newExecutor(t *testing.T) *docker.Executor {
	t.Helper()
	ex, err := docker.New(docker.Config{DataDir: f.dir, AgentID: f.agent, Helper: dockertest.AgentBinary(t), Client: f.cli})
	require.NoError(t, err)
	return ex
}

func (f *fixture) prepare(t *testing.T, jobID int64) *docker.Env {
	t.Helper()
	env, err := f.exec.Prepare(context.Background(), executor.JobSpec{JobID: jobID, Attempt: 2, System: f.image})
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.Close(context.Background()) })
	return env.(*docker.Env)
}

func run(t *testing.T, env executor.Env, cmd executor.Command) (executor.Result, string) {
	t.Helper()
	var out bytes.Buffer
	cmd.Output = &out
	res, err := env.Run(context.Background(), cmd)
	require.NoError(t, err)
	return res, out.String()
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func (f *fixture) containerExists(t *testing.T, id string) bool {
	_, err := f.cli.ContainerInspect(context.Background(), id)
	if cerrdefs.IsNotFound(err) {
		return false
	}
	require.NoError(t, err)
	return true
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	caps := f.exec.Capabilities(context.Background())
	assert.True(t, caps.Available)
	assert.NotEmpty(t, caps.Version)
	assert.Equal(t, "docker", caps.Name)

	missing, err := client.NewClientWithOpts(client.WithHost("unix://"+t.TempDir()+"/no-docker.sock"), client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	ex, err := docker.New(docker.Config{DataDir: t.TempDir(), Client: missing, Helper: dockertest.AgentBinary(t)})
	require.NoError(t, err)
	assert.False(t, ex.Capabilities(context.Background()).Available)
}

func TestRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.prepare(t, 1)
	tests := []struct {
		name     string
		cmd      executor.Command
		wantCode int
		wantOut  string
	}{
		{"system is the image", executor.Command{Argv: []string{"cat", "/etc/os-release"}}, 0, dockertest.OSReleaseName},
		{"exit code", executor.Command{Argv: sh("echo out; exit 3")}, 3, "out\n"},
		{"stdout and stderr in order", executor.Command{Argv: sh("echo 1; echo 2 >&2; echo 3; echo 4 >&2")}, 0, "1\n2\n3\n4\n"},
		{"env", executor.Command{Argv: sh("echo $FOO"), Env: []string{"FOO=bar baz"}}, 0, "bar baz\n"},
		{"cwd is the workspace", executor.Command{Argv: []string{"pwd"}}, 0, env.Workspace() + "\n"},
		{"relative cwd", executor.Command{Argv: sh("pwd"), Dir: "."}, 0, env.Workspace() + "\n"},
		{"absolute cwd", executor.Command{Argv: []string{"pwd"}, Dir: "/tmp"}, 0, "/tmp\n"},
		{"user by name", executor.Command{Argv: sh("id -u; echo $HOME"), User: "builder"}, 0, "1000\n/home/builder\n"},
		{"user by uid", executor.Command{Argv: []string{"id", "-u"}, User: "1000"}, 0, "1000\n"},
		{"root by default", executor.Command{Argv: []string{"id", "-u"}}, 0, "0\n"},
		{"missing program", executor.Command{Argv: []string{"no-such-program"}}, 127, "no-such-program: command not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, out := run(t, env, tt.cmd)
			assert.Equal(t, tt.wantCode, res.ExitCode, "output: %s", out)
			assert.Contains(t, out, tt.wantOut)
			assert.False(t, res.Cancelled || res.TimedOut)
		})
	}
}

func TestFilesPersistAndHostSeesWorkspace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.prepare(t, 2)
	res, _ := run(t, env, executor.Command{Argv: sh("mkdir sub && echo hello > sub/a.txt"), User: "builder"})
	require.Equal(t, 0, res.ExitCode)
	res, out := run(t, env, executor.Command{Argv: []string{"cat", "a.txt"}, Dir: "sub"})
	require.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "hello\n", out)
	// A script the agent writes into the workspace is visible inside.
	require.NoError(t, writeFile(env.Workspace()+"/s.sh", "echo from script $(id -un)\n"))
	res, out = run(t, env, executor.Command{Argv: []string{"sh", env.Workspace() + "/s.sh"}, User: "builder"})
	require.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "from script builder\n", out)
	assert.True(t, env.HasFile(context.Background(), "/bin/sh"))
	assert.False(t, env.HasFile(context.Background(), "/bin/bash"))
}

// lineWriter signals when the output contains want.
type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// groupGone polls until no process of the step's group (recorded pids in
// pids.txt) is alive in the container.
func groupGone(t *testing.T, env executor.Env) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, out := run(t, env, executor.Command{Argv: sh(`for p in $(cat pids.txt); do if [ -d /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status; then echo alive $p; fi; done`)})
		require.Equal(t, 0, res.ExitCode)
		if out == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the step survive: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stubborn starts a background child and a foreground sleep, both ignoring
// SIGTERM, records their pids and prints "ready".
const stubborn = `trap '' TERM; sleep 300 & echo $! > pids.txt; echo $$ >> pids.txt; echo ready; while true; do sleep 1; done`

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.prepare(t, 3)
	start := time.Now()
	res, out := run(t, env, executor.Command{Argv: sh(stubborn), Timeout: 700 * time.Millisecond, Grace: 300 * time.Millisecond})
	assert.True(t, res.TimedOut)
	assert.Equal(t, -1, res.ExitCode)
	assert.Contains(t, out, "ready")
	assert.Less(t, time.Since(start), 5*time.Second)
	groupGone(t, env)
}

func TestCancelStreamsThenKillsProcessGroup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.prepare(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &lineWriter{want: "ready", seen: make(chan struct{})}
	done := make(chan executor.Result, 1)
	go func() {
		res, err := env.Run(ctx, executor.Command{Argv: sh(stubborn), Output: w, Grace: 300 * time.Millisecond})
		assert.NoError(t, err)
		done <- res
	}()
	select { // the output arrives while the command runs
	case <-w.seen:
	case <-time.After(20 * time.Second):
		t.Fatal("no streamed output")
	}
	cancel()
	select {
	case res := <-done:
		assert.True(t, res.Cancelled)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	groupGone(t, env)
}

func TestBackgroundChildDoesNotOutliveCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.prepare(t, 5)
	res, _ := run(t, env, executor.Command{Argv: sh(`sleep 300 & echo $! > pids.txt; exit 0`)})
	require.Equal(t, 0, res.ExitCode)
	groupGone(t, env)
}

func TestCloseRemovesContainerAndLabels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env := f.prepare(t, 6)
	ins, err := f.cli.ContainerInspect(context.Background(), env.ContainerID())
	require.NoError(t, err)
	assert.Equal(t, f.agent, ins.Config.Labels[docker.LabelAgent])
	assert.Equal(t, "6", ins.Config.Labels[docker.LabelJob])
	assert.Equal(t, "2", ins.Config.Labels[docker.LabelAttempt])

	// Close aborts a running command too.
	done := make(chan executor.Result, 1)
	go func() {
		res, _ := env.Run(context.Background(), executor.Command{Argv: []string{"sleep", "300"}, Grace: 200 * time.Millisecond})
		done <- res
	}()
	require.Eventually(t, func() bool {
		res, out := run(t, env, executor.Command{Argv: sh("ps -o comm | grep -c '^sleep$'")})
		return res.ExitCode == 0 && strings.TrimSpace(out) == "1"
	}, 10*time.Second, 50*time.Millisecond)
	start := time.Now()
	require.NoError(t, env.Close(context.Background()))
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.True(t, (<-done).Cancelled)
	assert.False(t, f.containerExists(t, env.ContainerID()))
	assert.NoDirExists(t, env.Workspace())
	require.NoError(t, env.Close(context.Background()), "Close is idempotent")
	_, err = env.Run(context.Background(), executor.Command{Argv: []string{"true"}})
	assert.Error(t, err)
}

func TestLeftoversRemoved(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	crashed := f.prepare(t, 7) // never closed: its agent "crashed"
	// The restarted agent removes it at start ...
	assert.Equal(t, 1, f.newExecutor(t).KillLeftovers())
	assert.False(t, f.containerExists(t, crashed.ContainerID()))
	// ... and at Prepare.
	crashed = f.prepare(t, 8)
	next, err := f.newExecutor(t).Prepare(context.Background(), executor.JobSpec{JobID: 9, System: f.image})
	require.NoError(t, err)
	defer next.Close(context.Background())
	assert.False(t, f.containerExists(t, crashed.ContainerID()))
	assert.True(t, f.containerExists(t, next.(*docker.Env).ContainerID()))
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A registry on a closed loopback port: the pull fails at once.
	img := "127.0.0.1:1/kk-no-such-image:v1"
	_, err := f.exec.Prepare(context.Background(), executor.JobSpec{JobID: 10, System: img})
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("image %q is not on this agent's Docker host", img))
	assert.Contains(t, err.Error(), "docker pull "+img)
	assert.Contains(t, err.Error(), "docker load")
}

func TestNetworkOption(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env, err := f.exec.Prepare(context.Background(), executor.JobSpec{JobID: 11, System: f.image, Options: map[string]string{"network": "none"}})
	require.NoError(t, err)
	defer env.Close(context.Background())
	ins, err := f.cli.ContainerInspect(context.Background(), env.(*docker.Env).ContainerID())
	require.NoError(t, err)
	assert.Equal(t, "none", string(ins.HostConfig.NetworkMode))
	_, out := run(t, env, executor.Command{Argv: sh("ls /sys/class/net")})
	assert.Equal(t, "lo\n", out)
}
