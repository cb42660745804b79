package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// Batching of results: a batch goes to kkd when it holds reportBatch items
// or reportEvery after its first item, so results show up while a long test
// run goes on.
const (
	reportBatch = 200
	reportEvery = time.Second
	// reportFinal bounds the last delivery after the step's context ended.
	reportFinal = 30 * time.Second
)

// reporter sends a step's test results and issues to kkd in batches, from
// its own goroutine: producers (a command's output parser) never wait for
// kkd. A result whose name is already pending replaces it.
type reporter struct {
	svc  Services
	ctx  context.Context
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	tests   []api.TestResult
	byName  map[string]int
	issues  []api.Issue
	since   time.Time
	closed  bool
	err     error
	counts  map[string]int // final status counts of the tests sent
	nIssues int
}

func startReporter(ctx context.Context, svc Services) *reporter {
	r := &reporter{svc: svc, ctx: ctx, wake: make(chan struct{}, 1), done: make(chan struct{}),
		byName: map[string]int{}, counts: map[string]int{}}
	go r.loop()
	return r
}

func (r *reporter) loop() {
	defer close(r.done)
	t := time.NewTicker(reportEvery / 4)
	defer t.Stop()
	for {
		select {
		case <-r.wake:
		case <-t.C:
		case <-r.ctx.Done():
			return
		}
		r.mu.Lock()
		due := len(r.tests)+len(r.issues) >= reportBatch || (!r.since.IsZero() && time.Since(r.since) >= reportEvery)
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return
		}
		if due {
			if err := r.flush(r.ctx); err != nil {
				return
			}
		}
	}
}

func (r *reporter) added() {
	if r.since.IsZero() {
		r.since = time.Now()
	}
	if len(r.tests)+len(r.issues) >= reportBatch {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// test queues a test result.
func (r *reporter) test(t api.TestResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.byName[t.Name]; ok {
		r.tests[i] = t
	} else {
		r.byName[t.Name] = len(r.tests)
		r.tests = append(r.tests, t)
	}
	r.added()
}

// issue queues an issue.
func (r *reporter) issue(is api.Issue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issues = append(r.issues, is)
	r.added()
}

// flush sends what is pending.
func (r *reporter) flush(ctx context.Context) error {
	r.mu.Lock()
	tests, issues := r.tests, r.issues
	r.tests, r.issues, r.byName, r.since = nil, nil, map[string]int{}, time.Time{}
	if r.err != nil {
		r.mu.Unlock()
		return r.err
	}
	r.mu.Unlock()
	if len(tests) == 0 && len(issues) == 0 {
		return nil
	}
	err := r.svc.ReportResults(ctx, tests, issues)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.err == nil {
		r.err = err
	}
	if err == nil {
		for _, t := range tests {
			r.counts[t.Status]++
		}
		r.nIssues += len(issues)
	}
	return err
}

// close sends the rest and returns the first delivery error.
func (r *reporter) close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	<-r.done
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), reportFinal)
	defer cancel()
	return r.flush(ctx)
}

// summary describes what was sent, e.g. "12 passed, 1 failed".
func (r *reporter) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, s := range []string{api.TestPassed, api.TestFailed, api.TestError, api.TestDisabled, api.TestNotRun} {
		if n := r.counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if r.nIssues > 0 {
		parts = append(parts, fmt.Sprintf("%d issues", r.nIssues))
	}
	if len(parts) == 0 {
		return "no results"
	}
	return strings.Join(parts, ", ")
}

// failures counts the failed and erroneous tests sent.
func (r *reporter) failures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[api.TestFailed] + r.counts[api.TestError]
}

// lineWriter calls fn for every complete line written (with its newline);
// flush passes on an unterminated last line. Lines longer than 1 MiB are cut.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(line []byte)
}

const maxLine = 1 << 20

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLine {
				w.fn(w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i+1]...)
		w.fn(w.buf)
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.fn(w.buf)
		w.buf = w.buf[:0]
	}
}

// SplitArgs splits a parameter string into arguments like a POSIX shell
// does for words: blanks separate, single and double quotes group, a
// backslash escapes (not in single quotes). No expansion happens.
func SplitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// runCommand runs a tool's command in the environment and maps how it ended
// to a step result; ok is true when it exited (with any code).
func runCommand(ctx context.Context, env executor.Env, tool string, cmd executor.Command) (executor.Result, Result, bool) {
	res, err := env.Run(ctx, cmd)
	fail, ok := outcome(ctx, tool, cmd, res, err)
	return res, fail, ok
}

// outcome maps how a command ended to a step result; ok is true when it
// exited on its own (with any code but 127, "not found").
func outcome(ctx context.Context, tool string, cmd executor.Command, res executor.Result, err error) (Result, bool) {
	switch {
	case err != nil && isNotFound(err, res):
		return Result{Status: ci.StepError, Reason: ReasonExecError,
			Message: fmt.Sprintf("%s: %s is not installed in the job's system (%v); install it in the image or set the tool's *_exe parameter", tool, cmd.Argv[0], err)}, false
	case err != nil:
		return stepError(ctx, tool, err), false
	case res.TimedOut:
		return Result{Status: ci.StepTimeout, Reason: ReasonStepTimeout, Message: fmt.Sprintf("%s: step timed out after %s", tool, cmd.Timeout)}, false
	case res.Cancelled:
		if r, ok := interrupted(ctx); ok {
			return r, false
		}
		return Result{Status: ci.StepCancelled, Reason: ReasonCancelled, Message: "cancelled"}, false
	case res.ExitCode == 127:
		return Result{Status: ci.StepError, Reason: ReasonExecError, ExitCode: &res.ExitCode,
			Message: fmt.Sprintf("%s: %s is not installed in the job's system; install it in the image or set the tool's *_exe parameter", tool, cmd.Argv[0])}, false
	}
	return Result{}, true
}

// isNotFound tells whether a command could not start because its program is
// missing (the local executor says so with an error, containers exit 127).
func isNotFound(err error, res executor.Result) bool {
	if err == nil {
		return res.ExitCode == 127
	}
	return strings.Contains(err.Error(), "executable not found") || errors.Is(err, errNotFound)
}

var errNotFound = exec.ErrNotFound
