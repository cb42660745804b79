package lxd

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

	"github.com/kraken-go/kk/pkg/executor/inside"
)

// fakeLXD is the part of LXD's REST API the executor uses, on a unix socket.
// Exec runs the step wrapper's work on the host: `__kk-exec PIDFILE ARGV`
// runs ARGV in a new process group (recorded by PIDFILE in the fake), and
// `__kk-signal SIG PIDFILE` signals that group.
type fakeLXD struct {
	t      *testing.T
	socket string

	mu        sync.Mutex
	images    map[string]bool
	instances map[string]*fakeInstance
	ops       map[string]*fakeOp
	groups    map[string]int // pidfile -> pgid
	signals   []string       // "SIG PIDFILE" of every __kk-signal exec
	nextOp    int
}

type fakeInstance struct {
	Name    string            `json:"name"`
	Status  string            `json:"status"`
	Config  map[string]string `json:"config"`
	Devices map[string]map[string]string
	files   map[string]fakeFile
}

type fakeFile struct {
	typ  string
	data []byte
	mode string
}

type fakeOp struct {
	id      string
	done    chan struct{}
	status  string
	err     string
	meta    map[string]any
	secrets map[string]string // fd -> secret
	conns   map[string]*websocket.Conn
	ready   chan struct{} // every websocket connected
	finish  chan struct{} // the handlers may return
}

func newFakeLXD(t *testing.T) *fakeLXD {
	t.Helper()
	dir, err := os.MkdirTemp("", "kklxd")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeLXD{
		t: t, socket: filepath.Join(dir, "unix.socket"),
		images:    map[string]bool{"busybox": true},
		instances: map[string]*fakeInstance{},
		ops:       map[string]*fakeOp{},
		groups:    map[string]int{},
	}
	ln, err := net.Listen("unix", f.socket)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /1.0", f.server)
	mux.HandleFunc("GET /1.0/instances", f.list)
	mux.HandleFunc("POST /1.0/instances", f.create)
	mux.HandleFunc("PUT /1.0/instances/{name}/state", f.state)
	mux.HandleFunc("DELETE /1.0/instances/{name}", f.delete)
	mux.HandleFunc("POST /1.0/instances/{name}/files", f.pushFile)
	mux.HandleFunc("GET /1.0/instances/{name}/files", f.getFile)
	mux.HandleFunc("POST /1.0/instances/{name}/exec", f.exec)
	mux.HandleFunc("GET /1.0/operations/{id}/wait", f.wait)
	mux.Handle("GET /1.0/operations/{id}/websocket", websocket.Server{Handler: f.websocket})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return f
}

func sync200(w http.ResponseWriter, meta any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "sync", "status": "Success", "status_code": 200, "metadata": meta})
}

func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": msg, "error_code": code})
}

// newOp registers an operation; the caller ends it with end.
func (f *fakeLXD) newOp(meta map[string]any) *fakeOp {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextOp++
	op := &fakeOp{
		id: fmt.Sprintf("op-%d", f.nextOp), done: make(chan struct{}), status: "Running",
		meta: meta, secrets: map[string]string{}, conns: map[string]*websocket.Conn{},
		ready: make(chan struct{}), finish: make(chan struct{}),
	}
	f.ops[op.id] = op
	return op
}

func (f *fakeLXD) end(op *fakeOp, err string) {
	f.mu.Lock()
	op.status, op.err = "Success", err
	if err != "" {
		op.status = "Failure"
	}
	f.mu.Unlock()
	close(op.done)
}

func (f *fakeLXD) async(w http.ResponseWriter, op *fakeOp) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	f.mu.Lock()
	meta := map[string]any{"id": op.id, "status": op.status, "status_code": 103, "metadata": op.meta}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "async", "status": "Operation created", "status_code": 100,
		"operation": "/1.0/operations/" + op.id, "metadata": meta,
	})
}

func (f *fakeLXD) done(w http.ResponseWriter, err string) {
	op := f.newOp(nil)
	f.end(op, err)
	f.async(w, op)
}

func (f *fakeLXD) server(w http.ResponseWriter, _ *http.Request) {
	sync200(w, map[string]any{"api_version": "1.0", "environment": map[string]any{"server_version": "5.0.2"}})
}

func (f *fakeLXD) list(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := []*fakeInstance{}
	for _, in := range f.instances {
		list = append(list, in)
	}
	sync200(w, list)
}

func (f *fakeLXD) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name    string
		Source  struct{ Type, Alias string }
		Config  map[string]string
		Devices map[string]map[string]string
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, 400, err.Error())
		return
	}
	f.mu.Lock()
	_, exists := f.instances[req.Name]
	known := f.images[req.Source.Alias]
	if known && !exists {
		f.instances[req.Name] = &fakeInstance{Name: req.Name, Status: "Stopped", Config: req.Config, Devices: req.Devices, files: map[string]fakeFile{}}
	}
	f.mu.Unlock()
	switch {
	case !known:
		fail(w, 404, "Image not found")
	case exists:
		fail(w, 409, "Instance already exists")
	default:
		f.done(w, "")
	}
}

func (f *fakeLXD) instance(w http.ResponseWriter, r *http.Request) *fakeInstance {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.instances[r.PathValue("name")]
	if in == nil {
		fail(w, 404, "Instance not found")
	}
	return in
}

func (f *fakeLXD) state(w http.ResponseWriter, r *http.Request) {
	in := f.instance(w, r)
	if in == nil {
		return
	}
	var req struct{ Action string }
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	if req.Action == "start" && in.Config[KeyJob] == "666" {
		f.mu.Unlock()
		f.done(w, "Failed to run: lxd forkstart: exit status 1")
		return
	}
	switch req.Action {
	case "start":
		in.Status = "Running"
	case "stop":
		in.Status = "Stopped"
	}
	f.mu.Unlock()
	f.done(w, "")
}

func (f *fakeLXD) delete(w http.ResponseWriter, r *http.Request) {
	in := f.instance(w, r)
	if in == nil {
		return
	}
	f.mu.Lock()
	running := in.Status == "Running"
	if !running {
		delete(f.instances, in.Name)
	}
	f.mu.Unlock()
	if running {
		fail(w, 400, "Instance is running")
		return
	}
	f.done(w, "")
}

func (f *fakeLXD) pushFile(w http.ResponseWriter, r *http.Request) {
	in := f.instance(w, r)
	if in == nil {
		return
	}
	data, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	in.files[r.URL.Query().Get("path")] = fakeFile{typ: r.Header.Get("X-LXD-type"), data: data, mode: r.Header.Get("X-LXD-mode")}
	f.mu.Unlock()
	sync200(w, nil)
}

func (f *fakeLXD) getFile(w http.ResponseWriter, r *http.Request) {
	in := f.instance(w, r)
	if in == nil {
		return
	}
	f.mu.Lock()
	file, ok := in.files[r.URL.Query().Get("path")]
	f.mu.Unlock()
	if !ok {
		fail(w, 404, "Not found")
		return
	}
	w.Header().Set("X-LXD-type", file.typ)
	_, _ = w.Write(file.data)
}

func (f *fakeLXD) exec(w http.ResponseWriter, r *http.Request) {
	in := f.instance(w, r)
	if in == nil {
		return
	}
	var req struct {
		Command     []string
		Environment map[string]string
		Cwd         string
		User, Group uint32
		Wait        bool `json:"wait-for-websocket"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Command) < 2 || req.Command[0] != helperPath {
		fail(w, 400, fmt.Sprintf("bad exec %v", req.Command))
		return
	}
	f.mu.Lock()
	_, pushed := in.files[helperPath]
	running := in.Status == "Running"
	f.mu.Unlock()
	if !pushed || !running {
		fail(w, 400, "the helper was not pushed or the instance is not running")
		return
	}
	switch req.Command[1] {
	case inside.SignalCmd:
		f.mu.Lock()
		f.signals = append(f.signals, req.Command[2]+" "+req.Command[3])
		pgid := f.groups[req.Command[3]]
		f.mu.Unlock()
		if pgid > 0 {
			sig := syscall.SIGTERM
			if req.Command[2] == "KILL" {
				sig = syscall.SIGKILL
			}
			_ = syscall.Kill(-pgid, sig)
		}
		op := f.newOp(map[string]any{"return": 0})
		f.end(op, "")
		f.async(w, op)
	case inside.ExecCmd:
		if !req.Wait {
			fail(w, 400, "expected wait-for-websocket")
			return
		}
		op := f.newOp(nil)
		fds := map[string]string{}
		for _, fd := range []string{"0", "1", "2", "control"} {
			fds[fd] = op.id + "-" + fd
			op.secrets[fd] = fds[fd]
		}
		op.meta = map[string]any{"fds": fds}
		f.async(w, op)
		go f.run(op, req.Command[2], req.Command[3:], req.Environment, req.Cwd)
	default:
		fail(w, 400, "unknown helper command")
	}
}

// run waits for the websockets, runs argv and streams its output.
func (f *fakeLXD) run(op *fakeOp, pidfile string, argv []string, env map[string]string, cwd string) {
	defer close(op.finish)
	select {
	case <-op.ready:
	case <-time.After(10 * time.Second):
		f.end(op, "websockets not connected")
		return
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = cwd
	c.Env = os.Environ()
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	out := op.conns["1"]
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	code := 0
	if err := c.Start(); err != nil {
		_, _ = fmt.Fprintf(out, "kk: %s: %v\n", argv[0], err)
		code = 127
	} else {
		f.mu.Lock()
		f.groups[pidfile] = c.Process.Pid
		f.mu.Unlock()
		_ = c.Wait()
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		ws := c.ProcessState.Sys().(syscall.WaitStatus)
		code = c.ProcessState.ExitCode()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	f.mu.Lock()
	op.meta = map[string]any{"return": code}
	f.mu.Unlock()
	f.end(op, "")
}

func (f *fakeLXD) websocket(c *websocket.Conn) {
	r := c.Request()
	f.mu.Lock()
	op := f.ops[r.PathValue("id")]
	var fd string
	if op != nil {
		for k, s := range op.secrets {
			if s == r.URL.Query().Get("secret") {
				fd = k
			}
		}
	}
	if op == nil || fd == "" {
		f.mu.Unlock()
		return
	}
	c.PayloadType = websocket.BinaryFrame
	op.conns[fd] = c
	if len(op.conns) == len(op.secrets) {
		close(op.ready)
	}
	f.mu.Unlock()
	if fd == "0" || fd == "control" {
		_, _ = io.Copy(io.Discard, c) // until the client closes
		return
	}
	<-op.finish
}

func (f *fakeLXD) wait(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	op := f.ops[r.PathValue("id")]
	f.mu.Unlock()
	if op == nil {
		fail(w, 404, "Operation not found")
		return
	}
	select {
	case <-op.done:
	case <-time.After(5 * time.Second):
	case <-r.Context().Done():
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sync200(w, map[string]any{"id": op.id, "status": op.status, "status_code": 200, "err": op.err, "metadata": op.meta})
}

func (f *fakeLXD) instanceNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.instances {
		names = append(names, n)
	}
	return names
}

func (f *fakeLXD) signalsSent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.signals...)
}

func (f *fakeLXD) hasInstanceFile(name, p string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.instances[name]
	if in == nil {
		return false
	}
	_, ok := in.files[p]
	return ok
}
