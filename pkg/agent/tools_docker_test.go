package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"

	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/docker"
	"github.com/kraken-go/kk/pkg/executor/docker/dockertest"
)

// TestToolsInBusyboxContainer is issue 4's acceptance test "git and
// artifacts steps work in a busybox-only container": the job runs in the
// docker executor with the FROM-scratch busybox image of dockertest (no git,
// no curl, no python), and the git, artifacts and cache steps work because
// they run in the agent on the shared workspace. It runs against the host's
// real Docker engine: it fails in CI (CI set) and skips elsewhere when the
// engine is missing.
func TestToolsInBusyboxContainer(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	image := dockertest.BusyboxImage(t, cli)
	helper := dockertest.AgentBinary(t)
	repo := makeRepo(t)
	s := newFakeServer(t)
	builtinAgent(t, s, func(cfg *Config) {
		ex, err := docker.New(docker.Config{DataDir: cfg.DataDir, Helper: helper, Client: cli, Logger: cfg.Logger})
		require.NoError(t, err)
		cfg.Executors = map[string]executor.Executor{"docker": ex}
	})

	job := func(id int64, steps ...any) {
		var as []api.AssignedStep
		for _, st := range steps {
			as = append(as, st.(api.AssignedStep))
		}
		asg := assignment(id, as...)
		asg.Executor, asg.System = "docker", image
		s.addJob(asg)
	}
	job(1,
		shell("! command -v git && ! test -e /usr/bin/git && test -x /bin/busybox"),
		step("git", "checkout", repo.url()),
		shell("cat proj/hello.txt && mkdir -p out/sub && echo A > out/a.txt && echo B > out/sub/b.txt"),
		step("artifacts", "source", "out", "destination", "build"),
		step("cache", "action", "save", "key", "busybox", "paths", []any{"out"}),
	)
	j := requireJobOK(t, s, 1, 5)
	s.mu.Lock()
	assert.Contains(t, j.logText(1), repo.second)
	assert.Contains(t, j.logText(2), "hello v2")
	assert.Contains(t, j.logText(3), "build/out/sub/b.txt 2")
	var paths []string
	for _, a := range s.assets.artifacts {
		paths = append(paths, a.Path)
	}
	s.mu.Unlock()
	assert.ElementsMatch(t, []string{"build/out/a.txt", "build/out/sub/b.txt"}, paths)

	job(2,
		step("artifacts", "action", "download", "source", "build/**/*.txt", "destination", "dl"),
		step("cache", "action", "restore", "key", "busybox"),
		shell("test \"$(cat dl/build/out/sub/b.txt)\" = B && test \"$(cat out/a.txt)\" = A"),
		step("artifacts", "source", "/etc/passwd"),
	)
	c := s.completed(2, 60*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	j2 := s.job(2)
	assert.Equal(t, []string{"ok", "ok", "ok", "error"}, j2.stepStatuses(4), c.Message)
	assert.Contains(t, j2.lastStep(3).Message, "outside the job workspace")
	assert.True(t, strings.Contains(j2.logText(0), "dl/build/out/a.txt"), j2.logText(0))
}
