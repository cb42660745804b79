package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/blob/blobtest"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
)

// transcript records every response an agent got, headers and body.
type transcript struct {
	t     *testing.T
	base  string
	lines []string
}

// call sends a request and returns the response body; body is nil, a
// string (raw) or a value sent as JSON.
func (tr *transcript) call(method, path, token string, body any, wantStatus int) []byte {
	tr.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(tr.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, tr.base+path, rd)
	require.NoError(tr.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tr.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(tr.t, err)
	require.Equal(tr.t, wantStatus, resp.StatusCode, "%s %s: %s", method, path, out)
	var hdr bytes.Buffer
	require.NoError(tr.t, resp.Header.Write(&hdr))
	tr.lines = append(tr.lines, fmt.Sprintf("%s %s -> %d\n%s\n%s", method, path, resp.StatusCode, hdr.String(), out))
	return out
}

// TestS3StorageNeverReachesAgents runs kkd on a real MinIO (s3:// storage)
// and goes through every agent route, as an agent would: the MinIO
// credentials appear in no assignment and no response. It also checks that
// the job's log is archived to the bucket and read back from there.
func TestS3StorageNeverReachesAgents(t *testing.T) {
	t.Parallel()
	m := blobtest.StartMinIO(t)
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	regKey := auth.NewSecret(24)
	go func() {
		done <- Serve(ctx, Options{
			Listen: "127.0.0.1:0", DataDir: t.TempDir(), Storage: m.URL("kk-daemon"),
			AdminPassword: "admin-password", RegistrationKey: regKey, Version: "test",
			Stdout: io.Discard, Stderr: io.Discard, Logger: slog.New(slog.DiscardHandler),
			ListenerReady: func(addr string) { ready <- addr },
		})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("kkd stopped: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	user := &transcript{t: t, base: addr + api.Prefix}
	var login api.LoginResponse
	require.NoError(t, json.Unmarshal(user.call("POST", "/login", "", api.LoginRequest{User: "admin", Password: "admin-password"}, http.StatusOK), &login))
	tok := login.Token
	user.call("POST", "/projects", tok, api.CreateProject{Name: "proj"}, http.StatusCreated)
	var br ci.Branch
	require.NoError(t, json.Unmarshal(user.call("POST", "/projects/proj/branches", tok, api.CreateBranch{Name: "main"}, http.StatusCreated), &br))
	code := `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "steps": [{"tool": "shell", "name": "hello", "cmd": "echo hello"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`
	user.call("PUT", fmt.Sprintf("/branches/%d/stages/build", br.ID), tok, api.PutStage{Code: code}, http.StatusOK)

	ag := &transcript{t: t, base: addr + api.Prefix}
	var reg api.RegisterResponse
	require.NoError(t, json.Unmarshal(ag.call("POST", "/agent/register", "", api.Register{
		UUID: "0d9f1a5e-2f6c-4b7a-9a51-3c2b8e1f4d77", Name: "builder", EnrollSecret: auth.NewSecret(32), RegistrationKey: regKey,
		HostInfo: ci.HostInfo{OS: "linux", System: "debian-12", Arch: "amd64", CPUs: 2},
	}, http.StatusOK), &reg))
	require.True(t, reg.Authorized, reg.Message)
	cred := reg.Credential

	user.call("POST", fmt.Sprintf("/branches/%d/flows", br.ID), tok, api.CreateFlow{}, http.StatusCreated)
	var asg api.Assignment
	require.NoError(t, json.Unmarshal(ag.call("POST", "/agent/work?wait=10", cred, nil, http.StatusOK), &asg))
	j := fmt.Sprintf("/agent/jobs/%d", asg.JobID)
	n := asg.Attempt
	ag.call("POST", j+"/start", cred, api.AttemptRequest{Attempt: n}, http.StatusNoContent)
	ag.call("POST", j+"/heartbeat", cred, api.AttemptRequest{Attempt: n}, http.StatusOK)
	ag.call("POST", fmt.Sprintf("%s/steps/0/logs?attempt=%d&seq=0", j, n), cred, "hello from the job\n", http.StatusNoContent)
	var art api.Artifact
	require.NoError(t, json.Unmarshal(ag.call("PUT", fmt.Sprintf("%s/artifacts?attempt=%d&path=out/report.html&report_entry=1", j, n), cred, "<p>report</p>", http.StatusCreated), &art))
	ag.call("GET", fmt.Sprintf("%s/artifacts?attempt=%d", j, n), cred, nil, http.StatusOK)
	require.Equal(t, "<p>report</p>", string(ag.call("GET", fmt.Sprintf("%s/artifacts/%d?attempt=%d", j, art.ID, n), cred, nil, http.StatusOK)))
	ag.call("PUT", fmt.Sprintf("%s/cache?attempt=%d&key=deps", j, n), cred, "cache bytes", http.StatusCreated)
	require.Equal(t, "cache bytes", string(ag.call("GET", fmt.Sprintf("%s/cache?attempt=%d&key=deps", j, n), cred, nil, http.StatusOK)))
	ag.call("GET", fmt.Sprintf("%s/cache?attempt=%d&key=missing", j, n), cred, nil, http.StatusNotFound)
	ag.call("POST", j+"/steps/0", cred, api.StepResult{Attempt: n, Status: ci.StepOK}, http.StatusNoContent)
	ag.call("POST", j+"/complete", cred, api.CompleteJob{Attempt: n, Result: ci.JobOK}, http.StatusNoContent)
	ag.call("POST", "/agent/work?wait=0", cred, nil, http.StatusNoContent)
	ag.call("PUT", fmt.Sprintf("%s/artifacts?attempt=%d&path=late.txt", j, n), cred, "late", http.StatusConflict)

	// The public URL works without a token, and the bytes are in MinIO.
	resp, err := http.Get(art.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "<p>report</p>", string(body))
	bucket, err := blob.Open(t.Context(), m.URL("kk-daemon"))
	require.NoError(t, err)

	// The log is archived to the bucket once the job completed.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := bucket.Stat(t.Context(), logs.ArchiveKey(asg.JobID)); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the job's log was not archived to MinIO")
		<-tick.C
	}
	logText := string(user.call("GET", fmt.Sprintf("/jobs/%d/logs", asg.JobID), tok, nil, http.StatusOK))
	require.Equal(t, "==> step 0: shell (hello)\nhello from the job\n", logText)

	all := strings.Join(ag.lines, "\n")
	require.Contains(t, all, `"job_id"`, "the transcript holds the assignment")
	for _, secret := range []string{m.AccessKey, m.SecretKey, m.Endpoint, "kk-daemon"} {
		require.NotContains(t, all, secret, "an agent saw the blob store's %q", secret)
	}
}
