package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/logs"
)

// runningJob queues a job of `steps` steps, lets an agent claim and start it.
func (e *env) runningJob(t testing.TB, steps int) (testAgent, api.JobDetail) {
	t.Helper()
	fx := e.fixture(t, steps)
	a := e.agent(t, "alice")
	j := e.queueJob(t, fx)
	require.Equal(t, j.ID, e.claim(t, a).JobID)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/start", j.ID), api.AttemptRequest{Attempt: 1}, a.cred).ok(t, http.StatusNoContent, nil)
	return a, j
}

func (e *env) sendLog(t testing.TB, a testAgent, jobID int64, step, seq int, data string) {
	t.Helper()
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/steps/%d/logs?attempt=1&seq=%d", jobID, step, seq), data, a.cred).ok(t, http.StatusNoContent, nil)
}

func (e *env) complete(t testing.TB, a testAgent, jobID int64) {
	t.Helper()
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/complete", jobID), api.CompleteJob{Attempt: 1, Result: ci.JobOK}, a.cred).ok(t, http.StatusNoContent, nil)
}

func TestJobLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 3)
	e.sendLog(t, a, j.ID, 0, 0, "zero a\n")
	e.sendLog(t, a, j.ID, 0, 1, "zero b\n")
	e.sendLog(t, a, j.ID, 2, 0, "two\n")
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{name: "all steps with headers", query: "", want: "==> step 0: shell (step0)\nzero a\nzero b\n==> step 2: shell (step2)\ntwo\n"},
		{name: "one step", query: "?step=0", want: "zero a\nzero b\n"},
		{name: "step without output", query: "?step=1", want: ""},
		{name: "last step", query: "?step=2", want: "two\n"},
		{name: "follow=0", query: "?follow=0", want: "==> step 0: shell (step0)\nzero a\nzero b\n==> step 2: shell (step2)\ntwo\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs%s", j.ID, tc.query), nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
			require.Equal(t, tc.want, string(r.body))
		})
	}
}

// TestJobLogsRanges reads parts of a log by byte offsets and its tail, and
// follows it from an offset.
func TestJobLogsRanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 3)
	e.sendLog(t, a, j.ID, 0, 0, "zero a\n")
	e.sendLog(t, a, j.ID, 0, 1, "zero b\n")
	e.sendLog(t, a, j.ID, 2, 0, "two\n")
	full := "==> step 0: shell (step0)\nzero a\nzero b\n==> step 2: shell (step2)\ntwo\n"
	tests := []struct {
		name   string
		query  string
		want   string
		offset string
	}{
		{name: "from an offset", query: "?offset=26", want: full[26:], offset: "26"},
		{name: "a range", query: "?offset=26&limit=14", want: "zero a\nzero b\n", offset: "26"},
		{name: "a range past the end", query: "?offset=60&limit=1000", want: full[60:], offset: "60"},
		{name: "an offset past the end", query: "?offset=5000", want: "", offset: "5000"},
		{name: "the first bytes", query: "?limit=5", want: "==> s", offset: "0"},
		{name: "the tail", query: "?tail=10", want: full[len(full)-10:], offset: fmt.Sprint(len(full) - 10)},
		{name: "a tail longer than the log", query: "?tail=1000", want: full, offset: "0"},
		{name: "a range of one step", query: "?step=0&offset=7&limit=7", want: "zero b\n", offset: "7"},
		{name: "the tail of one step", query: "?step=0&tail=3", want: " b\n", offset: "11"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs%s", j.ID, tc.query), nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.Equal(t, tc.want, string(r.body))
			require.Equal(t, tc.offset, r.header.Get("X-Log-Offset"))
		})
	}

}

// TestJobLogsFollowFromOffset follows a log from a byte offset: the bytes
// before it are skipped, new output arrives as it is written.
func TestJobLogsFollowFromOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	e.sendLog(t, a, j.ID, 0, 0, "one\ntwo\n")
	head := len("==> step 0: shell (step0)\none\n")
	req := request(t, "GET", fmt.Sprintf("%s/jobs/%d/logs?follow=1&offset=%d", e.base, j.ID, head), nil, e.token)
	resp, err := http.DefaultClient.Do(req.WithContext(t.Context()))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, fmt.Sprint(head), resp.Header.Get("X-Log-Offset"))
	lr := readLines(resp.Body)
	require.Equal(t, "two\n", lr.next(t))
	e.sendLog(t, a, j.ID, 0, 1, "three\n")
	require.Equal(t, "three\n", lr.next(t))
}

// lineReader reads a streamed body line by line on its own goroutine.
type lineReader struct {
	lines chan string
	done  chan error // the body's end: nil for EOF
}

func readLines(body io.Reader) *lineReader {
	lr := &lineReader{lines: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		br := bufio.NewReader(body)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				lr.lines <- line
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				lr.done <- err
				return
			}
		}
	}()
	return lr
}

func (lr *lineReader) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-lr.lines:
		return l
	case err := <-lr.done:
		t.Fatalf("stream ended (%v) while a line was expected", err)
	case <-time.After(prompt):
		t.Fatalf("no line within %v", prompt)
	}
	return ""
}

// TestJobLogsFollow reads a followed log incrementally: each chunk arrives
// while the job runs, and the stream ends when the job completes.
func TestJobLogsFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 2)
	e.sendLog(t, a, j.ID, 0, 0, "before\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := request(t, "GET", fmt.Sprintf("%s/jobs/%d/logs?follow=1", e.base, j.ID), nil, e.token)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	lr := readLines(resp.Body)

	require.Equal(t, "==> step 0: shell (step0)\n", lr.next(t))
	require.Equal(t, "before\n", lr.next(t))
	waitFor(t, "the follower to subscribe", func() bool { return e.hub.Subscribers(logs.Key(j.ID)) == 1 })

	steps := []struct {
		step, seq int
		data      string
		want      []string
	}{
		{step: 0, seq: 1, data: "while running\n", want: []string{"while running\n"}},
		{step: 1, seq: 0, data: "next step\n", want: []string{"==> step 1: shell (step1)\n", "next step\n"}},
		{step: 1, seq: 1, data: "a line cut ", want: nil},
		{step: 1, seq: 2, data: "in two\n", want: []string{"a line cut in two\n"}},
	}
	for _, s := range steps {
		sent := time.Now()
		e.sendLog(t, a, j.ID, s.step, s.seq, s.data)
		for _, w := range s.want {
			require.Equal(t, w, lr.next(t))
		}
		if len(s.want) > 0 {
			t.Logf("chunk %d/%d reached the follower in %v", s.step, s.seq, time.Since(sent))
		}
	}

	completed := time.Now()
	e.complete(t, a, j.ID)
	select {
	case err := <-lr.done:
		require.NoError(t, err)
		t.Logf("follow ended %v after the job completed", time.Since(completed))
	case l := <-lr.lines:
		t.Fatalf("unexpected line %q", l)
	case <-time.After(prompt):
		t.Fatal("the stream did not end when the job completed")
	}
}

func TestJobLogsFollowCompletedJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	e.sendLog(t, a, j.ID, 0, 0, "done\n")
	e.complete(t, a, j.ID)
	start := time.Now()
	r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs?follow=true", j.ID), nil)
	require.Less(t, time.Since(start), prompt, "follow of a completed job returns at once, not after the fallback re-check")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "==> step 0: shell (step0)\ndone\n", string(r.body))
}

// TestJobLogsFollowCancelledQueuedJob: cancelling a job no agent took ends
// its followers too.
func TestJobLogsFollowCancelledQueuedJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	j := e.queueJob(t, fx)
	held := e.async(t, "GET", fmt.Sprintf("/jobs/%d/logs?follow=1", j.ID), nil, e.token)
	waitFor(t, "the follower to subscribe", func() bool { return e.hub.Subscribers(logs.Key(j.ID)) == 1 })
	e.user(t, "POST", fmt.Sprintf("/jobs/%d/cancel", j.ID), nil).ok(t, http.StatusOK, nil)
	r := await(t, held, prompt)
	require.Equal(t, http.StatusOK, r.resp.status)
	require.Empty(t, r.resp.body)
}

// TestJobLogsFollowRequeue: when the job starts over on another attempt, a
// follower shows a separator, then the new attempt's log from its beginning;
// afterwards the whole log shows both attempts.
func TestJobLogsFollowRequeue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, j := e.runningJob(t, 1)
	e.sendLog(t, a, j.ID, 0, 0, "first attempt 0\n")
	e.sendLog(t, a, j.ID, 0, 1, "first attempt 1\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := request(t, "GET", fmt.Sprintf("%s/jobs/%d/logs?follow=1", e.base, j.ID), nil, e.token)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	defer resp.Body.Close()
	lr := readLines(resp.Body)
	require.Equal(t, "==> step 0: shell (step0)\n", lr.next(t))
	require.Equal(t, "first attempt 0\n", lr.next(t))
	require.Equal(t, "first attempt 1\n", lr.next(t))
	waitFor(t, "the follower to subscribe", func() bool { return e.hub.Subscribers(logs.Key(j.ID)) == 1 })

	// The agent restarts: its work poll requeues the job and takes it again.
	asg := e.claim(t, a)
	require.Equal(t, 2, asg.Attempt)
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/steps/0/logs?attempt=2&seq=0", j.ID), "second attempt 0\n", a.cred).ok(t, http.StatusNoContent, nil)
	require.Equal(t, "==> attempt 2 (agent alice)\n", lr.next(t))
	require.Equal(t, "==> step 0: shell (step0)\n", lr.next(t))
	require.Equal(t, "second attempt 0\n", lr.next(t))
	e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/complete", j.ID), api.CompleteJob{Attempt: 2, Result: ci.JobOK}, a.cred).ok(t, http.StatusNoContent, nil)
	select {
	case err := <-lr.done:
		require.NoError(t, err)
	case l := <-lr.lines:
		t.Fatalf("unexpected line %q", l)
	case <-time.After(prompt):
		t.Fatal("the stream did not end when the job completed")
	}

	r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs", j.ID), nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "==> attempt 1 (agent alice)\n==> step 0: shell (step0)\nfirst attempt 0\nfirst attempt 1\n"+
		"==> attempt 2 (agent alice)\n==> step 0: shell (step0)\nsecond attempt 0\n", string(r.body))
}

// TestListFlowsWithRuns lists a branch's flows with their runs and jobs in
// one request, the same details GET /flows/{id} gives.
func TestListFlowsWithRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture(t, 1)
	f1 := e.flow(t, fx.branch.ID)
	f2 := e.flow(t, fx.branch.ID)

	var got []api.FlowDetail
	e.user(t, "GET", fmt.Sprintf("/branches/%d/flows?with=runs&kind=ci", fx.branch.ID), nil).ok(t, http.StatusOK, &got)
	require.Len(t, got, 2)
	for i, id := range []int64{f2.ID, f1.ID} { // newest first
		var want api.FlowDetail
		e.user(t, "GET", fmt.Sprintf("/flows/%d", id), nil).ok(t, http.StatusOK, &want)
		require.Equal(t, want, got[i])
		require.Equal(t, "proj", got[i].Project)
		require.Equal(t, "main", got[i].Branch)
		require.NotEmpty(t, got[i].Runs)
		require.NotEmpty(t, got[i].Runs[0].Jobs)
	}
	e.user(t, "GET", fmt.Sprintf("/branches/%d/flows?with=runs&kind=dev", fx.branch.ID), nil).ok(t, http.StatusOK, &got)
	require.Empty(t, got)
}
