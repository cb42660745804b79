package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/api"
)

// fakeAssets implements the agent routes of artifacts, caches, results and
// data (pkg/api/assets.go) in memory, fenced like the other job writes. All
// jobs of the fake belong to one flow; the run of a job is its id.
type fakeAssets struct {
	artifacts []fakeArtifact
	caches    map[string][]byte
	results   map[int64][]api.TestResult // per job, in arrival order
	issues    map[int64][]api.Issue
	batches   int
	data      map[string]json.RawMessage // per scope
	dataOps   []api.DataOp
	// failResults answers the next N results POSTs with 503.
	failResults int
	// staleResults answers results POSTs with 409 stale_attempt.
	staleResults bool
}

type fakeArtifact struct {
	api.Artifact
	data []byte
}

func (a *fakeAssets) routes(s *fakeServer, mux *http.ServeMux, p string) {
	a.caches = map[string][]byte{}
	a.results = map[int64][]api.TestResult{}
	a.issues = map[int64][]api.Issue{}
	a.data = map[string]json.RawMessage{}
	mux.HandleFunc("PUT "+p+"/jobs/{id}/artifacts", s.auth(s.putArtifact))
	mux.HandleFunc("GET "+p+"/jobs/{id}/artifacts", s.auth(s.listArtifacts))
	mux.HandleFunc("GET "+p+"/jobs/{id}/artifacts/{aid}", s.auth(s.getArtifact))
	mux.HandleFunc("PUT "+p+"/jobs/{id}/cache", s.auth(s.putCache))
	mux.HandleFunc("GET "+p+"/jobs/{id}/cache", s.auth(s.getCache))
	mux.HandleFunc("POST "+p+"/jobs/{id}/results", s.auth(s.postResults))
	mux.HandleFunc("POST "+p+"/jobs/{id}/data", s.auth(s.postData))
}

// queryAttempt reads ?attempt=N.
func queryAttempt(w http.ResponseWriter, r *http.Request) (int, bool) {
	n, err := strconv.Atoi(r.URL.Query().Get("attempt"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "attempt is required")
		return 0, false
	}
	return n, true
}

func (s *fakeServer) putArtifact(w http.ResponseWriter, r *http.Request) {
	attempt, ok := queryAttempt(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	p := q.Get("path")
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("bad artifact path %q", p))
		return
	}
	// Streamed in: the body is hashed as it arrives.
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &buf), r.Body)
	if err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	if r.ContentLength >= 0 && n != r.ContentLength {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "short body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.fenced(w, r, attempt)
	if j == nil {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	art := api.Artifact{ID: int64(len(s.assets.artifacts) + 1), FlowID: 1, RunID: id, JobID: id, Path: p, Size: n,
		SHA256: hex.EncodeToString(h.Sum(nil)), Public: q.Get("public") == "1", ReportEntry: q.Get("report_entry") == "1",
		Created: time.Now()}
	s.assets.artifacts = append(s.assets.artifacts, fakeArtifact{art, buf.Bytes()})
	s.notifyLocked()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(art)
}

func (s *fakeServer) listArtifacts(w http.ResponseWriter, r *http.Request) {
	attempt, ok := queryAttempt(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced(w, r, attempt) == nil {
		return
	}
	out := make([]api.Artifact, 0, len(s.assets.artifacts))
	for _, a := range s.assets.artifacts {
		out = append(out, a.Artifact)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RunID > out[j].RunID }) // newest run first
	writeJSON(w, out)
}

func (s *fakeServer) getArtifact(w http.ResponseWriter, r *http.Request) {
	attempt, ok := queryAttempt(w, r)
	if !ok {
		return
	}
	aid, _ := strconv.ParseInt(r.PathValue("aid"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced(w, r, attempt) == nil {
		return
	}
	if aid < 1 || int(aid) > len(s.assets.artifacts) {
		writeErr(w, http.StatusNotFound, api.CodeNotFound, "no such artifact")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(s.assets.artifacts[aid-1].data)
}

func (s *fakeServer) putCache(w http.ResponseWriter, r *http.Request) {
	attempt, ok := queryAttempt(w, r)
	if !ok {
		return
	}
	key := r.URL.Query().Get("key")
	if key == "" {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "key is required")
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced(w, r, attempt) == nil {
		return
	}
	s.assets.caches[key] = data
	s.notifyLocked()
	exp := time.Now().Add(10 * 24 * time.Hour)
	if e, err := strconv.Atoi(r.URL.Query().Get("expiry")); err == nil {
		exp = time.Now().Add(time.Duration(e) * time.Second)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(api.CacheEntry{Key: key, Size: int64(len(data)), Created: time.Now(), Expires: exp})
}

func (s *fakeServer) getCache(w http.ResponseWriter, r *http.Request) {
	attempt, ok := queryAttempt(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced(w, r, attempt) == nil {
		return
	}
	data, ok := s.assets.caches[r.URL.Query().Get("key")]
	if !ok {
		writeErr(w, http.StatusNotFound, api.CodeNotFound, "no cache entry")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(data)
}

func (s *fakeServer) postResults(w http.ResponseWriter, r *http.Request) {
	var b api.ResultsBatch
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.assets.failResults > 0 {
		s.assets.failResults--
		writeErr(w, http.StatusServiceUnavailable, api.CodeUnavailable, "injected failure")
		return
	}
	if s.assets.staleResults {
		writeErr(w, http.StatusConflict, api.CodeStaleAttempt, "attempt is stale")
		return
	}
	if s.fenced(w, r, b.Attempt) == nil {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.assets.results[id] = append(s.assets.results[id], b.Tests...)
	s.assets.issues[id] = append(s.assets.issues[id], b.Issues...)
	s.assets.batches++
	s.notifyLocked()
	w.WriteHeader(http.StatusNoContent)
}

// finalResults returns the last result of each test name of a job.
func (s *fakeServer) finalResults(job int64) map[string]api.TestResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]api.TestResult{}
	for _, t := range s.assets.results[job] {
		out[t.Name] = t
	}
	return out
}

func (s *fakeServer) postData(w http.ResponseWriter, r *http.Request) {
	var op api.DataOp
	if err := json.NewDecoder(r.Body).Decode(&op); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced(w, r, op.Attempt) == nil {
		return
	}
	s.assets.dataOps = append(s.assets.dataOps, op)
	doc := map[string]any{}
	if raw := s.assets.data[op.Scope]; raw != nil {
		_ = json.Unmarshal(raw, &doc)
	}
	// The fake knows "/" and one-level pointers "/key".
	key := strings.TrimPrefix(op.JSONPointer, "/")
	switch op.Op {
	case api.DataSet:
		var v any
		if err := json.Unmarshal(op.Value, &v); err != nil {
			writeErr(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
			return
		}
		if key == "" {
			m, ok := v.(map[string]any)
			if !ok {
				writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "the document must be an object")
				return
			}
			doc = m
		} else {
			doc[key] = v
		}
	case api.DataGet:
	default:
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "the fake does not do "+op.Op)
		return
	}
	raw, _ := json.Marshal(doc)
	s.assets.data[op.Scope] = raw
	var out any = doc
	if key != "" {
		out = doc[key]
	}
	val, _ := json.Marshal(out)
	writeJSON(w, api.DataValue{Scope: op.Scope, Value: val})
}
