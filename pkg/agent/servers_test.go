package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

func TestParseServerURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{name: "one", in: []string{"kkd:6363"}, want: []string{"http://kkd:6363"}},
		{name: "commas and spaces", in: []string{" a:1 , ,https://b/kk/ "}, want: []string{"http://a:1", "https://b/kk"}},
		{name: "repeated flags", in: []string{"a:1", "b:2,c:3"}, want: []string{"http://a:1", "http://b:2", "http://c:3"}},
		{name: "duplicates dropped", in: []string{"a:1,http://a:1/"}, want: []string{"http://a:1"}},
		{name: "bad one named", in: []string{"a:1,ftp://b"}, wantErr: `"ftp://b"`},
		{name: "no host", in: []string{"a:1", "http://"}, wantErr: `"http://" has no host`},
		{name: "empty", in: []string{" , "}, wantErr: "KRAKEN_SERVER_ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseServerURLs(tc.in...)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestServerRotation checks the failover policy of serverSet step by step.
func TestServerRotation(t *testing.T) {
	t.Parallel()
	down := &transportError{errors.New("connection refused")}
	status := func(code int) error { return &api.Error{Status: code, Code: "x", Message: "x"} }
	type step struct {
		after     time.Duration // clock advance before the report
		server    int
		err       error
		wantRetry bool
		wantCur   int
	}
	for _, tc := range []struct {
		name    string
		servers int
		steps   []step
	}{
		{name: "one server never switches", servers: 1, steps: []step{
			{server: 0, err: down, wantCur: 0},
		}},
		{name: "transport error moves on at once", servers: 2, steps: []step{
			{server: 0, err: down, wantRetry: true, wantCur: 1},
			{server: 1, err: nil, wantCur: 1},
		}},
		{name: "502 503 504 move on", servers: 3, steps: []step{
			{server: 0, err: status(http.StatusBadGateway), wantRetry: true, wantCur: 1},
			{server: 1, err: status(http.StatusServiceUnavailable), wantRetry: true, wantCur: 2},
			{server: 2, err: status(http.StatusGatewayTimeout), wantRetry: false, wantCur: 0},
		}},
		{name: "real answers never move", servers: 2, steps: []step{
			{server: 0, err: status(http.StatusConflict), wantCur: 0},
			{server: 0, err: status(http.StatusUnauthorized), wantCur: 0},
			{server: 0, err: status(http.StatusNotFound), wantCur: 0},
			{server: 0, err: status(http.StatusInternalServerError), wantCur: 0},
			{server: 0, err: errors.New("decode response"), wantCur: 0},
		}},
		{name: "all failed in a row: back off, still round robin", servers: 2, steps: []step{
			{server: 0, err: down, wantRetry: true, wantCur: 1},
			{server: 1, err: down, wantRetry: false, wantCur: 0},
			{after: time.Second, server: 0, err: down, wantRetry: false, wantCur: 1},
			{after: time.Second, server: 1, err: nil, wantCur: 1},
		}},
		{name: "late failure of a former server does not move again", servers: 2, steps: []step{
			{server: 0, err: down, wantRetry: true, wantCur: 1},
			{server: 0, err: down, wantRetry: true, wantCur: 1},
		}},
		{name: "old failure is forgotten", servers: 2, steps: []step{
			{server: 0, err: down, wantRetry: true, wantCur: 1},
			{after: serverFailMemory, server: 1, err: down, wantRetry: true, wantCur: 0},
		}},
		{name: "server that answered again is tried at once", servers: 2, steps: []step{
			{server: 0, err: down, wantRetry: true, wantCur: 1},
			{server: 1, err: down, wantRetry: false, wantCur: 0},
			{server: 0, err: nil, wantCur: 0},
			{server: 1, err: nil, wantCur: 0}, // a late answer of 1 to another request
			{server: 0, err: down, wantRetry: true, wantCur: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			urls := make([]string, tc.servers)
			for i := range urls {
				urls[i] = fmt.Sprintf("http://kkd%d:6363", i)
			}
			now := time.Unix(1000, 0)
			s := newServerSet(urls, testLogger(t))
			s.now = func() time.Time { return now }
			for i, st := range tc.steps {
				now = now.Add(st.after)
				assert.Equal(t, st.wantRetry, s.report(st.server, st.err), "step %d: retry now", i)
				cur, u := s.pick()
				assert.Equal(t, st.wantCur, cur, "step %d: current server", i)
				assert.Equal(t, urls[st.wantCur], u)
			}
		})
	}
}

func TestServerNamesHidePasswords(t *testing.T) {
	t.Parallel()
	s := newServerSet([]string{"http://agent:s3cret@kkd:6363"}, nil)
	assert.NotContains(t, s.name(0), "s3cret")
	assert.Equal(t, "http://agent:s3cret@kkd:6363", s.current())
}

// TestClientFailover sends one call to a client of two servers: a server
// that is gone or says 502/503/504 hands the call to the other at once; a
// real answer (4xx) comes back as is.
func TestClientFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		firstSays  int // 0: the first server is not listening
		wantErr    error
		wantSecond int // calls the second server got
		wantCur    int
	}{
		{name: "connection refused", firstSays: 0, wantSecond: 1, wantCur: 1},
		{name: "503", firstSays: http.StatusServiceUnavailable, wantSecond: 1, wantCur: 1},
		{name: "502", firstSays: http.StatusBadGateway, wantSecond: 1, wantCur: 1},
		{name: "504", firstSays: http.StatusGatewayTimeout, wantSecond: 1, wantCur: 1},
		{name: "409 is an answer", firstSays: http.StatusConflict, wantErr: ci.ErrStaleAttempt, wantCur: 0},
		{name: "404 is an answer", firstSays: http.StatusNotFound, wantErr: ci.ErrNotFound, wantCur: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			codes := map[int]string{
				http.StatusServiceUnavailable: api.CodeUnavailable, http.StatusBadGateway: api.CodeUnavailable,
				http.StatusGatewayTimeout: api.CodeUnavailable, http.StatusConflict: api.CodeStaleAttempt,
				http.StatusNotFound: api.CodeNotFound,
			}
			first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				writeErr(w, tc.firstSays, codes[tc.firstSays], "first")
			}))
			t.Cleanup(first.Close)
			if tc.firstSays == 0 {
				first.Close()
			}
			var mu sync.Mutex
			second := 0
			srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				second++
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(srv2.Close)
			c, err := newClient(first.URL+","+srv2.URL, &http.Client{}, 5*time.Second, testLogger(t))
			require.NoError(t, err)
			c.setCredential("cred")
			err = c.start(context.Background(), 1, 1)
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
			} else {
				assert.NoError(t, err)
			}
			mu.Lock()
			assert.Equal(t, tc.wantSecond, second)
			mu.Unlock()
			cur, _ := c.servers.pick()
			assert.Equal(t, tc.wantCur, cur)
		})
	}
}

// TestFailoverBetweenServers runs an agent against one fake kkd served on
// two listeners (two replicas on one database) and kills them in turn.
func TestFailoverBetweenServers(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	urlA, killA := s.listen("a", "127.0.0.1:0")
	urlB, killB := s.listen("b", "127.0.0.1:0")
	a := builtinAgent(t, s, func(c *Config) {
		c.ServerURL = urlA + "," + urlB
		c.LogChunkSize = 64
		c.HeartbeatWait = time.Second
	})

	// Job 1 prints half its log, waits for the gate, prints the rest.
	gate := filepath.Join(t.TempDir(), "gate")
	var want strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	asg := assignment(1, shell(fmt.Sprintf(`i=1; while [ $i -le 50 ]; do echo line $i; i=$((i+1)); done
while [ ! -f %q ]; do sleep 0.02; done
while [ $i -le 100 ]; do echo line $i; i=$((i+1)); done`, gate)))
	asg.LeaseSeconds = 6
	lease := time.Duration(asg.LeaseSeconds) * time.Second
	s.addJob(asg)
	s.await("job 1's first half through a", 30*time.Second, func(s *fakeServer) bool {
		j := s.job(1)
		return j.heartbeats >= 1 && strings.Count(j.logText(0), "\n") >= 50 && s.hits["b"] == 0
	})
	s.mu.Lock()
	beatsBefore := s.job(1).heartbeats
	s.mu.Unlock()
	killA()
	s.await("two heartbeats through b", 10*time.Second, func(s *fakeServer) bool {
		return s.job(1).heartbeats >= beatsBefore+2 && s.hits["b"] > 0
	})
	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	c := s.completed(1, 30*time.Second)
	assert.Equal(t, ci.JobOK, c.Result)
	assert.Equal(t, urlB, a.CurrentServer())

	s.mu.Lock()
	j := s.job(1)
	assert.Equal(t, want.String(), j.logText(0), "whole log, in order, each chunk once")
	// A chunk kkd stored just before a died may be sent again to b (its
	// answer was lost); b then ignores it.
	assert.LessOrEqual(t, s.dupLogs, 1)
	var starts, completes, nextSeq int
	for _, e := range s.events {
		switch {
		case e == "start":
			starts++
		case strings.HasPrefix(e, "complete"):
			completes++
		case strings.HasPrefix(e, "log 0 "):
			seq, _ := strconv.Atoi(strings.Fields(e)[2])
			assert.Equal(t, nextSeq, seq, "chunks stored in seq order, once each")
			nextSeq++
		}
	}
	assert.Equal(t, 1, starts, "the job ran once")
	assert.Equal(t, 1, completes)
	assert.Equal(t, "complete ok", s.events[len(s.events)-1])
	var maxGap time.Duration
	for i := 1; i < len(j.beats); i++ {
		maxGap = max(maxGap, j.beats[i].Sub(j.beats[i-1]))
	}
	t.Logf("heartbeats: %d, longest gap %s (lease %s)", len(j.beats), maxGap, lease)
	assert.Less(t, maxGap, lease/3, "the lease was renewed through the failover")
	hitsB := s.hits["b"]
	s.mu.Unlock()

	// A new job reaches the agent through the surviving server.
	s.addJob(assignment(2, shell("echo two")))
	assert.Equal(t, ci.JobOK, s.completed(2, 30*time.Second).Result)
	s.mu.Lock()
	assert.Equal(t, "two\n", s.job(2).logText(0))
	assert.Greater(t, s.hits["b"], hitsB)
	s.mu.Unlock()

	// a comes back on its address; b dies: the agent goes back to a.
	_, _ = s.listen("a again", strings.TrimPrefix(urlA, "http://"))
	killB()
	s.addJob(assignment(3, shell("echo three")))
	assert.Equal(t, ci.JobOK, s.completed(3, 30*time.Second).Result)
	s.mu.Lock()
	assert.Equal(t, "three\n", s.job(3).logText(0))
	assert.Positive(t, s.hits["a again"])
	s.mu.Unlock()
	assert.Equal(t, urlA, a.CurrentServer())
}
