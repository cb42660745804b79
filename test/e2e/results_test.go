package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const resultsRegKey = "e2e-results-key"

// testsStage is one job whose results the test posts itself, as an agent
// running a test tool would.
const testsStage = `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "unit",
            "steps": [{"tool": "shell", "cmd": "echo tests"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

// wireAgent speaks the agent protocol over raw HTTP with its credential.
type wireAgent struct {
	c    *cluster
	name string
	cred string
}

func (c *cluster) wireAgent(name string) *wireAgent {
	c.t.Helper()
	uuid := make([]byte, 16)
	_, _ = rand.Read(uuid)
	uuid[6] = uuid[6]&0x0f | 0x40
	uuid[8] = uuid[8]&0x3f | 0x80
	h := hex.EncodeToString(uuid)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	a := &wireAgent{c: c, name: name}
	var rr struct {
		Authorized bool   `json:"authorized"`
		Credential string `json:"credential"`
		Message    string `json:"message"`
	}
	a.post("/api/v1/agent/register", map[string]any{
		"uuid": h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:],
		"name": name, "enroll_secret": hex.EncodeToString(secret), "registration_key": resultsRegKey,
		"host_info": map[string]any{"os": "linux", "system": "debian-12", "cpus": 1},
	}, http.StatusOK, &rr)
	require.True(c.t, rr.Authorized, rr.Message)
	a.cred = rr.Credential
	return a
}

func (a *wireAgent) post(path string, body any, want int, out any) {
	a.c.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(a.c.t, err)
	status, resp := a.c.rawRequest("POST", path, a.cred, bytes.NewReader(b))
	require.Equal(a.c.t, want, status, "POST %s: %s", path, resp)
	if out != nil {
		require.NoError(a.c.t, json.Unmarshal(resp, out))
	}
}

// claim takes the job the scheduler gives this agent.
func (a *wireAgent) claim(jobID int64) int {
	a.c.t.Helper()
	var asg struct {
		JobID   int64 `json:"job_id"`
		Attempt int   `json:"attempt"`
	}
	a.post("/api/v1/agent/work?wait=20", map[string]any{}, http.StatusOK, &asg)
	require.Equal(a.c.t, jobID, asg.JobID, "agent %s got another job", a.name)
	a.post(fmt.Sprintf("/api/v1/agent/jobs/%d/start", jobID), map[string]any{"attempt": asg.Attempt}, http.StatusNoContent, nil)
	return asg.Attempt
}

// report posts the job's results: first every test as not-run (as a tool
// that collects its tests does), then the real statuses.
func (a *wireAgent) report(jobID int64, attempt int, statuses [][2]string) {
	a.c.t.Helper()
	var pre, real []map[string]any
	for _, s := range statuses {
		pre = append(pre, map[string]any{"name": s[0], "status": "not-run"})
		real = append(real, map[string]any{"name": s[0], "status": s[1], "duration": 0.5})
	}
	url := fmt.Sprintf("/api/v1/agent/jobs/%d/results", jobID)
	a.post(url, map[string]any{"attempt": attempt, "step": 0, "tests": pre}, http.StatusNoContent, nil)
	a.post(url, map[string]any{"attempt": attempt, "step": 0, "tests": real}, http.StatusNoContent, nil)
}

func (a *wireAgent) complete(jobID int64, attempt int) {
	a.c.t.Helper()
	a.post(fmt.Sprintf("/api/v1/agent/jobs/%d/complete", jobID), map[string]any{"attempt": attempt, "result": "ok"}, http.StatusNoContent, nil)
}

type testResultJSON struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	Change      string `json:"change"`
	Instability int    `json:"instability"`
	Age         int    `json:"age"`
	Relevancy   int    `json:"relevancy"`
	Analyzed    bool   `json:"analyzed"`
	FlowKind    string `json:"flow_kind"`
}

// analysed waits until the run's results are analysed and returns them by name.
func (c *cluster) analysed(runID int64) map[string]testResultJSON {
	c.t.Helper()
	id := strconv.FormatInt(runID, 10)
	waitFor(c.t, 30*time.Second, "results of run "+id+" to be analysed", func() bool {
		var r struct {
			Results struct {
				Analyzed bool `json:"analyzed"`
			} `json:"results"`
		}
		c.okJSON(&r, "run", "show", id)
		return r.Results.Analyzed
	})
	var rs []testResultJSON
	c.okJSON(&rs, "run", "results", id)
	out := map[string]testResultJSON{}
	for _, r := range rs {
		require.True(c.t, r.Analyzed)
		out[r.Name] = r
	}
	return out
}

// TestResultsHistoryEndToEnd: two CI flows where a test flips to failing,
// two concurrent CI flows completed in reverse order, and a DEV flow compared
// with the CI baseline, all through the agent protocol and `kk`.
func TestResultsHistoryEndToEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "--agent-registration-key", resultsRegKey)
	c.ok("project", "create", "res")
	c.ok("branch", "create", "res/main")
	c.ok("stage", "apply", "res/main", writeFile(t, "tests.py", testsStage))
	alice := c.wireAgent("alice")

	type started struct{ flow, run, job int64 }
	flow := func(dev bool) started {
		args := []string{"flow", "run", "res/main"}
		if dev {
			args = append(args, "--dev")
		}
		var f flowJSON
		c.okJSON(&f, args...)
		require.Len(t, f.Runs, 1)
		require.Len(t, f.Runs[0].Jobs, 1)
		return started{f.ID, f.Runs[0].ID, f.Runs[0].Jobs[0].ID}
	}
	run := func(a *wireAgent, s started, statuses ...[2]string) {
		attempt := a.claim(s.job)
		a.report(s.job, attempt, statuses)
		a.complete(s.job, attempt)
	}

	// Two CI flows: t1 flips to failing in the second.
	f1 := flow(false)
	run(alice, f1, [2]string{"t1", "passed"}, [2]string{"t2", "passed"})
	r1 := c.analysed(f1.run)
	assert.Equal(t, "new", r1["t1"].Change)
	f2 := flow(false)
	run(alice, f2, [2]string{"t1", "failed"}, [2]string{"t2", "passed"})
	r2 := c.analysed(f2.run)
	assert.Equal(t, testResultJSON{ID: r2["t1"].ID, Name: "t1", Status: "failed", Change: "regr", Instability: 1, Age: 0,
		Relevancy: 6, Analyzed: true, FlowKind: "ci"}, r2["t1"])
	assert.Equal(t, "no-change", r2["t2"].Change)
	assert.Equal(t, 1, r2["t2"].Age)

	// The table lists the regression first; --change filters.
	out := c.ok("run", "results", strconv.FormatInt(f2.run, 10))
	require.Regexp(t, `(?s)^JOB\s+TEST\s+STATUS\s+CHANGE.*\nunit\s+t1\s+failed\s+regr\s+1\s+0\s+6\n`, out)
	var regr []testResultJSON
	c.okJSON(&regr, "run", "results", strconv.FormatInt(f2.run, 10), "--change", "regr")
	require.Len(t, regr, 1)
	assert.Equal(t, "t1", regr[0].Name)

	// Two concurrent CI flows; the later one completes first. Its analysis
	// waits for the earlier one, so it sees t1 fixed in f3 and failing again.
	bob := c.wireAgent("bob")
	f3, f4 := flow(false), flow(false)
	a3 := alice.claim(f3.job)
	a4 := bob.claim(f4.job)
	bob.report(f4.job, a4, [][2]string{{"t1", "failed"}, {"t2", "passed"}})
	bob.complete(f4.job, a4)
	alice.report(f3.job, a3, [][2]string{{"t1", "passed"}, {"t2", "passed"}})
	alice.complete(f3.job, a3)
	r4 := c.analysed(f4.run)
	r3 := c.analysed(f3.run)
	assert.Equal(t, "fix", r3["t1"].Change)
	assert.Equal(t, 2, r3["t1"].Instability)
	assert.Equal(t, "regr", r4["t1"].Change, "compared with f3, not with f2")
	assert.Equal(t, 3, r4["t1"].Instability)
	assert.Equal(t, 3, r4["t2"].Age)

	// A DEV flow is compared with the latest CI result (f4).
	d := flow(true)
	run(alice, d, [2]string{"t1", "passed"}, [2]string{"t2", "failed"})
	rd := c.analysed(d.run)
	assert.Equal(t, "fix", rd["t1"].Change)
	assert.Equal(t, 3, rd["t1"].Instability, "copied from the CI baseline")
	assert.Equal(t, "regr", rd["t2"].Change)
	assert.Equal(t, 3, rd["t2"].Age, "copied from the CI baseline")
	assert.Equal(t, "dev", rd["t2"].FlowKind)

	// The test's history in the branch, newest first.
	var hist []testResultJSON
	c.okJSON(&hist, "test", "history", "res/main", "t1", "--limit", "3")
	require.Len(t, hist, 3)
	assert.Equal(t, []string{"dev", "ci", "ci"}, []string{hist[0].FlowKind, hist[1].FlowKind, hist[2].FlowKind})
	assert.Equal(t, []string{"passed", "failed", "passed"}, []string{hist[0].Status, hist[1].Status, hist[2].Status})

	// A bad batch is refused with a clear error and changes nothing.
	f5 := flow(false)
	a5 := alice.claim(f5.job)
	alice.post(fmt.Sprintf("/api/v1/agent/jobs/%d/results", f5.job), map[string]any{"attempt": a5, "tests": []map[string]any{{"name": "t1", "status": "green"}}},
		http.StatusBadRequest, nil)
	alice.complete(f5.job, a5)
	c.analysed(f5.run)
	var none []testResultJSON
	c.okJSON(&none, "run", "results", strconv.FormatInt(f5.run, 10))
	assert.Empty(t, none)
}
