// Package docker is the executor that runs a job in a Docker container,
// through the Docker Engine API (the official Go client).
//
// One container per job:
//   - the image is the environment's system (JobSpec.System); a missing image
//     is pulled, and when the pull fails Prepare fails with a message naming
//     the image and how to put it on the agent host;
//   - its entrypoint is the agent's own static binary, bind-mounted read-only
//     at /.kk-bin/kkagent and run as `__kk-init` (see pkg/executor/inside), so
//     any image works, even FROM scratch with only busybox;
//   - the job workspace <dataDir>/jobs/<jobID> is bind-mounted at the same
//     path, so files persist between steps and files the agent writes there
//     (shell scripts) are visible inside. An agent that itself runs in a
//     container with the host's Docker socket must therefore see its data dir
//     at the same path as the host does;
//   - labels kk.agent=<agent id>, kk.job=<job id>, kk.attempt=<attempt>;
//   - network mode from JobSpec.Options["network"] (default: the engine's).
//
// Each command runs by exec (as Command.User when given) under
// `kkagent __kk-exec`, which makes it the leader of a new process group and
// records the group in a tmpfs (/.kk-run). Exec has no kill API: on cancel,
// timeout or Close the executor signals that group through another exec
// (SIGTERM, Command.Grace, SIGKILL). When the command exits on its own, the
// wrapper kills what is left of its group, as the local executor does.
// Output is demultiplexed and written to Command.Output in order; the exit
// code comes from exec inspect.
//
// Close force-removes the container and the workspace. Prepare and the agent's
// start (KillLeftovers) remove every container labelled with this agent, so
// containers of a crashed agent do not pile up.
package docker

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/inside"
)

// Labels put on every job container.
const (
	LabelAgent   = "kk.agent"
	LabelJob     = "kk.job"
	LabelAttempt = "kk.attempt"
)

// Paths inside the container.
const (
	helperPath = "/.kk-bin/kkagent"
	runDir     = "/.kk-run"
)

// DefaultGrace is the time between SIGTERM and SIGKILL when Command.Grace is 0.
const DefaultGrace = 5 * time.Second

// Config configures the docker executor.
type Config struct {
	// DataDir holds the workspaces (DataDir/jobs/<jobID>), as for the local
	// executor.
	DataDir string
	// AgentID labels the containers (kk.agent); SetAgentID may set it later.
	AgentID string
	// Helper is the host path of a statically linked kkagent binary
	// (default: this process's executable).
	Helper string
	// Client talks to the engine (default: from DOCKER_HOST etc., or
	// /var/run/docker.sock, with API version negotiation).
	Client *client.Client
	Logger *slog.Logger
}

// Executor runs jobs in containers. It implements executor.Executor.
type Executor struct {
	cfg Config
	cli *client.Client
	log *slog.Logger

	mu      sync.Mutex
	agentID string
}

var _ executor.Executor = (*Executor)(nil)

// New returns a docker executor. It does not contact the engine; use
// Capabilities to see whether it answers.
func New(cfg Config) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("docker executor: data dir is required")
	}
	if cfg.Helper == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("docker executor: find own binary: %w", err)
		}
		cfg.Helper = exe
	}
	if h, err := filepath.EvalSymlinks(cfg.Helper); err == nil {
		cfg.Helper = h
	}
	if err := checkStatic(cfg.Helper); err != nil {
		return nil, fmt.Errorf("docker executor: %w", err)
	}
	cli := cfg.Client
	if cli == nil {
		var err error
		cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker executor: %w", err)
		}
	}
	return &Executor{cfg: cfg, cli: cli, log: cfg.Logger, agentID: cfg.AgentID}, nil
}

// Name returns "docker".
func (e *Executor) Name() string { return ci.ExecutorDocker }

// SetAgentID sets the kk.agent label value (the agent's UUID, known once the
// agent has loaded its identity).
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

// Capabilities pings the engine and reports its version; the executor is
// unavailable when the engine does not answer within 3 s.
func (e *Executor) Capabilities(ctx context.Context) executor.Capabilities {
	caps := executor.Capabilities{Name: ci.ExecutorDocker}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := e.cli.Ping(ctx); err != nil {
		return caps
	}
	v, err := e.cli.ServerVersion(ctx)
	if err != nil {
		return caps
	}
	caps.Available, caps.Version = true, v.Version
	return caps
}

// KillLeftovers force-removes the containers labelled with this agent (left
// by a crashed agent process); it returns how many it removed.
func (e *Executor) KillLeftovers() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := e.removeLeftovers(ctx)
	if err != nil {
		e.log.Warn("remove leftover job containers", "err", err)
	}
	return n
}

func (e *Executor) removeLeftovers(ctx context.Context) (int, error) {
	id := e.agent()
	if id == "" {
		return 0, nil
	}
	list, err := e.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelAgent+"="+id)),
	})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	n := 0
	var errs []error
	for _, c := range list {
		err := e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %.12s: %w", c.ID, err))
			continue
		}
		e.log.Info("removed leftover job container", "container", c.ID[:12], "job_id", c.Labels[LabelJob])
		n++
	}
	return n, errors.Join(errs...)
}

// Prepare removes leftover containers of this agent, creates the workspace,
// makes sure the image is there (pulling it) and starts the job's container.
func (e *Executor) Prepare(ctx context.Context, spec executor.JobSpec) (executor.Env, error) {
	if spec.System == "" {
		return nil, errors.New("docker executor: the environment has no system: set it to the image to run the job in")
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
	// Steps may run as any user of the image.
	if err := os.Chmod(ws, 0o777); err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	if err := e.ensureImage(ctx, spec.System); err != nil {
		return nil, err
	}
	labels := map[string]string{
		LabelAgent:   e.agent(),
		LabelJob:     strconv.FormatInt(spec.JobID, 10),
		LabelAttempt: strconv.Itoa(spec.Attempt),
	}
	hc := &container.HostConfig{
		Binds: []string{ws + ":" + ws, e.cfg.Helper + ":" + helperPath + ":ro"},
		Tmpfs: map[string]string{runDir: "mode=1777"},
	}
	if nm := spec.Options["network"]; nm != "" {
		hc.NetworkMode = container.NetworkMode(nm)
	}
	name := fmt.Sprintf("kk-job-%d-%d-%s", spec.JobID, spec.Attempt, randomHex(3))
	// A cancelled request may still create the container on the engine's
	// side, where nothing would remove it: create and start are not
	// cancelled; a cancel that came meanwhile removes the container after.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	created, err := e.cli.ContainerCreate(cctx, &container.Config{
		Image:      spec.System,
		Entrypoint: []string{helperPath, inside.InitCmd},
		Cmd:        []string{},
		WorkingDir: ws,
		Labels:     labels,
	}, hc, nil, nil, name)
	if err != nil {
		return nil, fmt.Errorf("create container from image %q: %w", spec.System, err)
	}
	err = e.cli.ContainerStart(cctx, created.ID, container.StartOptions{})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = e.cli.ContainerRemove(cctx, created.ID, container.RemoveOptions{Force: true})
		return nil, fmt.Errorf("start container from image %q: %w", spec.System, err)
	}
	log := e.log.With("job_id", spec.JobID, "container", created.ID[:12])
	log.Debug("job container started", "image", spec.System, "workspace", ws)
	return &Env{
		exec: e, id: created.ID, workspace: ws, log: log,
	}, nil
}

// ensureImage pulls ref when the engine does not have it.
func (e *Executor) ensureImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %q: %w", ref, err)
	}
	e.log.Info("pulling image", "image", ref)
	if err := e.pull(ctx, ref); err != nil {
		return fmt.Errorf("image %q is not on this agent's Docker host and pulling it failed: %w; "+
			"put it there with `docker pull %s` or `docker load` (or `docker build -t %s`) on the agent host", ref, err, ref, ref)
	}
	return nil
}

func (e *Executor) pull(ctx context.Context, ref string) error {
	rc, err := e.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
			return fmt.Errorf("agent binary %s is dynamically linked and cannot run inside job containers; build it with CGO_ENABLED=0 (as `make build` does)", path)
		}
	}
	return nil
}
