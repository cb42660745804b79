package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// simAgent speaks the agent protocol (docs/agent-protocol.md) over HTTP like
// kkagent does, without running anything: the benchmark decides what it does
// with each assignment.
type simAgent struct {
	base string
	http *http.Client
	name string
	cred string
	// requests counts the HTTP requests the agent sent.
	requests *atomic.Int64
}

// newTransport returns a transport for many simulated agents sharing one
// process: enough idle connections to keep one per agent.
func newTransport(conns int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns + 100
	t.MaxIdleConnsPerHost = conns + 100
	return t
}

// registerAgent registers a new agent with the registration key and returns
// it authorized.
func registerAgent(ctx context.Context, base string, hc *http.Client, name string, requests *atomic.Int64) (*simAgent, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("enroll secret: %w", err)
	}
	a := &simAgent{base: base, http: hc, name: name, requests: requests}
	req := api.Register{
		UUID: uuid.NewString(), Name: name, EnrollSecret: hex.EncodeToString(secret),
		HostInfo: ci.HostInfo{OS: "linux", System: "bench", Arch: "amd64", CPUs: 1, Hostname: name,
			Isolation: "bare-metal", AgentVersion: "kkbench"},
		RegistrationKey: registrationKey,
	}
	var resp api.RegisterResponse
	if _, err := a.call(ctx, "/agent/register?wait=30", req, &resp); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	if !resp.Authorized || resp.Credential == "" {
		return nil, fmt.Errorf("register %s: not authorized: %s", name, resp.Message)
	}
	a.cred = resp.Credential
	return a, nil
}

// call POSTs in (JSON, or raw bytes when in is []byte) to the agent route p
// and decodes a JSON answer into out. It returns the status.
func (a *simAgent) call(ctx context.Context, p string, in, out any) (int, error) {
	var body []byte
	ctype := "application/json"
	if b, ok := in.([]byte); ok {
		body, ctype = b, "application/octet-stream"
	} else {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, fmt.Errorf("encode: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+api.Prefix+p, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	if a.cred != "" {
		req.Header.Set("Authorization", "Bearer "+a.cred)
	}
	a.requests.Add(1)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, fmt.Errorf("POST %s: %w", p, api.DecodeError(resp.StatusCode, b))
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("POST %s: decode: %w", p, err)
		}
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, nil
}

// poll holds one work long-poll; ok is false on a 204.
func (a *simAgent) poll(ctx context.Context, wait int) (api.Assignment, bool, error) {
	var asg api.Assignment
	st, err := a.call(ctx, "/agent/work?wait="+strconv.Itoa(wait), api.WorkRequest{}, &asg)
	if err != nil {
		return asg, false, err
	}
	return asg, st == http.StatusOK, nil
}

// workLoop polls for work until ctx ends and calls handle with each
// assignment and the moment it arrived.
func (a *simAgent) workLoop(ctx context.Context, wait int, handle func(ctx context.Context, a *simAgent, asg api.Assignment, at time.Time), polls *atomic.Int64) error {
	for ctx.Err() == nil {
		polls.Add(1)
		asg, ok, err := a.poll(ctx, wait)
		at := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ok {
			handle(ctx, a, asg, at)
		}
	}
	return nil
}

// jobPath is the agent route of a job.
func jobPath(jobID int64, rest string) string {
	return "/agent/jobs/" + strconv.FormatInt(jobID, 10) + rest
}

// heartbeat holds heartbeats for the job until ctx ends, as kkagent does
// from the assignment to the end of the job.
func (a *simAgent) heartbeat(ctx context.Context, asg api.Assignment) {
	for ctx.Err() == nil {
		var hb api.HeartbeatResponse
		if _, err := a.call(ctx, jobPath(asg.JobID, "/heartbeat?wait=10"), api.AttemptRequest{Attempt: asg.Attempt}, &hb); err != nil {
			return
		}
	}
}

// begin sends start and the first step's running result.
func (a *simAgent) begin(ctx context.Context, asg api.Assignment) error {
	if _, err := a.call(ctx, jobPath(asg.JobID, "/start"), api.AttemptRequest{Attempt: asg.Attempt}, nil); err != nil {
		return err
	}
	now := time.Now()
	_, err := a.call(ctx, jobPath(asg.JobID, "/steps/0"), api.StepResult{Attempt: asg.Attempt, Status: ci.StepRunning, Started: &now}, nil)
	return err
}

// chunk sends log chunk seq of step 0.
func (a *simAgent) chunk(ctx context.Context, asg api.Assignment, seq int, data []byte) error {
	_, err := a.call(ctx, jobPath(asg.JobID, fmt.Sprintf("/steps/0/logs?attempt=%d&seq=%d", asg.Attempt, seq)), data, nil)
	return err
}

// finish reports every step ok and completes the job ok.
func (a *simAgent) finish(ctx context.Context, asg api.Assignment) error {
	now := time.Now()
	zero := 0
	for _, s := range asg.Steps {
		if _, err := a.call(ctx, jobPath(asg.JobID, "/steps/"+strconv.Itoa(s.Index)),
			api.StepResult{Attempt: asg.Attempt, Status: ci.StepOK, ExitCode: &zero, Started: &now, Finished: &now}, nil); err != nil {
			return err
		}
	}
	_, err := a.call(ctx, jobPath(asg.JobID, "/complete"), api.CompleteJob{Attempt: asg.Attempt, Result: ci.JobOK}, nil)
	return err
}

// runTrivial runs a job the way kkagent runs `true`: heartbeat held
// meanwhile, start, step running, step ok, complete.
func (a *simAgent) runTrivial(ctx context.Context, asg api.Assignment) error {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.heartbeat(hctx, asg)
	if err := a.begin(ctx, asg); err != nil {
		return err
	}
	return a.finish(ctx, asg)
}
