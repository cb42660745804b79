package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// client speaks the agent protocol (the "Agent protocol" routes of pkg/api,
// described in docs/agent-protocol.md) with one or several kkd replicas.
// Each method makes one request to the current server (see serverSet); when
// that server fails (no answer, 502/503/504) and another one has not failed
// recently, the request is sent to the next server at once, so the caller sees
// an error only when every server failed in a row. Retrying with backoff is
// then the caller's business. Non-2xx answers come back as *api.Error, so
// errors.Is(err, ci.ErrStaleAttempt) and ci.ErrUnauthorized work on them.
type client struct {
	servers *serverSet
	http    *http.Client
	// requestTimeout bounds requests that are not long polls; a long poll is
	// bounded by its wait plus requestTimeout.
	requestTimeout time.Duration

	mu         sync.Mutex
	credential string

	// refresh, when set, obtains a new credential after the server rejected
	// the current one (rotation): a register call with the enroll secret.
	refresh   func(ctx context.Context) (string, error)
	refreshMu sync.Mutex // one refresh at a time
}

// newClient returns a client of the servers in serverURLs, a list separated by
// commas (see ParseServerURLs).
func newClient(serverURLs string, hc *http.Client, requestTimeout time.Duration, log *slog.Logger) (*client, error) {
	urls, err := ParseServerURLs(serverURLs)
	if err != nil {
		return nil, err
	}
	return &client{servers: newServerSet(urls, log), http: hc, requestTimeout: requestTimeout}, nil
}

// NormalizeServerURL accepts "host:port" (Kraken's KRAKEN_SERVER_ADDR form) and
// full http(s) URLs, and drops a trailing slash. It returns kkd's base URL
// (without the API prefix).
func NormalizeServerURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("server URL is empty: pass -s URL or set KRAKEN_SERVER_ADDR")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("server URL %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("server URL %q has no host", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func (c *client) setCredential(cred string) {
	c.mu.Lock()
	c.credential = cred
	c.mu.Unlock()
}

func (c *client) getCredential() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credential
}

// do sends one request; a request the server rejects with 401 is sent once
// more after refreshing the credential (see client.refresh), so a rotated
// credential does not interrupt a running job.
func (c *client) do(ctx context.Context, path string, wait time.Duration, auth bool, body, out any) (int, error) {
	cred := c.getCredential()
	status, err := c.sendFailover(ctx, path, wait, auth, cred, body, out)
	if !auth || status != http.StatusUnauthorized || c.refresh == nil {
		return status, err
	}
	if rerr := c.refreshCredential(ctx, cred); rerr != nil {
		return status, err
	}
	return c.sendFailover(ctx, path, wait, auth, c.getCredential(), body, out)
}

// sendFailover sends the request to the current server and, while it fails
// over to a server that has not failed recently, to the next one (a held long
// poll whose connection dropped is held again on the next server at once).
// Re-sending is safe: every agent call is idempotent or a state update.
func (c *client) sendFailover(ctx context.Context, path string, wait time.Duration, auth bool, cred string, body, out any) (int, error) {
	for n := 1; ; n++ {
		i, base := c.servers.pick()
		status, err := c.send(ctx, base, path, wait, auth, cred, body, out)
		if ctx.Err() != nil {
			return status, err
		}
		if !c.servers.report(i, err) || n >= len(c.servers.urls) {
			return status, err
		}
	}
}

// refreshCredential replaces the rejected credential stale, unless another
// request did so meanwhile.
func (c *client) refreshCredential(ctx context.Context, stale string) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if c.getCredential() != stale {
		return nil
	}
	cred, err := c.refresh(ctx)
	if err != nil {
		return err
	}
	c.setCredential(cred)
	return nil
}

// send sends one request with credential cred. body is JSON-encoded unless it is json.RawMessage
// (sent as is) or []byte (sent raw as application/octet-stream). out, when not nil, receives the JSON answer of a
// 200. It returns the HTTP status.
func (c *client) send(parent context.Context, base, path string, wait time.Duration, auth bool, cred string, body, out any) (int, error) {
	timeout := c.requestTimeout
	if wait > 0 {
		timeout += wait
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()

	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case json.RawMessage:
		rd = bytes.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
		ctype = "application/octet-stream"
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+api.Prefix+path, rd)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, transport(parent, err) // a *url.Error: it names the method and URL
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, transport(parent, fmt.Errorf("POST %s%s: read response: %w", base, path, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, api.DecodeError(resp.StatusCode, data)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("POST %s: decode response: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

func waitQuery(wait time.Duration) string {
	return "?wait=" + strconv.Itoa(int(wait/time.Second))
}

// register announces the agent. The server holds the request up to wait while
// the agent is not authorized.
func (c *client) register(ctx context.Context, wait time.Duration, req api.Register) (api.RegisterResponse, error) {
	var resp api.RegisterResponse
	_, err := c.do(ctx, "/agent/register"+waitQuery(wait), wait, false, req, &resp)
	return resp, err
}

// work long-polls for an assignment; it returns nil when there is none.
func (c *client) work(ctx context.Context, wait time.Duration, req api.WorkRequest) (*api.Assignment, error) {
	var asg api.Assignment
	status, err := c.do(ctx, "/agent/work"+waitQuery(wait), wait, true, req, &asg)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent {
		return nil, nil
	}
	return &asg, nil
}

func jobPath(jobID int64) string { return "/agent/jobs/" + strconv.FormatInt(jobID, 10) }

// start tells the server the attempt is running.
func (c *client) start(ctx context.Context, jobID int64, attempt int) error {
	_, err := c.do(ctx, jobPath(jobID)+"/start", 0, true, api.AttemptRequest{Attempt: attempt}, nil)
	return err
}

// heartbeat renews the lease; the server holds it up to wait unless the job is
// cancelled meanwhile.
func (c *client) heartbeat(ctx context.Context, jobID int64, attempt int, wait time.Duration) (api.HeartbeatResponse, error) {
	var resp api.HeartbeatResponse
	_, err := c.do(ctx, jobPath(jobID)+"/heartbeat"+waitQuery(wait), wait, true, api.AttemptRequest{Attempt: attempt}, &resp)
	return resp, err
}

// stepResultJSON reports a step's state, an encoded api.StepResult.
func (c *client) stepResultJSON(ctx context.Context, jobID int64, idx int, res json.RawMessage) error {
	_, err := c.do(ctx, jobPath(jobID)+"/steps/"+strconv.Itoa(idx), 0, true, res, nil)
	return err
}

// logChunk sends one chunk of a step's log; re-sending a seq is a no-op.
func (c *client) logChunk(ctx context.Context, jobID int64, idx, attempt int, seq int64, data []byte) error {
	path := fmt.Sprintf("%s/steps/%d/logs?attempt=%d&seq=%d", jobPath(jobID), idx, attempt, seq)
	if data == nil {
		data = []byte{}
	}
	_, err := c.do(ctx, path, 0, true, data, nil)
	return err
}

// completeJSON reports the end of the job, an encoded api.CompleteJob.
func (c *client) completeJSON(ctx context.Context, jobID int64, req json.RawMessage) error {
	_, err := c.do(ctx, jobPath(jobID)+"/complete", 0, true, req, nil)
	return err
}

// retryable tells whether a failed call may succeed when repeated: network
// errors, 5xx, 408 and 429. Other API errors are final.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return !errors.Is(err, context.Canceled)
	}
	return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusRequestTimeout
}

// isStale tells whether err is the server's stale_attempt fencing answer.
func isStale(err error) bool { return errors.Is(err, ci.ErrStaleAttempt) }

// isUnauthorized tells whether the server rejected the credential.
func isUnauthorized(err error) bool { return errors.Is(err, ci.ErrUnauthorized) }
