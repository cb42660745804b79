package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-go/kk/pkg/api"
)

// fakeServer implements the agent routes of pkg/api in memory, with fencing:
// every job has a current attempt and writes from another attempt get 409
// stale_attempt. Long polls (register, work, heartbeat) are held until the
// state changes or the wait passes, like kkd does.
type fakeServer struct {
	t       *testing.T
	srv     *httptest.Server
	handler http.Handler // srv's; listen serves it on more listeners

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change

	regKey        string // registration key that authorizes at once
	authorized    bool
	credential    string // the valid credential ("" until issued)
	issued        int    // credentials issued so far
	pendingIssue  bool   // authorized, credential not collected yet
	registrations []api.Register
	workPolls     []string       // Authorization header of each work poll
	hostInfos     int            // work polls carrying host info
	hits          map[string]int // requests per listener name (see listen)

	queue        []api.Assignment
	jobs         map[int64]*fakeJob
	failLogEvery int // fail every Nth log POST with 500 (0: never)
	logPosts     int
	dupLogs      int      // log POSTs of a seq already stored
	events       []string // "start", "log STEP SEQ", "step STEP STATUS", "complete RESULT", in arrival order

	down     outage // how requests fail while kkd is "down"
	downHits int    // requests refused while down

	assets fakeAssets // artifacts, caches, results, data
}

// outage is how the fake fails requests while it is down.
type outage int

const (
	up          outage = iota
	unavailable        // 503 with the error envelope (kkd shutting down, a proxy in front)
	dropped            // the connection is closed without an answer (kkd killed, network gone)
)

func (o outage) String() string {
	return [...]string{"up", "unavailable", "dropped"}[o]
}

// setDown starts (or, with up, ends) an outage; held requests are failed too.
func (s *fakeServer) setDown(o outage) {
	s.update(func(s *fakeServer) { s.down = o })
}

// refuseLocked fails the request when the fake is down; s.mu must be held.
func (s *fakeServer) refuseLocked(w http.ResponseWriter) bool {
	switch s.down {
	case unavailable:
		writeErr(w, http.StatusServiceUnavailable, api.CodeUnavailable, "kkd is down")
	case dropped:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			s.t.Errorf("hijack: %v", err)
			return true
		}
		_ = conn.Close()
	default:
		return false
	}
	s.downHits++
	s.notifyLocked()
	return true
}

type fakeJob struct {
	attempt    int // current attempt; others are stale
	started    bool
	cancel     bool
	heartbeats int
	beats      []time.Time // arrival of each heartbeat
	steps      map[int][]api.StepResult
	logs       map[int][][]byte // per step, chunks in seq order (accepted once)
	complete   *api.CompleteJob
	completeAt time.Time
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	s := &fakeServer{t: t, changed: make(chan struct{}), jobs: map[int64]*fakeJob{}}
	mux := http.NewServeMux()
	p := api.Prefix + "/agent"
	mux.HandleFunc("POST "+p+"/register", s.register)
	mux.HandleFunc("POST "+p+"/work", s.auth(s.work))
	mux.HandleFunc("POST "+p+"/jobs/{id}/start", s.auth(s.start))
	mux.HandleFunc("POST "+p+"/jobs/{id}/heartbeat", s.auth(s.heartbeat))
	mux.HandleFunc("POST "+p+"/jobs/{id}/steps/{idx}/logs", s.auth(s.logs))
	mux.HandleFunc("POST "+p+"/jobs/{id}/steps/{idx}", s.auth(s.step))
	mux.HandleFunc("POST "+p+"/jobs/{id}/complete", s.auth(s.complete))
	s.assets.routes(s, mux, p) // services_fake_test.go
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		refused := s.refuseLocked(w)
		s.mu.Unlock()
		if !refused {
			mux.ServeHTTP(w, r)
		}
	})
	s.srv = httptest.NewServer(s.handler)
	t.Cleanup(s.srv.Close)
	return s
}

// notifyLocked wakes every held request and waiter; s.mu must be held.
func (s *fakeServer) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// update changes the state under the lock and wakes waiters.
func (s *fakeServer) update(fn func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
	s.notifyLocked()
}

// await waits until cond (called under the lock) holds.
func (s *fakeServer) await(what string, within time.Duration, cond func(s *fakeServer) bool) {
	s.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok := cond(s)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			s.t.Fatalf("timed out after %s waiting for %s", within, what)
		}
	}
}

// hold blocks a long poll until cond holds (true) or the wait passes or the
// fake goes down (false); the caller then checks refuseLocked. It is called
// and returns with s.mu held.
func (s *fakeServer) hold(r *http.Request, cond func() bool) bool {
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	timer := time.NewTimer(time.Duration(wait) * time.Second)
	defer timer.Stop()
	for !cond() {
		if s.down != up {
			return false
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.mu.Lock()
			return cond()
		case <-r.Context().Done():
			s.mu.Lock()
			return cond()
		}
		s.mu.Lock()
	}
	return true
}

func (s *fakeServer) addJob(asg api.Assignment) {
	s.update(func(s *fakeServer) {
		s.jobs[asg.JobID] = &fakeJob{attempt: asg.Attempt, steps: map[int][]api.StepResult{}, logs: map[int][][]byte{}}
		s.queue = append(s.queue, asg)
	})
}

func (s *fakeServer) job(id int64) *fakeJob { return s.jobs[id] }

// stepStatuses returns the last reported status of each step, in index order.
func (j *fakeJob) stepStatuses(n int) []string {
	out := make([]string, n)
	for i := range n {
		if rs := j.steps[i]; len(rs) > 0 {
			out[i] = string(rs[len(rs)-1].Status)
		}
	}
	return out
}

func (j *fakeJob) lastStep(i int) api.StepResult {
	rs := j.steps[i]
	if len(rs) == 0 {
		return api.StepResult{}
	}
	return rs[len(rs)-1]
}

// logText joins a step's log chunks.
func (j *fakeJob) logText(step int) string {
	var b strings.Builder
	for _, c := range j.logs[step] {
		b.Write(c)
	}
	return b.String()
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// auth checks the bearer credential.
func (s *fakeServer) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		ok := s.credential != "" && got == s.credential
		s.mu.Unlock()
		if !ok {
			writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized, "invalid agent credential")
			return
		}
		h(w, r)
	}
}

func (s *fakeServer) register(w http.ResponseWriter, r *http.Request) {
	var req api.Register
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registrations = append(s.registrations, req)
	if s.regKey != "" && req.RegistrationKey == s.regKey && !s.authorized {
		s.authorized, s.pendingIssue = true, true
	}
	s.notifyLocked()
	if !s.hold(r, func() bool { return s.authorized }) {
		if s.refuseLocked(w) {
			return
		}
		writeJSON(w, api.RegisterResponse{AgentID: 1, Name: req.Name, Message: "waiting for authorization"})
		return
	}
	resp := api.RegisterResponse{AgentID: 1, Name: req.Name, Authorized: true}
	if s.pendingIssue {
		s.issued++
		s.credential = fmt.Sprintf("cred-%d", s.issued)
		s.pendingIssue = false
		resp.Credential = s.credential
	}
	s.notifyLocked()
	writeJSON(w, resp)
}

// authorize marks the agent authorized; its next register call gets a credential.
func (s *fakeServer) authorize() {
	s.update(func(s *fakeServer) { s.authorized, s.pendingIssue = true, true })
}

// revoke invalidates the credential; re-registering issues a new one.
func (s *fakeServer) revoke() {
	s.update(func(s *fakeServer) { s.credential, s.pendingIssue = "", true })
}

func (s *fakeServer) work(w http.ResponseWriter, r *http.Request) {
	var req api.WorkRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workPolls = append(s.workPolls, r.Header.Get("Authorization"))
	if req.HostInfo != nil {
		s.hostInfos++
	}
	s.notifyLocked()
	if !s.hold(r, func() bool { return len(s.queue) > 0 }) {
		if s.refuseLocked(w) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	asg := s.queue[0]
	s.queue = s.queue[1:]
	s.notifyLocked()
	writeJSON(w, asg)
}

// fenced resolves the job and checks the attempt; it writes the error and
// returns nil when the write must be refused. s.mu must be held.
func (s *fakeServer) fenced(w http.ResponseWriter, r *http.Request, attempt int) *fakeJob {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	j := s.jobs[id]
	switch {
	case j == nil:
		writeErr(w, http.StatusNotFound, api.CodeNotFound, "no such job")
		return nil
	case attempt != j.attempt:
		writeErr(w, http.StatusConflict, api.CodeStaleAttempt, fmt.Sprintf("attempt %d is stale (current %d)", attempt, j.attempt))
		return nil
	}
	return j
}

func decodeAttempt(w http.ResponseWriter, r *http.Request) (api.AttemptRequest, bool) {
	var req api.AttemptRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return req, false
	}
	return req, true
}

func (s *fakeServer) start(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAttempt(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.fenced(w, r, req.Attempt)
	if j == nil {
		return
	}
	if !j.started {
		s.events = append(s.events, "start")
	}
	j.started = true
	s.notifyLocked()
	w.WriteHeader(http.StatusNoContent)
}

func (s *fakeServer) heartbeat(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAttempt(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.fenced(w, r, req.Attempt)
	if j == nil {
		return
	}
	j.heartbeats++
	j.beats = append(j.beats, time.Now())
	s.notifyLocked()
	// Held until cancelled, fenced off, or the wait passes.
	s.hold(r, func() bool { return j.cancel || j.attempt != req.Attempt })
	if s.refuseLocked(w) {
		return
	}
	if j.attempt != req.Attempt {
		writeErr(w, http.StatusConflict, api.CodeStaleAttempt, "attempt is stale")
		return
	}
	writeJSON(w, api.HeartbeatResponse{Cancel: j.cancel, LeaseSeconds: 30})
}

func (s *fakeServer) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	attempt, err1 := strconv.Atoi(q.Get("attempt"))
	seq, err2 := strconv.Atoi(q.Get("seq"))
	idx, err3 := strconv.Atoi(r.PathValue("idx"))
	if err1 != nil || err2 != nil || err3 != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "bad attempt, seq or step")
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logPosts++
	if s.failLogEvery > 0 && s.logPosts%s.failLogEvery == 0 {
		writeErr(w, http.StatusInternalServerError, api.CodeInternal, "injected failure")
		return
	}
	j := s.fenced(w, r, attempt)
	if j == nil {
		return
	}
	switch have := len(j.logs[idx]); {
	case seq < have: // already stored: idempotent
		s.dupLogs++
	case seq == have:
		j.logs[idx] = append(j.logs[idx], data)
		s.events = append(s.events, fmt.Sprintf("log %d %d", idx, seq))
	default:
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("seq %d out of order: want %d", seq, have))
		return
	}
	s.notifyLocked()
	w.WriteHeader(http.StatusNoContent)
}

func (s *fakeServer) step(w http.ResponseWriter, r *http.Request) {
	var req api.StepResult
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	idx, err := strconv.Atoi(r.PathValue("idx"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "bad step index")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.fenced(w, r, req.Attempt)
	if j == nil {
		return
	}
	j.steps[idx] = append(j.steps[idx], req)
	s.events = append(s.events, fmt.Sprintf("step %d %s", idx, req.Status))
	s.notifyLocked()
	w.WriteHeader(http.StatusNoContent)
}

func (s *fakeServer) complete(w http.ResponseWriter, r *http.Request) {
	var req api.CompleteJob
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.fenced(w, r, req.Attempt)
	if j == nil {
		return
	}
	if j.complete == nil {
		j.complete = &req
		j.completeAt = time.Now()
		s.events = append(s.events, "complete "+string(req.Result))
	}
	s.notifyLocked()
	w.WriteHeader(http.StatusNoContent)
}

// completed waits for the job's completion and returns it.
func (s *fakeServer) completed(id int64, within time.Duration) api.CompleteJob {
	s.t.Helper()
	var c api.CompleteJob
	s.await(fmt.Sprintf("job %d to complete", id), within, func(s *fakeServer) bool {
		if j := s.jobs[id]; j != nil && j.complete != nil {
			c = *j.complete
			return true
		}
		return false
	})
	return c
}

// run starts a with ctx and returns a function that stops it and returns
// Run's error.
func runAgent(t *testing.T, a *Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("agent did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// listen serves the fake on another listener at addr ("127.0.0.1:0": a new
// port), like a second kkd replica on the same database: the state is
// shared. Requests through it are counted in hits[name]. kill closes the
// listener and every connection it accepted, held long polls included, as
// when that replica dies.
func (s *fakeServer) listen(name, addr string) (url string, kill func()) {
	s.t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("listen %s on %s: %v", name, addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.update(func(s *fakeServer) {
			if s.hits == nil {
				s.hits = map[string]int{}
			}
			s.hits[name]++
		})
		s.handler.ServeHTTP(w, r)
	}))
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = srv.Listener.Close() // no new connection from now on
			srv.CloseClientConnections()
			srv.Close()
		})
	}
	s.t.Cleanup(kill)
	return srv.URL, kill
}
