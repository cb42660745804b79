package e2e

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// countingStage prints "line i" for i in 1..n, one every interval seconds.
func countingStage(n int, interval string) string {
	return `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "count",
            "timeout": 600,
            "steps": [{"tool": "shell", "script": """
i=1
while [ $i -le ` + strconv.Itoa(n) + ` ]; do echo "line $i"; i=$((i+1)); sleep ` + interval + `; done
"""}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`
}

// setupCounting creates project/branch with a counting stage and returns the flow run args.
func (c *cluster) setupCounting(n int, interval string) {
	c.t.Helper()
	c.ok("project", "create", "chaos")
	c.ok("branch", "create", "chaos/main")
	c.ok("stage", "apply", "chaos/main", writeFile(c.t, "count.py", countingStage(n, interval)))
}

// authorizedAgent starts an agent and authorizes it.
func (c *cluster) authorizedAgent(name string) *proc {
	c.t.Helper()
	p := c.startAgent(name)
	waitFor(c.t, 20*time.Second, "agent "+name+" to be discovered", func() bool {
		return findAgent(c.agents(true), name) != nil
	})
	c.ok("agent", "authorize", name)
	waitFor(c.t, 20*time.Second, "agent "+name+" to be idle", func() bool {
		a := findAgent(c.agents(false), name)
		return a != nil && a.State == "idle"
	})
	return p
}

func (c *cluster) job(id int64) jobJSON {
	var j jobJSON
	c.okJSON(&j, "job", "show", strconv.FormatInt(id, 10))
	return j
}

// checkCount checks that a log holds "line 1".."line n" in order; with
// exactlyOnce, each once.
func checkCount(t *testing.T, log string, n int, exactlyOnce bool) {
	t.Helper()
	next := 1
	for _, l := range strings.Split(log, "\n") {
		if !strings.HasPrefix(l, "line ") {
			continue
		}
		v, err := strconv.Atoi(strings.TrimPrefix(l, "line "))
		require.NoError(t, err)
		if exactlyOnce {
			require.Equal(t, next, v, "log lines out of order or duplicated:\n%s", log)
		}
		next = v + 1
	}
	require.Equal(t, n+1, next, "log is incomplete:\n%s", log)
}

// TestAgentKilledMidStep: SIGKILL an agent in the middle of a long step; the job
// moves to another agent and completes; the log shows both attempts.
func TestAgentKilledMidStep(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.setupCounting(20, "0.5")
	a1 := c.authorizedAgent("victim")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "chaos/main")
	jobID := f.Runs[0].Jobs[0].ID
	waitFor(t, 30*time.Second, "job to print on the first agent", func() bool {
		return strings.Contains(c.ok("job", "logs", strconv.FormatInt(jobID, 10)), "line 3")
	})
	require.Equal(t, "victim", c.job(jobID).Agent)
	// The second agent joins only now, so the first attempt surely ran on the victim.
	c.authorizedAgent("rescuer")
	killed := time.Now()
	require.NoError(t, syscall.Kill(a1.cmd.Process.Pid, syscall.SIGKILL))

	waitFor(t, 35*time.Second, "victim to show lost contact", func() bool {
		a := findAgent(c.agents(false), "victim")
		return a != nil && a.State == "lost_contact"
	})
	t.Logf("lost contact shown %s after the kill", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 50*time.Second, "job to restart on the rescuer", func() bool {
		j := c.job(jobID)
		return j.Agent == "rescuer" && j.State != "queued"
	})
	t.Logf("job restarted %s after the kill", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "job to complete", func() bool { return c.job(jobID).State == "completed" })
	j := c.job(jobID)
	require.Equal(t, "ok", j.Result)
	log := c.ok("job", "logs", strconv.FormatInt(jobID, 10))
	require.Contains(t, log, "==> attempt 1")
	require.Contains(t, log, "==> attempt 2")
	second := log[strings.Index(log, "==> attempt 2"):]
	checkCount(t, second, 20, true)
}

// TestStaleAgentIsFenced: SIGSTOP an agent past its lease, let the job move,
// then SIGCONT it: its writes are refused and the result comes from the new attempt.
func TestStaleAgentIsFenced(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.setupCounting(16, "0.5")
	a1 := c.authorizedAgent("sleeper")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "chaos/main")
	jobID := f.Runs[0].Jobs[0].ID
	waitFor(t, 30*time.Second, "job to print", func() bool {
		return strings.Contains(c.ok("job", "logs", strconv.FormatInt(jobID, 10)), "line 2")
	})
	c.authorizedAgent("taker")
	// Stop the agent and its step (the whole process tree of the test's kkagent).
	require.NoError(t, syscall.Kill(-a1.cmd.Process.Pid, syscall.SIGSTOP))
	stopStepGroups(t, a1.cmd.Process.Pid, syscall.SIGSTOP)
	waitFor(t, 60*time.Second, "job to move to the other agent", func() bool {
		return c.job(jobID).Agent == "taker"
	})
	stopStepGroups(t, a1.cmd.Process.Pid, syscall.SIGCONT)
	require.NoError(t, syscall.Kill(-a1.cmd.Process.Pid, syscall.SIGCONT))
	waitFor(t, 60*time.Second, "job to complete", func() bool { return c.job(jobID).State == "completed" })
	require.Equal(t, "ok", c.job(jobID).Result)
	waitFor(t, 30*time.Second, "stale agent to drop its copy and go idle", func() bool {
		a := findAgent(c.agents(false), "sleeper")
		return a != nil && a.State == "idle"
	})
	log := c.ok("job", "logs", strconv.FormatInt(jobID, 10))
	i := strings.Index(log, "==> attempt 2")
	require.GreaterOrEqual(t, i, 0, "log:\n%s", log)
	checkCount(t, log[i:], 16, true)
	first := log[:i]
	require.NotContains(t, first, "line 16", "the stale attempt must not have written past its fencing:\n%s", first)
}

// stopStepGroups signals the process groups of the agent's children (steps run
// in their own process groups).
func stopStepGroups(t *testing.T, agentPid int, sig syscall.Signal) {
	t.Helper()
	out, err := exec.Command("ps", "-eo", "pid=,ppid=,pgid=").Output()
	require.NoError(t, err)
	parent := map[int]int{}
	pgid := map[int]int{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		pid, _ := strconv.Atoi(f[0])
		ppid, _ := strconv.Atoi(f[1])
		g, _ := strconv.Atoi(f[2])
		parent[pid], pgid[pid] = ppid, g
	}
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == agentPid {
				_ = syscall.Kill(-pgid[pid], sig)
				break
			}
		}
	}
}

// TestServerOutage: kkd is down for 60 s while a job runs; the job finishes and
// its full log and result arrive in order, nothing duplicated.
func TestServerOutage(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.setupCounting(30, "1")
	c.authorizedAgent("steady")
	var f flowJSON
	c.okJSON(&f, "flow", "run", "chaos/main")
	jobID := f.Runs[0].Jobs[0].ID
	waitFor(t, 30*time.Second, "job to print", func() bool {
		return strings.Contains(c.ok("job", "logs", strconv.FormatInt(jobID, 10)), "line 2")
	})
	c.kkd.kill(syscall.SIGTERM)
	down := time.Now()
	// The outage itself: kkd stays down for 60 s while the step keeps printing.
	time.Sleep(60 * time.Second)
	c.startKKD(strings.TrimPrefix(c.url, "http://"))
	t.Logf("kkd was down %s", time.Since(down).Round(time.Second))
	waitFor(t, 90*time.Second, "job to complete", func() bool { return c.job(jobID).State == "completed" })
	j := c.job(jobID)
	require.Equal(t, "ok", j.Result)
	log := c.ok("job", "logs", strconv.FormatInt(jobID, 10))
	require.NotContains(t, log, "==> attempt 2", "the job must not have been retried")
	checkCount(t, log, 30, true)
}

// TestAutoRegistration: the right key lands the agent in its group ready for
// work; a wrong key leaves it discovered.
func TestAutoRegistration(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "--agent-registration-key", "s3cret-key")
	c.ok("project", "create", "auto")
	c.ok("branch", "create", "auto/main")
	c.ok("group", "create", "builders")
	c.ok("stage", "apply", "auto/main", writeFile(t, "g.py", `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "in-group",
            "steps": [{"tool": "shell", "cmd": "echo ran in builders"}],
            "environments": [{"agents_group": "builders", "system": "any", "config": "default"}],
        }],
    }
`))
	c.startAgent("good", "--registration-key", "s3cret-key", "--group", "builders")
	c.startAgent("bad", "--registration-key", "wrong-key", "--group", "builders")
	waitFor(t, 20*time.Second, "good agent to be authorized", func() bool {
		a := findAgent(c.agents(false), "good")
		return a != nil && a.State == "idle"
	})
	require.ElementsMatch(t, []string{"all", "builders"}, findAgent(c.agents(false), "good").Groups)
	waitFor(t, 20*time.Second, "bad agent to be discovered", func() bool { return findAgent(c.agents(true), "bad") != nil })
	require.Nil(t, findAgent(c.agents(false), "bad"))
	require.Contains(t, c.kkd.Output(), "wrong registration key")
	r := c.kk("flow", "run", "auto/main", "--wait", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"agent": "good"`)
}

// TestDataDirLock: a second kkagent on the same data dir exits at once.
func TestDataDirLock(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	dir := filepath.Join(t.TempDir(), "shared")
	start(t, nil, "kkagent", "run", "-s", c.url, "-d", dir, "--name", "first")
	waitFor(t, 20*time.Second, "first agent to register", func() bool { return findAgent(c.agents(true), "first") != nil })
	second := start(t, nil, "kkagent", "run", "-s", c.url, "-d", dir, "--name", "second")
	select {
	case <-second.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a second kkagent on the same data dir must exit at once")
	}
	require.Equal(t, 1, second.cmd.ProcessState.ExitCode())
	require.Contains(t, second.Output(), "in use by another kkagent")
}
