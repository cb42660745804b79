package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Wire shapes of kk's JSON output (the CLI contract).
type stepJSON struct {
	Index    int    `json:"index"`
	Status   string `json:"status"`
	ExitCode *int   `json:"exit_code"`
}

type jobJSON struct {
	ID      int64      `json:"id"`
	Name    string     `json:"name"`
	State   string     `json:"state"`
	Result  string     `json:"result"`
	Agent   string     `json:"agent"`
	Attempt int        `json:"attempt"`
	Steps   []stepJSON `json:"steps"`
}

type runJSON struct {
	ID    int64     `json:"id"`
	Name  string    `json:"name"`
	State string    `json:"state"`
	Jobs  []jobJSON `json:"jobs"`
}

type flowJSON struct {
	ID    int64     `json:"id"`
	State string    `json:"state"`
	Kind  string    `json:"kind"`
	Runs  []runJSON `json:"runs"`
}

type agentJSON struct {
	ID       int64    `json:"id"`
	Name     string   `json:"name"`
	State    string   `json:"state"`
	Groups   []string `json:"groups"`
	JobID    int64    `json:"job_id"`
	HostInfo struct {
		OS     string `json:"os"`
		CPUs   int    `json:"cpus"`
		Docker string `json:"docker"`
	} `json:"host_info"`
}

const parentStage = `# parent stage: Kraken style
def stage(ctx):
    greeting = "hello %s" % ("ci" if ctx.is_ci else "dev")
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "parameters": [{"name": "who", "type": "string", "default": "world", "description": "who to greet"}],
        "jobs": [{
            "name": "build",
            "timeout": 120,
            "steps": [
                {"tool": "shell", "cmd": "echo '%s #{args.who}'" % greeting},
                {"tool": "shell", "name": "script", "script": """
echo "line one"
echo "line two from $KK_PROJECT"
"""},
            ],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

const childStage = `def stage(ctx):
    return {
        "parent": "parent",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "test",
            "steps": [{"tool": "shell", "cmd": "echo child ran"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

func failingStage(cmd string) string {
	return `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "work",
            "timeout": 120,
            "steps": [
                {"tool": "shell", "cmd": ` + strconv.Quote(cmd) + `},
                {"tool": "shell", "cmd": "echo skipped-step"},
                {"tool": "shell", "cmd": "echo always-step", "when": "always"},
            ],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`
}

func (c *cluster) flow(id int64) flowJSON {
	var f flowJSON
	c.okJSON(&f, "flow", "show", strconv.FormatInt(id, 10))
	return f
}

func (c *cluster) agents(discovered bool) []agentJSON {
	var as []agentJSON
	args := []string{"agent", "list"}
	if discovered {
		args = append(args, "--discovered")
	}
	c.okJSON(&as, args...)
	return as
}

func findAgent(as []agentJSON, name string) *agentJSON {
	for i := range as {
		if as[i].Name == name {
			return &as[i]
		}
	}
	return nil
}

// TestFlowEndToEnd covers the foundation's main path: discovery, authorization,
// a two-stage flow, logs, a failing flow, and a kkd SIGKILL restart.
func TestFlowEndToEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t)

	c.ok("project", "create", "shop")
	c.ok("branch", "create", "shop/main")
	c.ok("stage", "apply", "shop/main", writeFile(t, "parent.py", parentStage))
	c.ok("stage", "apply", "shop/main", writeFile(t, "child.py", childStage), "--name", "child")

	// A new agent shows up as discovered and gets no job until authorized.
	c.startAgent("builder1")
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool {
		return findAgent(c.agents(true), "builder1") != nil
	})
	a := findAgent(c.agents(true), "builder1")
	require.Equal(t, "discovered", a.State)
	require.NotZero(t, a.HostInfo.CPUs)

	var f flowJSON
	c.okJSON(&f, "flow", "run", "shop/main", "--arg", "who=kraken")
	require.Len(t, f.Runs, 1)
	require.Equal(t, "parent", f.Runs[0].Name)
	jobID := f.Runs[0].Jobs[0].ID
	// The agent is registered and waiting, but holds no credential: the job stays queued.
	f = c.flow(f.ID)
	require.Equal(t, "queued", f.Runs[0].Jobs[0].State, "an unauthorized agent must not get a job")
	require.Zero(t, findAgent(c.agents(true), "builder1").JobID)

	c.ok("agent", "authorize", "builder1")
	waitFor(t, 60*time.Second, "flow to complete", func() bool { return c.flow(f.ID).State == "completed" })
	f = c.flow(f.ID)
	require.Len(t, f.Runs, 2, "the child stage must run after its parent")
	for _, r := range f.Runs {
		require.Equal(t, "completed", r.State)
		for _, j := range r.Jobs {
			require.Equal(t, "ok", j.Result, "job %s", j.Name)
			require.Equal(t, "builder1", j.Agent)
			for _, s := range j.Steps {
				require.Equal(t, "ok", s.Status)
			}
		}
	}
	logs := c.ok("job", "logs", strconv.FormatInt(jobID, 10))
	require.Contains(t, logs, "hello ci kraken")
	require.Contains(t, logs, "line two from shop")
	step1 := c.ok("job", "logs", strconv.FormatInt(jobID, 10), "--step", "1")
	require.Contains(t, step1, "line one")
	require.NotContains(t, step1, "hello ci")

	// A failing step: --wait exits 1; later steps obey `when`.
	c.ok("branch", "create", "shop/broken")
	c.ok("stage", "apply", "shop/broken", writeFile(t, "fail.py", failingStage("echo about to fail; exit 3")))
	r := c.kk("flow", "run", "shop/broken", "--wait", "-o", "json")
	require.Equal(t, 1, r.code, "flow run --wait must exit 1 when a job fails: %s", r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &f))
	j := f.Runs[0].Jobs[0]
	require.Equal(t, "failed", j.Result)
	require.Equal(t, []string{"failed", "skipped", "ok"}, []string{j.Steps[0].Status, j.Steps[1].Status, j.Steps[2].Status})
	require.Equal(t, 3, *j.Steps[0].ExitCode)
	logs = c.ok("job", "logs", strconv.FormatInt(j.ID, 10))
	require.Contains(t, logs, "about to fail")
	require.Contains(t, logs, "always-step")
	require.NotContains(t, logs, "skipped-step")

	// A successful flow with --wait exits 0.
	r = c.kk("flow", "run", "shop/main", "--wait")
	require.Equal(t, 0, r.code, "flow run --wait: %s", r.stderr)

	// SIGKILL kkd while idle and restart it: nothing is lost, the token still works.
	var before []flowJSON
	c.okJSON(&before, "flow", "list", "shop/main")
	c.restartKKD()
	var after []flowJSON
	c.okJSON(&after, "flow", "list", "shop/main")
	require.Equal(t, len(before), len(after))
	require.Contains(t, c.ok("job", "logs", strconv.FormatInt(jobID, 10)), "hello ci kraken")
	// The agent reconnects and keeps working.
	r = c.kk("flow", "run", "shop/main", "--wait")
	require.Equal(t, 0, r.code, "flow after restart: %s", r.stderr)
}

// TestLiveLogsAndCancel checks that `kk job logs -f` shows lines while the step
// runs and that cancel stops a running job and its whole process group.
func TestLiveLogsAndCancel(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.ok("project", "create", "live")
	c.ok("branch", "create", "live/main")
	marker := filepath.Join(t.TempDir(), "grandchild.pid")
	c.ok("stage", "apply", "live/main", writeFile(t, "live.py", `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "parameters": [{"name": "mode", "type": "string", "default": "tail"}],
        "jobs": [{
            "name": "live",
            "timeout": 300,
            "steps": [{"tool": "shell", "script": """
if [ "#{args.mode}" = "tail" ]; then
  for i in 1 2 3 4 5 6; do echo "tick $i $(date +%s%N)"; sleep 0.4; done
else
  sleep 1000 &
  echo $! > `+marker+`
  echo "started sleeper"
  wait
fi
"""}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`))
	c.startAgent("live1", "--registration-key", "e2e-key")
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool { return findAgent(c.agents(true), "live1") != nil })
	c.ok("agent", "authorize", "live1")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "live/main")
	jobID := strconv.FormatInt(f.Runs[0].Jobs[0].ID, 10)
	cmd := exec.Command(filepath.Join(binDir, "kk"), "job", "logs", jobID, "-f")
	cmd.Env = append(os.Environ(), "KK_CONFIG="+c.cfg)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	var ticks []timedLine
	for l := range readLines(stdout) {
		if strings.HasPrefix(l.text, "tick ") {
			ticks = append(ticks, l)
		}
	}
	require.NoError(t, cmd.Wait(), "kk job logs -f: %s", stderr.String())
	require.Len(t, ticks, 6, "every line must arrive before -f returns")
	// Latency from the step printing a line to the follower reading it.
	var worst time.Duration
	for _, l := range ticks {
		f := strings.Fields(l.text)
		ns, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		require.NoError(t, err, "line %q", l.text)
		if d := l.at.Sub(time.Unix(0, ns)); d > worst {
			worst = d
		}
	}
	t.Logf("live tail: worst print-to-follower latency %s over %d lines", worst, len(ticks))
	require.Less(t, worst, 2*time.Second, "lines must stream while the step runs, not at its end")
	// Lines are printed 400 ms apart; they must arrive spread out, not all at the end.
	spread := ticks[5].at.Sub(ticks[0].at)
	require.Greater(t, spread, 1200*time.Millisecond, "lines must stream while the step runs (spread %s)", spread)
	require.Equal(t, "completed", c.flow(f.ID).State)

	// Cancel: the running step and its background grandchild are killed.
	c.okJSON(&f, "flow", "run", "live/main", "--arg", "mode=sleep")
	job := f.Runs[0].Jobs[0]
	waitFor(t, 30*time.Second, "sleeper to start", func() bool {
		b, err := os.ReadFile(marker)
		return err == nil && len(bytes.TrimSpace(b)) > 0
	})
	b, _ := os.ReadFile(marker)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	start := time.Now()
	c.ok("job", "cancel", strconv.FormatInt(job.ID, 10))
	waitFor(t, 15*time.Second, "job to be cancelled", func() bool {
		return c.flow(f.ID).Runs[0].Jobs[0].State == "completed"
	})
	t.Logf("cancel took %s", time.Since(start))
	f = c.flow(f.ID)
	require.Equal(t, "cancelled", f.Runs[0].Jobs[0].Result)
	waitFor(t, 10*time.Second, "grandchild process to be gone", func() bool {
		return !processAlive(pid)
	})
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) is dead but not yet reaped.
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}

// TestBadInput checks that bad input gets a clear error and changes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.ok("project", "create", "p")
	c.ok("branch", "create", "p/main")

	r := c.kk("flow", "run", "nope/main")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `project "nope" does not exist`)
	r = c.kk("flow", "run", "p/nope")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `branch "nope" does not exist`)

	// Invalid schemas: rejected with positions, nothing stored.
	bad := writeFile(t, "bad.py", "def stage(ctx):\n    return {\n        \"parent\": \"root\",\n        \"jobz\": [],\n    }\n")
	r = c.kk("stage", "apply", "p/main", bad)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "bad.py:4:9")
	require.Contains(t, r.stderr, "jobz")
	syntax := writeFile(t, "syntax.py", "def stage(ctx):\n    return {\"parent\": \"root\",,}\n")
	r = c.kk("schema", "check", syntax)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "syntax.py:2:")
	var stages []map[string]any
	c.okJSON(&stages, "stage", "list", "p/main")
	require.Empty(t, stages)

	// Usage errors exit 2.
	r = c.kk("flow", "run")
	require.Equal(t, 2, r.code)
	r = c.kk("project", "list", "-o", "xml")
	require.Equal(t, 2, r.code)

	// Wrong token: 401 with a JSON body.
	status, body := c.rawRequest("GET", "/api/v1/projects", "kkt_wrong", nil)
	require.Equal(t, 401, status)
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &eb), "body: %s", body)
	require.Equal(t, "unauthorized", eb.Error.Code)

	// Malformed JSON to endpoints: 400 with a JSON body, nothing created.
	tok := c.token()
	for _, ep := range []struct{ method, path string }{
		{"POST", "/api/v1/projects"},
		{"POST", "/api/v1/projects/p/branches"},
		{"POST", "/api/v1/login"},
		{"POST", "/api/v1/groups"},
		{"POST", "/api/v1/agent/register"},
		{"POST", "/api/v1/schema/check"},
	} {
		for _, payload := range []string{"{", "[1,2]", `{"name": 5}`, `{"unknown_field": 1}`, ""} {
			status, body := c.rawRequest(ep.method, ep.path, tok, strings.NewReader(payload))
			require.Equal(t, 400, status, "%s %s with %q: %s", ep.method, ep.path, payload, body)
			require.NoError(t, json.Unmarshal(body, &eb), "body: %s", body)
			require.NotEmpty(t, eb.Error.Message)
		}
	}
	var projects []map[string]any
	c.okJSON(&projects, "project", "list")
	require.Len(t, projects, 1)
}

// token reads the API token kk login stored.
func (c *cluster) token() string {
	c.t.Helper()
	b, err := os.ReadFile(c.cfg)
	require.NoError(c.t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == "token" {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	c.t.Fatalf("no token in %s:\n%s", c.cfg, b)
	return ""
}
