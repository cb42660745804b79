package tui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// fakeAPI serves the few routes the TUI uses from memory.
type fakeAPI struct {
	mu     sync.Mutex
	agents []api.Agent
	calls  []string
}

// testNow is the fixed clock of the model tests.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := testNow.Add(-d); return &t }

func newFakeAPI() *fakeAPI {
	return &fakeAPI{agents: []api.Agent{
		{ID: 1, Name: "builder-1", State: ci.AgentIdle, Authorized: true, Address: "10.0.0.11",
			Groups: []string{"all", "linux"}, Executors: []string{"local", "docker"}, LastSeen: at(3 * time.Second),
			HostInfo: ci.HostInfo{OS: "linux", System: "debian-12", Docker: "28.5.2"}},
		{ID: 2, Name: "builder-2", State: ci.AgentBuilding, Authorized: true, Address: "10.0.0.12", JobID: 42,
			Groups: []string{"all"}, Executors: []string{"local", "docker", "lxd"}, LastSeen: at(1 * time.Second),
			HostInfo: ci.HostInfo{OS: "linux", System: "ubuntu-24.04", Docker: "27.1.0", LXD: "5.21"}},
		{ID: 3, Name: "mac-mini", State: ci.AgentDisabled, Authorized: true, Disabled: true, Address: "10.0.0.20",
			Groups: []string{"all"}, Executors: []string{"local"}, LastSeen: at(5 * time.Minute),
			HostInfo: ci.HostInfo{OS: "darwin", System: "macos-15"}},
		{ID: 4, Name: "new-host", State: ci.AgentDiscovered, Address: "10.0.0.30",
			Groups: []string{}, Executors: []string{"local"}, LastSeen: at(2 * time.Second),
			HostInfo: ci.HostInfo{OS: "linux", System: "fedora-41"}},
	}}
}

func (f *fakeAPI) find(ref string) *api.Agent {
	for i := range f.agents {
		if strconv.FormatInt(f.agents[i].ID, 10) == ref || f.agents[i].Name == ref {
			return &f.agents[i]
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, what string) {
	writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": what + " does not exist"}})
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		want := r.URL.Query().Get("discovered") == "1"
		out := []api.Agent{}
		for _, a := range f.agents {
			if a.Authorized != want {
				out = append(out, a)
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	action := func(name string, fn func(a *api.Agent)) {
		mux.HandleFunc("POST /api/v1/agents/{a}/"+name, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls = append(f.calls, name+" "+r.PathValue("a"))
			a := f.find(r.PathValue("a"))
			if a == nil {
				notFound(w, "agent "+r.PathValue("a"))
				return
			}
			fn(a)
			writeJSON(w, http.StatusOK, a)
		})
	}
	action("authorize", func(a *api.Agent) { a.Authorized, a.State, a.Groups = true, ci.AgentIdle, []string{"all"} })
	action("enable", func(a *api.Agent) { a.Disabled, a.State = false, ci.AgentIdle })
	action("disable", func(a *api.Agent) { a.Disabled, a.State = true, ci.AgentDisabled })
	mux.HandleFunc("DELETE /api/v1/agents/{a}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, "delete "+r.PathValue("a"))
		a := f.find(r.PathValue("a"))
		if a == nil {
			notFound(w, "agent "+r.PathValue("a"))
			return
		}
		id := a.ID
		f.agents = slices.DeleteFunc(f.agents, func(x api.Agent) bool { return x.ID == id })
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/groups/{g}/agents/{a}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, fmt.Sprintf("group %s %s", r.PathValue("g"), r.PathValue("a")))
		if r.PathValue("g") == "missing" {
			notFound(w, `group "missing"`)
			return
		}
		a := f.find(r.PathValue("a"))
		if a == nil {
			notFound(w, "agent "+r.PathValue("a"))
			return
		}
		a.Groups = append(a.Groups, r.PathValue("g"))
		writeJSON(w, http.StatusOK, api.Group{Name: r.PathValue("g"), Agents: []string{a.Name}})
	})
	return mux
}

func (f *fakeAPI) serve(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeAPI) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}
