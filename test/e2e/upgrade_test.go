package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildAgentVersion builds kkagent with the given version stamped in, into
// its own directory of dir, and returns its path.
func buildAgentVersion(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, version, "kkagent")
	cmd := exec.Command("go", "build", "-o", out,
		"-ldflags", "-X github.com/kraken-go/kk/pkg/version.Version="+version, "../../cmd/kkagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build kkagent %s: %s", version, b)
	return out
}

// installFile copies src to dst atomically (a new file renamed over dst),
// as a release process would. cp writes the file, so no fd open for writing
// leaks into a child this process forks meanwhile (exec of dst would fail
// with "text file busy").
func installFile(t *testing.T, src, dst string) {
	t.Helper()
	tmp := dst + ".tmp"
	out, err := exec.Command("cp", src, tmp).CombinedOutput()
	require.NoError(t, err, "cp: %s", out)
	require.NoError(t, os.Chmod(tmp, 0o755))
	require.NoError(t, os.Rename(tmp, dst))
}

// startExe starts a binary outside binDir, like start does for binDir's.
func startExe(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("output of %s %v:\n%s", path, args, p.Output())
		}
	})
	return p
}

type agentVersionJSON struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	HostInfo struct {
		AgentVersion string `json:"agent_version"`
	} `json:"host_info"`
}

func (c *cluster) agentVersion(name string) (state, version string) {
	c.t.Helper()
	var as []agentVersionJSON
	c.okJSON(&as, "agent", "list")
	for _, a := range as {
		if a.Name == name {
			return a.State, a.HostInfo.AgentVersion
		}
	}
	return "", ""
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	da, err := os.ReadFile(a)
	require.NoError(t, err)
	db, err := os.ReadFile(b)
	require.NoError(t, err)
	return bytes.Equal(da, db)
}

// TestAgentSelfUpgrade (acceptance 6): a running v1 agent finishes its job on
// v1, upgrades itself to the v2 that kkd serves between jobs, and runs the
// next job on v2; no job is lost or interrupted.
func TestAgentSelfUpgrade(t *testing.T) {
	t.Parallel()
	builds := t.TempDir()
	v1 := buildAgentVersion(t, builds, "v1.0.0-e2e")
	v2 := buildAgentVersion(t, builds, "v2.0.0-e2e")
	served := t.TempDir()
	servedBin := filepath.Join(served, "kkagent-"+runtime.GOOS+"-"+runtime.GOARCH)
	installFile(t, v1, servedBin) // kkd serves v1 until the job runs

	c := newCluster(t, "--agent-binaries", served)
	c.ok("project", "create", "up")
	c.ok("branch", "create", "up/main")
	c.ok("stage", "apply", "up/main", writeFile(t, "up.py", countingStage(12, "0.5")))

	exeDir := t.TempDir()
	exe := filepath.Join(exeDir, "kkagent")
	installFile(t, v1, exe)
	agent := startExe(t, exe, "run", "-s", c.url, "-d", filepath.Join(t.TempDir(), "data"), "--name", "up1",
		"--upgrade-check-interval", "1s")
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool { return findAgent(c.agents(true), "up1") != nil })
	c.ok("agent", "authorize", "up1")
	waitFor(t, 20*time.Second, "agent to be idle on v1", func() bool {
		state, v := c.agentVersion("up1")
		return state == "idle" && v == "v1.0.0-e2e"
	})

	// A job starts on v1; meanwhile kkd starts serving v2.
	var f flowJSON
	c.okJSON(&f, "flow", "run", "up/main")
	job1 := f.Runs[0].Jobs[0].ID
	waitFor(t, 30*time.Second, "job 1 to print", func() bool {
		return strings.Contains(c.ok("job", "logs", strconv.FormatInt(job1, 10)), "line 2")
	})
	installFile(t, v2, servedBin)

	// The job finishes on v1, untouched; only then the agent upgrades.
	waitFor(t, 60*time.Second, "job 1 to complete", func() bool { return c.job(job1).State == "completed" })
	j1 := c.job(job1)
	require.Equal(t, "ok", j1.Result)
	require.Equal(t, "up1", j1.Agent)
	log1 := c.ok("job", "logs", strconv.FormatInt(job1, 10))
	require.NotContains(t, log1, "==> attempt 2", "the job must not have been interrupted")
	checkCount(t, log1, 12, true)

	waitFor(t, 60*time.Second, "agent to run v2", func() bool {
		state, v := c.agentVersion("up1")
		return state == "idle" && v == "v2.0.0-e2e"
	})
	require.True(t, sameFile(t, v2, exe), "the binary on disk is v2")
	require.True(t, sameFile(t, v1, filepath.Join(exeDir, "kkagent.old")), "v1 is kept for rollback")
	out := agent.Output()
	finished := regexp.MustCompile(`msg="job finished".* job_id=` + strconv.FormatInt(job1, 10) + ` `).FindStringIndex(out)
	require.NotNil(t, finished, "job 1 finished on the agent")
	upgraded := strings.Index(out, "kkagent upgraded; restarting on the new binary")
	require.Greater(t, upgraded, finished[0], "the upgrade happens after the job, never during it")

	// The next job runs on v2, and the supervisor process lived on (re-executed).
	select {
	case <-agent.done:
		t.Fatal("kkagent exited during the upgrade")
	default:
	}
	r := c.kk("flow", "run", "up/main", "--wait", "-o", "json")
	require.Equal(t, 0, r.code, "flow on v2: %s", r.stderr)
	require.Contains(t, r.stdout, `"agent": "up1"`)
	out = agent.Output()
	v2Start := regexp.MustCompile(`msg="kkagent starting".* version=v2\.0\.0-e2e `).FindStringIndex(out)
	require.NotNil(t, v2Start)
	require.Equal(t, 2, strings.Count(out, `msg="job received"`))
	require.Greater(t, strings.LastIndex(out, `msg="job received"`), v2Start[0], "job 2 ran on v2")
	require.NotContains(t, out, "worker crashed")
}
