// Package local is the executor that runs a job's commands directly on the
// agent's host, each in its own process group.
//
// Workspaces live in <dataDir>/jobs/<jobID>. The agent runs one job at a time,
// so Prepare wipes everything under <dataDir>/jobs before it creates the new
// workspace, as Kraken does; leftovers of a crashed agent never pile up.
//
// Process handling (see executor.Env for the contract):
//   - every command is started with Setpgid, so it leads a new process group
//     holding everything it forks;
//   - on ctx cancellation, Command.Timeout or Env.Close, the whole group gets
//     SIGTERM; when the main process has not exited after Command.Grace
//     (default 5 s), or as soon as it has, the group gets SIGKILL;
//   - when the main process exits on its own, the group gets SIGKILL too, so
//     background children (`daemon &`) do not outlive the command. A shell
//     step that wants a service to keep running while the job goes on uses the
//     shell tool's `background` flag instead, which keeps its command running;
//   - stdout and stderr share one pipe whose parent ends the executor owns, so
//     Run returns even when a process that escaped the group (setsid) keeps the
//     pipe open: the remaining output is drained for at most a short delay.
//
// An Env of this package is safe for concurrent use: background steps call Run
// while later steps run.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// DefaultGrace is the time between SIGTERM and SIGKILL when Command.Grace is 0.
const DefaultGrace = 5 * time.Second

// outputDrainDelay bounds how long Run keeps reading output after the command's
// process group is gone, for processes that escaped the group but hold the pipe.
const outputDrainDelay = time.Second

// Executor runs commands on the host. It implements executor.Executor.
type Executor struct {
	dataDir string
	logger  *slog.Logger
}

var _ executor.Executor = (*Executor)(nil)

// New returns a local executor keeping its workspaces under dataDir/jobs.
func New(dataDir string, logger *slog.Logger) *Executor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{dataDir: dataDir, logger: logger}
}

// Name returns "local".
func (e *Executor) Name() string { return ci.ExecutorLocal }

// Capabilities reports the local executor, which is always available.
func (e *Executor) Capabilities(ctx context.Context) executor.Capabilities {
	return executor.Capabilities{Name: ci.ExecutorLocal, Available: true}
}

// Prepare wipes <dataDir>/jobs and creates the job's empty workspace in it.
func (e *Executor) Prepare(ctx context.Context, spec executor.JobSpec) (executor.Env, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prepare workspace: %w", err)
	}
	jobsDir := filepath.Join(e.dataDir, "jobs")
	e.KillLeftovers() // before the workspaces they may still use go
	if err := wipeDir(jobsDir); err != nil {
		return nil, fmt.Errorf("wipe old workspaces: %w", err)
	}
	ws := filepath.Join(jobsDir, strconv.FormatInt(spec.JobID, 10))
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	abs, err := filepath.Abs(ws)
	if err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	e.logger.Debug("workspace prepared", "job_id", spec.JobID, "attempt", spec.Attempt, "workspace", abs)
	return &Env{
		exec:      e,
		workspace: abs,
		logger:    e.logger.With("job_id", spec.JobID),
	}, nil
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

// Env is a job workspace on the host. It implements executor.Env.
type Env struct {
	exec      *Executor
	workspace string
	logger    *slog.Logger

	runs executor.Runs
}

var _ executor.Env = (*Env)(nil)

// Workspace returns the absolute path of the job's workspace.
func (v *Env) Workspace() string { return v.workspace }

// Close aborts running commands (SIGTERM, grace, SIGKILL to their groups),
// waits for them, and removes the workspace. It is idempotent. When ctx ends
// first, Close stops waiting and returns ctx's error.
func (v *Env) Close(ctx context.Context) error {
	if err := v.runs.Close(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(v.workspace); err != nil {
		return fmt.Errorf("remove workspace: %w", err)
	}
	return nil
}

// Run runs one command in its own process group; see the package comment.
func (v *Env) Run(ctx context.Context, cmd executor.Command) (executor.Result, error) {
	res := executor.Result{ExitCode: -1}
	end, cancelled, err := v.runs.Start(ctx, cmd)
	if err != nil || cancelled {
		res.Cancelled = cancelled
		return res, err
	}
	defer end()

	c, err := v.command(cmd)
	if err != nil {
		return res, err
	}
	out := cmd.Writer()
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("run %s: create output pipe: %w", cmd.Argv[0], err)
	}
	c.Stdout = pw
	c.Stderr = pw

	start := time.Now()
	if err := c.Start(); err != nil {
		pw.Close()
		pr.Close()
		return res, fmt.Errorf("run %s: %w", cmd.Argv[0], err)
	}
	// The children hold the write end now; ours must go, or EOF never comes.
	pw.Close()
	pgid := c.Process.Pid
	v.exec.recordGroup(pgid)
	defer v.exec.forgetGroup(pgid)
	log := v.logger.With("pid", pgid)
	log.Debug("command started", "argv0", cmd.Argv[0])

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		// Errors are ignored: a failing writer must not block the command, and
		// the read side only fails when Run closes it after the drain delay.
		_, _ = io.Copy(writerIgnoringErrors{out}, pr)
	}()
	waited := make(chan *os.ProcessState, 1)
	go func() {
		// Wait's error only duplicates what ProcessState says.
		_ = c.Wait()
		waited <- c.ProcessState
	}()

	var timeout <-chan time.Time
	if cmd.Timeout > 0 {
		t := time.NewTimer(cmd.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	grace := cmd.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}

	var state *os.ProcessState
	select {
	case state = <-waited:
	case <-ctx.Done():
		res.Cancelled = true
	case <-v.runs.Closing():
		res.Cancelled = true
	case <-timeout:
		res.TimedOut = true
	}
	if state == nil {
		log.Debug("stopping command", "timed_out", res.TimedOut, "grace", grace)
		state = terminateGroup(pgid, grace, waited)
	}
	// Whatever the main process left behind in its group goes too.
	killGroup(pgid, syscall.SIGKILL)
	res.Duration = time.Since(start)

	select {
	case <-copied:
	case <-time.After(outputDrainDelay):
		log.Warn("a process outside the command's group keeps its output open; no longer reading it")
	}
	pr.Close()
	<-copied

	if state != nil {
		res.ExitCode = state.ExitCode()
	}
	return res, nil
}

// terminateGroup sends SIGTERM to the group, waits up to grace for the main
// process, then sends SIGKILL and waits for the main process to be reaped.
func terminateGroup(pgid int, grace time.Duration, waited <-chan *os.ProcessState) *os.ProcessState {
	killGroup(pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case st := <-waited:
		return st
	case <-t.C:
	}
	killGroup(pgid, syscall.SIGKILL)
	return <-waited
}

// killGroup signals every process of the group; a group that is gone is fine.
func killGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}

// command builds the exec.Cmd: path, args, environment, directory, user.
func (v *Env) command(cmd executor.Command) (*exec.Cmd, error) {
	env := os.Environ()
	attr := &syscall.SysProcAttr{Setpgid: true}
	if cmd.User != "" {
		cred, userEnv, err := credentialFor(cmd.User)
		if err != nil {
			return nil, err
		}
		attr.Credential = cred
		env = append(env, userEnv...)
	}
	env = append(env, cmd.Env...)

	path, err := lookPath(cmd.Argv[0], env)
	if err != nil {
		return nil, err
	}
	dir := cmd.WorkDir(v.workspace)
	// exec.Cmd would fail with a confusing "fork/exec" message.
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("run %s: working directory: %w", cmd.Argv[0], err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("run %s: working directory %s is not a directory", cmd.Argv[0], dir)
	}
	return &exec.Cmd{
		Path:        path,
		Args:        cmd.Argv,
		Env:         env, // exec keeps the last value of duplicated keys
		Dir:         dir,
		SysProcAttr: attr,
	}, nil
}

// lookPath resolves argv0 like a shell would, using the PATH of the command's
// environment (the last PATH entry of env wins).
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil // relative paths are relative to the working directory
	}
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, argv0)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("run %s: executable not found in PATH %q", argv0, pathVar)
}

// credentialFor returns the credential and HOME/USER/LOGNAME for running as
// name, or nil when name is the agent's own user.
func credentialFor(name string) (*syscall.Credential, []string, error) {
	cur, err := user.Current()
	if err != nil {
		return nil, nil, fmt.Errorf("look up current user: %w", err)
	}
	if name == cur.Username || name == cur.Uid {
		return nil, nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, nil, fmt.Errorf("cannot run as user %q: kkagent runs as %q and can switch users only when it runs as root", name, cur.Username)
	}
	u, err := user.Lookup(name)
	if err != nil {
		var uerr error
		if u, uerr = user.LookupId(name); uerr != nil {
			return nil, nil, fmt.Errorf("look up user %q: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q: bad uid %q", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q: bad gid %q", name, u.Gid)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	env := []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username}
	return cred, env, nil
}

// writerIgnoringErrors keeps draining the pipe after the writer failed, so a
// broken log sink cannot block the command on a full pipe.
type writerIgnoringErrors struct{ w io.Writer }

func (w writerIgnoringErrors) Write(p []byte) (int, error) {
	_, _ = w.w.Write(p)
	return len(p), nil
}
