// Package clitest runs kk commands in-process against a fake API server, for
// the tests of the command packages.
package clitest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/root"
)

// Token is the API token the fake server accepts.
const Token = "test-token"

// API is a fake kkd: register handlers with Handle; requests to other routes
// get the API's 404 envelope. Every request but login must carry Token.
type API struct {
	*httptest.Server
	mux *http.ServeMux

	mu       sync.Mutex
	requests []string // "METHOD escaped-path?query"
}

// NewAPI starts a fake server, closed when the test ends.
func NewAPI(t testing.TB) *API {
	t.Helper()
	a := &API{mux: http.NewServeMux()}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Server.Close)
	return a
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	req := r.Method + " " + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		req += "?" + r.URL.RawQuery
	}
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()
	if r.URL.Path != api.Prefix+"/login" && r.Header.Get("Authorization") != "Bearer "+Token {
		Error(w, http.StatusUnauthorized, api.CodeUnauthorized, "missing or invalid API token")
		return
	}
	if _, pattern := a.mux.Handler(r); pattern == "" {
		Error(w, http.StatusNotFound, api.CodeNotFound, "no route "+r.Method+" "+r.URL.Path)
		return
	}
	a.mux.ServeHTTP(w, r) // sets r.PathValue

}

// Handle registers a handler for a ServeMux pattern such as
// "GET /api/v1/projects/{p}".
func (a *API) Handle(pattern string, h http.HandlerFunc) { a.mux.HandleFunc(pattern, h) }

// Reply registers a handler answering status with v as JSON.
func (a *API) Reply(pattern string, status int, v any) {
	a.Handle(pattern, func(w http.ResponseWriter, r *http.Request) { JSON(w, status, v) })
}

// Requests returns the requests received so far.
func (a *API) Requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

// JSON writes v with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Error writes the API's error envelope.
func Error(w http.ResponseWriter, status int, code, msg string, details ...api.ErrorDetail) {
	JSON(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: msg, Details: details}})
}

// Env is a test environment: variables, the config file, stdin, TTYs.
type Env struct {
	// Vars is the environment; KK_CONFIG defaults to a file in a temp dir.
	Vars map[string]string
	// Stdin feeds the command.
	Stdin string
	// TTY makes stdin, stdout and stderr terminals.
	TTY bool
	// Setup adjusts the streams (e.g. a password reader).
	Setup func(*iostreams.IOStreams)
}

// Result of a command.
type Result struct {
	Stdout, Stderr string
	Code           cmdutil.ExitCode
}

// NewEnv returns an environment whose KK_SERVER and KK_TOKEN point at api
// (api may be nil) and whose config file is in a fresh temp dir.
func NewEnv(t testing.TB, a *API) *Env {
	t.Helper()
	e := &Env{Vars: map[string]string{
		"KK_CONFIG": filepath.Join(t.TempDir(), "config.yaml"),
	}}
	if a != nil {
		e.Vars["KK_SERVER"] = a.URL
		e.Vars["KK_TOKEN"] = Token
	}
	return e
}

// ConfigPath is the config file of the environment.
func (e *Env) ConfigPath() string { return e.Vars["KK_CONFIG"] }

// Run runs kk with args.
func (e *Env) Run(t testing.TB, args ...string) Result {
	t.Helper()
	return e.RunContext(t.Context(), t, args...)
}

// RunContext runs kk with args under ctx.
func (e *Env) RunContext(ctx context.Context, t testing.TB, args ...string) Result {
	t.Helper()
	ios, in, out, errOut := iostreams.Test()
	in.WriteString(e.Stdin)
	ios.SetStdinTTY(e.TTY)
	ios.SetStdoutTTY(e.TTY)
	ios.SetStderrTTY(e.TTY)
	if e.Setup != nil {
		e.Setup(ios)
	}
	home := t.TempDir()
	f := &factory.Factory{
		IOStreams: ios,
		Getenv:    func(k string) string { return e.Vars[k] },
		HomeDir:   func() (string, error) { return home, nil },
		Build:     factory.BuildInfo{Version: "test"},
	}
	code := root.Execute(ctx, f, args)
	return Result{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

// Args splits a command line on spaces (no quoting), for short test tables.
func Args(s string) []string { return strings.Fields(s) }
