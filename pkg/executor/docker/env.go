package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/inside"
)

// Env is a job container. It implements executor.Env and executor.SystemFiles.
type Env struct {
	exec      *Executor
	id        string
	workspace string
	log       *slog.Logger

	runs executor.Runs
}

var (
	_ executor.Env         = (*Env)(nil)
	_ executor.SystemFiles = (*Env)(nil)
)

// Workspace returns the workspace path, the same on the host and inside.
func (v *Env) Workspace() string { return v.workspace }

// ContainerID returns the job container's id.
func (v *Env) ContainerID() string { return v.id }

// HasFile tells whether the image has a regular (or linked) file at p.
func (v *Env) HasFile(ctx context.Context, p string) bool {
	st, err := v.exec.cli.ContainerStatPath(ctx, v.id, p)
	return err == nil && !st.Mode.IsDir()
}

// Close aborts running commands, waits for them (bounded by ctx), then
// force-removes the container and the workspace. It is idempotent.
func (v *Env) Close(ctx context.Context) error {
	var errs []error
	if err := v.runs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := v.exec.cli.ContainerRemove(rctx, v.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove container %.12s: %w", v.id, err))
	}
	if err := os.RemoveAll(v.workspace); err != nil {
		errs = append(errs, fmt.Errorf("remove workspace: %w", err))
	}
	return errors.Join(errs...)
}

// Run runs one command by exec; see the package comment.
func (v *Env) Run(ctx context.Context, cmd executor.Command) (executor.Result, error) {
	res := executor.Result{ExitCode: -1}
	end, cancelled, err := v.runs.Start(ctx, cmd)
	if err != nil || cancelled {
		res.Cancelled = cancelled
		return res, err
	}
	defer end()
	out := cmd.Writer()
	dir := cmd.WorkDir(v.workspace)
	pidfile := path.Join(runDir, randomHex(8)+".pid")
	argv := append([]string{helperPath, inside.ExecCmd, pidfile}, cmd.Argv...)

	// API calls go on after a cancel: they stop the command.
	actx := context.WithoutCancel(ctx)
	start := time.Now()
	created, err := v.exec.cli.ContainerExecCreate(actx, v.id, container.ExecOptions{
		User:         cmd.User,
		Env:          cmd.Env,
		WorkingDir:   dir,
		Cmd:          argv,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return res, fmt.Errorf("run %s: create exec: %w", cmd.Argv[0], err)
	}
	hj, err := v.exec.cli.ContainerExecAttach(actx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return res, fmt.Errorf("run %s: start exec: %w", cmd.Argv[0], err)
	}
	defer hj.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		w := writerIgnoringErrors{out}
		_, _ = stdcopy.StdCopy(w, w, hj.Reader)
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
	select {
	case <-copied:
	case <-ctx.Done():
		res.Cancelled = true
	case <-v.runs.Closing():
		res.Cancelled = true
	case <-timeout:
		res.TimedOut = true
	}
	if res.Cancelled || res.TimedOut {
		v.log.Debug("stopping command", "timed_out", res.TimedOut, "grace", grace)
		if !inside.Stop(func(sig string) { v.signal(actx, sig, pidfile) }, grace, copied) {
			v.log.Warn("command did not end after SIGKILL; no longer reading its output")
		}
	}
	res.Duration = time.Since(start)
	code, err := v.exitCode(actx, created.ID)
	if err != nil {
		return res, fmt.Errorf("run %s: %w", cmd.Argv[0], err)
	}
	if !res.Cancelled && !res.TimedOut {
		res.ExitCode = code
	}
	return res, nil
}

// signal runs `__kk-signal SIG PIDFILE` as root in the container.
func (v *Env) signal(ctx context.Context, sig, pidfile string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ex, err := v.exec.cli.ContainerExecCreate(ctx, v.id, container.ExecOptions{
		User: "0",
		Cmd:  []string{helperPath, inside.SignalCmd, sig, pidfile},
	})
	if err == nil {
		err = v.exec.cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true})
	}
	if err != nil {
		v.log.Warn("signal command", "signal", sig, "err", err)
	}
}

// exitCode waits (briefly) for the exec to be reported as ended.
func (v *Env) exitCode(ctx context.Context, execID string) (int, error) {
	deadline := time.Now().Add(inside.StopWait)
	for {
		ins, err := v.exec.cli.ContainerExecInspect(ctx, execID)
		if err != nil {
			return -1, fmt.Errorf("inspect exec: %w", err)
		}
		if !ins.Running || time.Now().After(deadline) {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writerIgnoringErrors keeps draining the stream after the writer failed.
type writerIgnoringErrors struct{ w io.Writer }

func (w writerIgnoringErrors) Write(p []byte) (int, error) {
	_, _ = w.w.Write(p)
	return len(p), nil
}
