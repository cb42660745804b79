package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

const uploadStage = `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "package",
            "steps": [{"tool": "shell", "name": "pack", "cmd": "true"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

// rawAgent registers an agent over HTTP with the registration key and
// returns its credential: the test then speaks the agent protocol itself.
func (c *cluster) rawAgent(key, name string) string {
	c.t.Helper()
	body, err := json.Marshal(api.Register{
		UUID: uuid.NewString(), Name: name, EnrollSecret: fmt.Sprintf("%064d", 7), RegistrationKey: key,
		HostInfo: ci.HostInfo{OS: "linux", System: "debian-12", Arch: "amd64", CPUs: 1},
	})
	require.NoError(c.t, err)
	status, out := c.rawRequest("POST", api.Prefix+"/agent/register", "", bytes.NewReader(body))
	require.Equal(c.t, http.StatusOK, status, "%s", out)
	var rr api.RegisterResponse
	require.NoError(c.t, json.Unmarshal(out, &rr))
	require.True(c.t, rr.Authorized, rr.Message)
	return rr.Credential
}

// TestArtifactsEndToEnd: an agent uploads an artifact through kkd, `kk
// artifacts list` shows it and `kk artifacts get` downloads it unchanged;
// the job's log, archived once the job completed, still reads the same.
func TestArtifactsEndToEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "--agent-registration-key", "e2e-artifacts-key")
	c.ok("project", "create", "arts")
	c.ok("branch", "create", "arts/main")
	c.ok("stage", "apply", "arts/main", writeFile(t, "package.py", uploadStage))
	cred := c.rawAgent("e2e-artifacts-key", "uploader")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "arts/main")
	status, out := c.rawRequest("POST", api.Prefix+"/agent/work?wait=10", cred, nil)
	require.Equal(t, http.StatusOK, status, "%s", out)
	var asg api.Assignment
	require.NoError(t, json.Unmarshal(out, &asg))
	job := fmt.Sprintf("%s/agent/jobs/%d", api.Prefix, asg.JobID)
	post := func(path string, v any, want int) {
		t.Helper()
		b, err := json.Marshal(v)
		require.NoError(t, err)
		status, out := c.rawRequest("POST", job+path, cred, bytes.NewReader(b))
		require.Equal(t, want, status, "%s", out)
	}
	post("/start", api.AttemptRequest{Attempt: asg.Attempt}, http.StatusNoContent)
	status, out = c.rawRequest("POST", fmt.Sprintf("%s/steps/0/logs?attempt=%d&seq=0", job, asg.Attempt), cred, bytes.NewReader([]byte("packing\n")))
	require.Equal(t, http.StatusNoContent, status, "%s", out)

	data := make([]byte, 3<<20+17) // a few MiB, not a multiple of any buffer
	_, _ = rand.Read(data)
	status, out = c.rawRequest("PUT", fmt.Sprintf("%s/artifacts?attempt=%d&path=dist/app.bin", job, asg.Attempt), cred, bytes.NewReader(data))
	require.Equal(t, http.StatusCreated, status, "%s", out)
	var art api.Artifact
	require.NoError(t, json.Unmarshal(out, &art))
	post("/steps/0", api.StepResult{Attempt: asg.Attempt, Status: ci.StepOK}, http.StatusNoContent)
	post("/complete", api.CompleteJob{Attempt: asg.Attempt, Result: ci.JobOK}, http.StatusNoContent)

	var list []api.Artifact
	c.okJSON(&list, "artifacts", "list", fmt.Sprintf("flow/%d", f.ID))
	require.Len(t, list, 1)
	require.Equal(t, art.ID, list[0].ID)
	require.Equal(t, "dist/app.bin", list[0].Path)
	require.Equal(t, int64(len(data)), list[0].Size)
	c.okJSON(&list, "artifacts", "list", fmt.Sprintf("run/%d", art.RunID))
	require.Len(t, list, 1)
	require.Contains(t, c.ok("artifacts", "list", fmt.Sprint(f.ID)), "dist/app.bin")

	dest := filepath.Join(t.TempDir(), "app.bin")
	c.ok("artifacts", "get", fmt.Sprint(art.ID), "-O", dest)
	got, err := os.ReadFile(dest)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the downloaded artifact differs")
	r := c.kk("artifacts", "get", fmt.Sprint(art.ID), "-O", dest)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--force")

	// The log is archived to the blob store (the data dir's blobs/) and reads the same.
	archive := filepath.Join(c.dataDir, "blobs", "logs", fmt.Sprintf("%d.gz", asg.JobID))
	waitFor(t, 20*time.Second, "the job's log to be archived", func() bool {
		_, err := os.Stat(archive)
		return err == nil
	})
	require.Equal(t, "==> step 0: shell (pack)\npacking\n", c.ok("job", "logs", fmt.Sprint(asg.JobID)))
}
