// Package lxd is the executor that runs a job in an LXD instance, through
// LXD's REST API over its unix socket (plain net/http; the LXD Go client is
// not used).
//
// One instance per job:
//   - it is launched from the image alias named by the environment's system
//     (JobSpec.System); a missing alias fails Prepare with a message naming
//     the alias and how to put the image on the agent host;
//   - it is named kk-<agent>-<job>-<attempt> (sanitised to LXD's rules) and
//     carries the config keys user.kk.agent, user.kk.job and user.kk.attempt;
//   - the job workspace <dataDir>/jobs/<jobID> is a disk device at the same
//     path inside, so files persist between steps and files the agent writes
//     there (shell scripts) are visible inside;
//   - the agent's own static binary is pushed to /.kk-bin/kkagent with the
//     file API before the instance starts, and is its init (`__kk-init`, set
//     by raw.lxc lxc.init.cmd), so images need no /sbin/init: busybox is
//     enough; /.kk-run is created for the step wrapper's group records.
//
// Each command runs by exec (POST /1.0/instances/{name}/exec, with
// wait-for-websocket) under `kkagent __kk-exec` (pkg/executor/inside), which
// makes it the leader of a new process group and records the group. The
// wrapper writes stdout and stderr to one pipe, so their order is kept; the
// executor reads the operation's websockets and writes what arrives to
// Command.Output. The exit code is the operation's metadata.return. LXD's
// exec has no kill: on cancel, timeout or Close the executor signals the
// recorded group through another exec (SIGTERM, Command.Grace, SIGKILL).
//
// Close force-stops and deletes the instance and removes the workspace.
// Prepare and the agent's start (KillLeftovers) delete every instance whose
// user.kk.agent is this agent.
package lxd

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/inside"
)

// Config keys put on every job instance.
const (
	KeyAgent   = "user.kk.agent"
	KeyJob     = "user.kk.job"
	KeyAttempt = "user.kk.attempt"
)

// Paths inside the instance.
const (
	helperPath = "/.kk-bin/kkagent"
	runDir     = "/.kk-run"
)

// DefaultGrace is the time between SIGTERM and SIGKILL when Command.Grace is 0.
const DefaultGrace = 5 * time.Second

// DefaultSockets are tried in order when neither Config.Socket nor
// LXD_SOCKET is set.
var DefaultSockets = []string{"/var/snap/lxd/common/lxd/unix.socket", "/var/lib/lxd/unix.socket"}

// Config configures the lxd executor.
type Config struct {
	// DataDir holds the workspaces (DataDir/jobs/<jobID>).
	DataDir string
	// AgentID names the instances and goes in user.kk.agent; SetAgentID may
	// set it later.
	AgentID string
	// Helper is the host path of a statically linked kkagent binary
	// (default: this process's executable).
	Helper string
	// Socket is LXD's unix socket (default: $LXD_SOCKET, else the first of
	// DefaultSockets that exists).
	Socket string
	Logger *slog.Logger
}

// Executor runs jobs in LXD instances. It implements executor.Executor.
type Executor struct {
	cfg Config
	api *apiClient
	log *slog.Logger

	mu      sync.Mutex
	agentID string
}

var _ executor.Executor = (*Executor)(nil)

// New returns an lxd executor. It does not contact LXD; use Capabilities to
// see whether it answers.
func New(cfg Config) (*Executor, error) {
	if cfg.Helper == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("lxd executor: find own binary: %w", err)
		}
		cfg.Helper = exe
	}
	if h, err := filepath.EvalSymlinks(cfg.Helper); err == nil {
		cfg.Helper = h
	}
	if err := checkStatic(cfg.Helper); err != nil {
		return nil, fmt.Errorf("lxd executor: %w", err)
	}
	return newExecutor(cfg)
}

func newExecutor(cfg Config) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("lxd executor: data dir is required")
	}
	if cfg.Socket == "" {
		cfg.Socket = SocketPath()
	}
	return &Executor{cfg: cfg, api: newAPIClient(cfg.Socket), log: cfg.Logger, agentID: cfg.AgentID}, nil
}

// SocketPath returns $LXD_SOCKET, else the first of DefaultSockets that
// exists, else the last of them.
func SocketPath() string {
	if s := os.Getenv("LXD_SOCKET"); s != "" {
		return s
	}
	for _, s := range DefaultSockets {
		if _, err := os.Stat(s); err == nil {
			return s
		}
	}
	return DefaultSockets[len(DefaultSockets)-1]
}

// Name returns "lxd".
func (e *Executor) Name() string { return ci.ExecutorLXD }

// SetAgentID sets the agent id used in instance names and user.kk.agent.
func (e *Executor) SetAgentID(id string) {
	e.mu.Lock()
	e.agentID = id
	e.mu.Unlock()
}

func (e *Executor) agent() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.agentID
}

// Capabilities asks GET /1.0 for the server version; the executor is
// unavailable when LXD does not answer within 3 s.
func (e *Executor) Capabilities(ctx context.Context) executor.Capabilities {
	caps := executor.Capabilities{Name: ci.ExecutorLXD}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := e.api.do(ctx, http.MethodGet, "/1.0", nil)
	if err != nil {
		return caps
	}
	var srv struct {
		Environment struct {
			ServerVersion string `json:"server_version"`
		} `json:"environment"`
	}
	if err := json.Unmarshal(r.Metadata, &srv); err != nil {
		return caps
	}
	caps.Available, caps.Version = true, srv.Environment.ServerVersion
	return caps
}

// KillLeftovers deletes the instances of this agent (left by a crashed agent
// process); it returns how many it deleted.
func (e *Executor) KillLeftovers() int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := e.removeLeftovers(ctx)
	if err != nil {
		e.log.Warn("remove leftover job instances", "err", err)
	}
	return n
}

type instance struct {
	Name   string            `json:"name"`
	Status string            `json:"status"`
	Config map[string]string `json:"config"`
}

func (e *Executor) removeLeftovers(ctx context.Context) (int, error) {
	id := e.agent()
	if id == "" {
		return 0, nil
	}
	r, err := e.api.do(ctx, http.MethodGet, "/1.0/instances?recursion=1", nil)
	if err != nil {
		return 0, fmt.Errorf("list instances: %w", err)
	}
	var list []instance
	if err := json.Unmarshal(r.Metadata, &list); err != nil {
		return 0, fmt.Errorf("list instances: %w", err)
	}
	n := 0
	var errs []error
	for _, in := range list {
		if in.Config[KeyAgent] != id {
			continue
		}
		if err := e.deleteInstance(ctx, in.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		e.log.Info("removed leftover job instance", "instance", in.Name, "job_id", in.Config[KeyJob])
		n++
	}
	return n, errors.Join(errs...)
}

// deleteInstance force-stops and deletes an instance; a missing one is fine.
func (e *Executor) deleteInstance(ctx context.Context, name string) error {
	p := "/1.0/instances/" + url.PathEscape(name)
	_, err := e.api.run(ctx, http.MethodPut, p+"/state", map[string]any{"action": "stop", "force": true, "timeout": 30})
	if err != nil && !isNotFound(err) && !strings.Contains(err.Error(), "already stopped") {
		e.log.Debug("stop instance", "instance", name, "err", err)
	}
	if _, err := e.api.run(ctx, http.MethodDelete, p, nil); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete instance %s: %w", name, err)
	}
	return nil
}

// Prepare deletes leftover instances of this agent, creates the workspace,
// creates the job's instance, puts the step wrapper in it and starts it.
func (e *Executor) Prepare(ctx context.Context, spec executor.JobSpec) (executor.Env, error) {
	if spec.System == "" {
		return nil, errors.New("lxd executor: the environment has no system: set it to the LXD image alias to run the job in")
	}
	if _, err := e.removeLeftovers(ctx); err != nil {
		return nil, err
	}
	jobsDir := filepath.Join(e.cfg.DataDir, "jobs")
	if err := wipeDir(jobsDir); err != nil {
		return nil, fmt.Errorf("wipe old workspaces: %w", err)
	}
	ws, err := filepath.Abs(filepath.Join(jobsDir, strconv.FormatInt(spec.JobID, 10)))
	if err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	// Steps may run as any user of the image (and unprivileged instances
	// map root to another uid).
	if err := os.Chmod(ws, 0o777); err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	name := InstanceName(e.agent(), spec.JobID, spec.Attempt)
	// A cancelled request may still create the instance on LXD's side: the
	// API calls are not cancelled; a cancel that came meanwhile deletes the
	// instance after.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	_, err = e.api.run(cctx, http.MethodPost, "/1.0/instances", map[string]any{
		"name":   name,
		"type":   "container",
		"source": map[string]any{"type": "image", "alias": spec.System},
		"config": map[string]string{
			KeyAgent:   e.agent(),
			KeyJob:     strconv.FormatInt(spec.JobID, 10),
			KeyAttempt: strconv.Itoa(spec.Attempt),
			// The step wrapper is the init: images need no /sbin/init.
			"raw.lxc": "lxc.init.cmd = " + helperPath + " " + inside.InitCmd,
		},
		"devices": map[string]any{
			"kk-workspace": map[string]string{"type": "disk", "source": ws, "path": ws},
		},
	})
	if err != nil {
		_ = e.deleteInstance(cctx, name)
		if isNotFound(err) || strings.Contains(strings.ToLower(err.Error()), "not found") {
			return nil, fmt.Errorf("image alias %q is not on this agent's LXD host (%w); "+
				"put it there with `lxc image import ... --alias %s` or `lxc image copy REMOTE:IMAGE local: --alias %s`",
				spec.System, err, spec.System, spec.System)
		}
		return nil, fmt.Errorf("create instance from image alias %q: %w", spec.System, err)
	}
	log := e.log.With("job_id", spec.JobID, "instance", name)
	fail := func(what string, err error) (executor.Env, error) {
		if derr := e.deleteInstance(cctx, name); derr != nil {
			log.Warn("delete instance", "err", derr)
		}
		return nil, fmt.Errorf("%s instance %s: %w", what, name, err)
	}
	if err := e.pushHelper(cctx, name); err != nil {
		return fail("set up", err)
	}
	_, err = e.api.run(cctx, http.MethodPut, "/1.0/instances/"+url.PathEscape(name)+"/state",
		map[string]any{"action": "start", "timeout": 60})
	if err != nil {
		return fail("start", err)
	}
	if err := ctx.Err(); err != nil {
		return fail("start", err)
	}
	log.Debug("job instance started", "alias", spec.System, "workspace", ws)
	return &Env{
		exec: e, name: name, workspace: ws, log: log,
	}, nil
}

// pushHelper puts the agent binary and the run directory in the instance.
func (e *Executor) pushHelper(ctx context.Context, name string) error {
	for _, d := range []struct{ path, mode string }{{"/.kk-bin", "0755"}, {runDir, "1777"}} {
		if err := e.api.pushFile(ctx, name, d.path, nil, d.mode); err != nil {
			return err
		}
	}
	f, err := os.Open(e.cfg.Helper)
	if err != nil {
		return fmt.Errorf("open agent binary: %w", err)
	}
	defer f.Close()
	return e.api.pushFile(ctx, name, helperPath, f, "0755")
}

// InstanceName returns kk-<agent>-<job>-<attempt> made a valid LXD name:
// lower-case letters, digits and hyphens, starting with a letter, at most 63
// characters.
func InstanceName(agent string, job int64, attempt int) string {
	suffix := fmt.Sprintf("-%d-%d", job, attempt)
	var b strings.Builder
	for _, r := range strings.ToLower(agent) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	a := strings.Trim(b.String(), "-")
	if a == "" {
		a = "agent"
	}
	if max := 63 - len("kk-") - len(suffix); len(a) > max {
		a = strings.TrimRight(a[:max], "-")
	}
	return "kk-" + a + suffix
}

// wipeDir removes everything inside dir (not dir itself); a missing dir is fine.
func wipeDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, ent := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, ent.Name())))
	}
	return errors.Join(errs...)
}

// checkStatic makes sure the helper binary runs in any image: it must not
// need a dynamic loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("agent binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("agent binary %s is dynamically linked and cannot run inside job instances; build it with CGO_ENABLED=0 (as `make build` does)", path)
		}
	}
	return nil
}
