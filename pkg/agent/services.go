package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/tools"
)

// servicesRetryBudget bounds how long a tool's call to kkd is retried while
// kkd is unreachable; the step then fails with the last error instead of
// hanging until the job times out.
const servicesRetryBudget = 5 * time.Minute

// stepServices implements tools.Services for one step of a job: the agent
// routes of artifacts, caches, results and data (pkg/api/assets.go), on the
// agent's client (same credential and refresh), with the job's retry policy
// and fencing: a refused attempt abandons the job like the other job writes.
type stepServices struct {
	r    *jobRunner
	step int
	out  io.Writer // the step's log, told about retries
	log  *slog.Logger
}

var _ tools.Services = (*stepServices)(nil)

func (r *jobRunner) services(step int, out io.Writer, log *slog.Logger) *stepServices {
	return &stepServices{r: r, step: step, out: out, log: log}
}

// localError marks a failure on the agent's side of a transfer (reading the
// file to send, writing what was received): retrying does not help.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// errCredentialRefreshed says a request was refused with 401 and the
// credential has been refreshed: the request may be sent again at once.
var errCredentialRefreshed = errors.New("agent credential refreshed")

// retry calls try until it succeeds, fails for good, or the retry budget is
// spent. what names the call in errors and in the step's log.
func (s *stepServices) retry(ctx context.Context, what string, try func(ctx context.Context) error) error {
	bo := s.r.backoff()
	giveUp := time.Now().Add(servicesRetryBudget)
	refreshed := false
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		var le *localError
		switch {
		case errors.As(err, &le):
			return fmt.Errorf("%s: %w", what, le.err)
		case errors.Is(err, errCredentialRefreshed) && !refreshed:
			refreshed = true
			continue
		case errors.Is(err, errServerSwitched) && ctx.Err() == nil:
			s.log.Info("call to kkd failed; sending it to the next server", "call", what, "err", err)
			continue
		case jobFatal(err):
			s.r.abandon(err)
			return fmt.Errorf("%s: %w", what, err)
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		case !retryable(err):
			return fmt.Errorf("%s: %w", what, err)
		}
		d := bo.next()
		if time.Now().Add(d).After(giveUp) {
			return fmt.Errorf("%s: kkd could not be reached for %s: %w", what, servicesRetryBudget, err)
		}
		s.log.Warn("call to kkd failed; retrying", "call", what, "err", err, "retry_in", d.Round(time.Millisecond))
		fmt.Fprintf(s.out, "kk: %s failed (%v); retrying in %s\n", what, err, d.Round(time.Millisecond))
		if !sleepCtx(ctx, d) {
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		}
	}
}

func (s *stepServices) jobPath() string { return jobPath(s.r.asg.JobID) }

func (s *stepServices) query(kv ...string) string {
	q := url.Values{"attempt": {strconv.Itoa(s.r.asg.Attempt)}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return "?" + q.Encode()
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// UploadArtifact implements tools.Services.
func (s *stepServices) UploadArtifact(ctx context.Context, up tools.ArtifactUpload, open func() (io.ReadCloser, error)) (api.Artifact, error) {
	var art api.Artifact
	path := s.jobPath() + "/artifacts" + s.query("path", up.Path, "public", boolParam(up.Public || up.ReportEntry),
		"report_entry", boolParam(up.ReportEntry))
	err := s.retry(ctx, "upload artifact "+up.Path, func(ctx context.Context) error {
		return s.r.client.sendBody(ctx, http.MethodPut, path, open, up.Size, &art)
	})
	return art, err
}

// ListArtifacts implements tools.Services.
func (s *stepServices) ListArtifacts(ctx context.Context) ([]api.Artifact, error) {
	var arts []api.Artifact
	path := s.jobPath() + "/artifacts" + s.query()
	err := s.retry(ctx, "list the flow's artifacts", func(ctx context.Context) error {
		arts = nil
		return s.r.client.getBody(ctx, path, func(body io.Reader) error {
			if err := json.NewDecoder(body).Decode(&arts); err != nil {
				return fmt.Errorf("decode artifact list: %w", err)
			}
			return nil
		})
	})
	return arts, err
}

// DownloadArtifact implements tools.Services.
func (s *stepServices) DownloadArtifact(ctx context.Context, id int64, write func(io.Reader) error) error {
	path := s.jobPath() + "/artifacts/" + strconv.FormatInt(id, 10) + s.query()
	return s.retry(ctx, fmt.Sprintf("download artifact %d", id), func(ctx context.Context) error {
		err := s.r.client.getBody(ctx, path, write)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			// The artifact went away since it was listed: not the job.
			return &localError{fmt.Errorf("artifact %d is no longer stored: %w", id, err)}
		}
		return err
	})
}

// SaveCache implements tools.Services.
func (s *stepServices) SaveCache(ctx context.Context, key string, expiry time.Duration, open func() (io.ReadCloser, error)) (api.CacheEntry, error) {
	var ent api.CacheEntry
	kv := []string{"key", key}
	if expiry > 0 {
		kv = append(kv, "expiry", strconv.FormatInt(int64(expiry/time.Second), 10))
	}
	path := s.jobPath() + "/cache" + s.query(kv...)
	err := s.retry(ctx, "save cache "+key, func(ctx context.Context) error {
		return s.r.client.sendBody(ctx, http.MethodPut, path, open, -1, &ent)
	})
	return ent, err
}

// RestoreCache implements tools.Services.
func (s *stepServices) RestoreCache(ctx context.Context, key string, extract func(io.Reader) error) (bool, error) {
	path := s.jobPath() + "/cache" + s.query("key", key)
	hit := true
	err := s.retry(ctx, "restore cache "+key, func(ctx context.Context) error {
		err := s.r.client.getBody(ctx, path, extract)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			hit = false // 404 not_found: no entry under this key
			return nil
		}
		return err
	})
	return hit && err == nil, err
}

// ReportResults implements tools.Services.
func (s *stepServices) ReportResults(ctx context.Context, tests []api.TestResult, issues []api.Issue) error {
	if len(tests) == 0 && len(issues) == 0 {
		return nil
	}
	tests, issues = s.redactResults(tests, issues)
	batch := api.ResultsBatch{Attempt: s.r.asg.Attempt, Step: s.step, Tests: tests, Issues: issues}
	return s.retry(ctx, "report results", func(ctx context.Context) error {
		_, err := s.r.client.do(ctx, s.jobPath()+"/results", 0, true, batch, nil)
		return err
	})
}

// redactResults returns copies of tests and issues with the job's secrets
// redacted from every text a test or a linter may have printed them into.
func (s *stepServices) redactResults(tests []api.TestResult, issues []api.Issue) ([]api.TestResult, []api.Issue) {
	red := s.r.out.red.text
	ts := make([]api.TestResult, len(tests))
	for i, t := range tests {
		t.Name, t.Message, t.Cmd = red(t.Name), red(t.Message), red(t.Cmd)
		ts[i] = t
	}
	is := make([]api.Issue, len(issues))
	for i, is1 := range issues {
		is1.Path, is1.Symbol, is1.Message = red(is1.Path), red(is1.Symbol), red(is1.Message)
		is[i] = is1
	}
	return ts, is
}

// Data implements tools.Services. A secret in the value or the jq program is
// redacted like output (the document is visible to every later stage and in
// the API); kkd then refuses a value that is no longer valid JSON.
func (s *stepServices) Data(ctx context.Context, op api.DataOp) (api.DataValue, error) {
	op.Attempt = s.r.asg.Attempt
	op.Expr = s.r.out.red.text(op.Expr)
	if len(op.Value) > 0 {
		op.Value = json.RawMessage(s.r.out.red.text(string(op.Value)))
	}
	var val api.DataValue
	err := s.retry(ctx, "data "+op.Op, func(ctx context.Context) error {
		val = api.DataValue{}
		_, err := s.r.client.do(ctx, s.jobPath()+"/data", 0, true, op, &val)
		return err
	})
	return val, err
}

// Streaming transport. client.do sends small JSON bodies; blobs go through
// sendBody and getBody, which never hold a whole body in memory. A transfer
// is bounded by an idle timeout (requestTimeout without progress), not by a
// total one, so a big artifact on a slow link is fine.

// sendBody sends the body open returns with method to path, and decodes the
// JSON answer into out. size is the body's length (-1: unknown, chunked).
func (c *client) sendBody(ctx context.Context, method, path string, open func() (io.ReadCloser, error), size int64, out any) error {
	src, err := open()
	if err != nil {
		return &localError{err}
	}
	tracked := &trackedReader{r: src}
	defer src.Close()
	ctx, idle := withIdleTimeout(ctx, c.requestTimeout)
	defer idle.stop()
	resp, err := c.stream(ctx, method, path, progressReader{tracked, idle}, size)
	if err != nil {
		if rerr := tracked.failed(); rerr != nil {
			return &localError{rerr}
		}
		return idle.explain(err)
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(progressReader{resp.Body, idle}).Decode(out); err != nil {
		return idle.explain(fmt.Errorf("%s %s: decode response: %w", method, path, err))
	}
	return nil
}

// getBody GETs path and hands the response body to read. A failure to read
// the body is a transfer error (retried when transient); read's other errors
// are local.
func (c *client) getBody(ctx context.Context, path string, read func(io.Reader) error) error {
	ctx, idle := withIdleTimeout(ctx, c.requestTimeout)
	defer idle.stop()
	resp, err := c.stream(ctx, http.MethodGet, path, nil, 0)
	if err != nil {
		return idle.explain(err)
	}
	defer resp.Body.Close()
	body := &trackedReader{r: progressReader{resp.Body, idle}}
	if err := read(body); err != nil {
		if rerr := body.failed(); rerr != nil {
			return idle.explain(fmt.Errorf("GET %s: read response: %w", path, rerr))
		}
		return &localError{err}
	}
	return nil
}

// stream sends one request and returns the 2xx response (its body to be
// closed by the caller). Non-2xx answers come back as *api.Error; a 401 first
// refreshes the credential and returns errCredentialRefreshed.
//
// The request goes to the current server; when it fails there (see
// serverSet), the error is wrapped with errServerSwitched if the next server
// may be tried at once. ctx is the transfer's context (with its idle timer),
// so a stalled transfer counts as the server's failure too.
func (c *client) stream(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	i, base := c.servers.pick()
	resp, err := c.streamTo(ctx, base, method, path, body, size)
	if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errIdle) {
		return resp, err
	}
	return resp, retryAt(err, c.servers.report(i, err))
}

func (c *client) streamTo(ctx context.Context, base, method, path string, body io.Reader, size int64) (*http.Response, error) {
	cred := c.getCredential()
	req, err := http.NewRequestWithContext(ctx, method, base+api.Prefix+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &transportError{err} // a *url.Error: it names the method and URL
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp, nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	aerr := api.DecodeError(resp.StatusCode, data)
	if resp.StatusCode == http.StatusUnauthorized && c.refresh != nil {
		if rerr := c.refreshCredential(ctx, cred); rerr == nil {
			return nil, fmt.Errorf("%w: %w", errCredentialRefreshed, aerr)
		}
	}
	return nil, aerr
}

// trackedReader remembers the first error (other than EOF) of its reader.
type trackedReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		t.mu.Unlock()
	}
	return n, err
}

func (t *trackedReader) failed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// idleTimer cancels a transfer's context when no byte moved for a while.
type idleTimer struct {
	ctx    context.Context
	d      time.Duration
	t      *time.Timer
	cancel context.CancelCauseFunc
}

var errIdle = errors.New("transfer stalled")

func withIdleTimeout(ctx context.Context, d time.Duration) (context.Context, *idleTimer) {
	ctx, cancel := context.WithCancelCause(ctx)
	it := &idleTimer{ctx: ctx, d: d, cancel: cancel}
	if d > 0 {
		it.t = time.AfterFunc(d, func() { cancel(fmt.Errorf("%w: nothing sent or received for %s", errIdle, d)) })
	}
	return ctx, it
}

func (it *idleTimer) progress() {
	if it.t != nil {
		it.t.Reset(it.d)
	}
}

func (it *idleTimer) stop() {
	if it.t != nil {
		it.t.Stop()
	}
	it.cancel(nil)
}

// explain turns the cancellation by the idle timer into a retryable error
// that says what happened.
func (it *idleTimer) explain(err error) error {
	if cause := context.Cause(it.ctx); errors.Is(cause, errIdle) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

// progressReader resets the idle timer on every read.
type progressReader struct {
	r  io.Reader
	it *idleTimer
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.it.progress()
	}
	return n, err
}
