package agentdist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Defaults of SupervisorConfig.
const (
	DefaultRestartMinBackoff = time.Second
	DefaultRestartMaxBackoff = time.Minute
	DefaultProbation         = 30 * time.Second
)

// SupervisorConfig configures a Supervisor. Exe and WorkerArgs are required.
type SupervisorConfig struct {
	// Exe is the kkagent binary: workers run it, an upgrade replaces it.
	Exe string
	// WorkerArgs are the worker's arguments (after argv[0]), e.g.
	// ["worker", "--supervised", "--server=..."].
	WorkerArgs []string
	// Argv is the supervisor's own argv: after an upgrade or a rollback the
	// supervisor re-executes Exe with it (default: os.Args).
	Argv []string
	// Env is the environment of workers and re-executions (default:
	// os.Environ()). EnvUpgraded in it starts the workers' probation.
	Env []string
	// Stdout and Stderr receive the worker's output (default: os.Stdout, os.Stderr).
	Stdout, Stderr io.Writer
	Logger         *slog.Logger // default: discard
	// MinBackoff and MaxBackoff bound the delay before restarting a crashed
	// worker (default 1 s, 1 min); it grows while the worker keeps crashing
	// within Probation of its start.
	MinBackoff, MaxBackoff time.Duration
	// Probation: a worker that exits sooner than this after its start
	// crashed "quickly" (default 30 s). After an upgrade, two quick crashes
	// roll the binary back to kkagent.old.
	Probation time.Duration
	// StopSignal is sent to the worker when ctx ends (default SIGTERM).
	StopSignal syscall.Signal
	// Exec replaces the process image (default syscall.Exec); it returns
	// only on failure.
	Exec func(path string, argv, env []string) error
}

// Supervisor is `kkagent run`: GoCD's bootstrapper. It runs the worker
// process (`kkagent worker`), which holds the data dir's lock and does the
// work, and:
//   - restarts the worker with backoff when it crashes (any exit but
//     ExitStopped, ExitUpgraded and ExitSetup), logging why;
//   - forwards the stop (ctx's end: SIGTERM/SIGINT) to the worker, which
//     cancels its job cleanly, and returns when the worker has exited;
//   - gives up when the worker exits with ExitSetup (restarting cannot help);
//   - after ExitUpgraded (the worker installed a new binary between jobs),
//     re-executes itself on the new binary with the same argv, so the
//     supervisor is upgraded too, and EnvUpgraded set;
//   - when started with EnvUpgraded and the worker crashes twice within
//     Probation, restores kkagent.old, records the bad binary's SHA-256 in
//     kkagent.rejected (so it is not installed again) and re-executes itself
//     on the restored binary.
//
// The supervisor never takes the data dir's lock. The worker stays in the
// supervisor's process group (a terminal's ^C, a group SIGSTOP or kill
// reaches both) and is SIGKILLed when the supervisor dies (Pdeathsig): to the
// outside, supervisor and worker are one agent, and killing either pid kills
// the agent (kkd then requeues its job when the lease expires).
type Supervisor struct {
	cfg SupervisorConfig
	log *slog.Logger
}

// NewSupervisor checks cfg and fills in defaults.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Exe == "" || len(cfg.WorkerArgs) == 0 {
		return nil, errors.New("supervisor: the kkagent executable and the worker's arguments are required")
	}
	if len(cfg.Argv) == 0 {
		cfg.Argv = os.Args
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultRestartMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultRestartMaxBackoff
	}
	if cfg.Probation <= 0 {
		cfg.Probation = DefaultProbation
	}
	if cfg.StopSignal == 0 {
		cfg.StopSignal = syscall.SIGTERM
	}
	if cfg.Exec == nil {
		cfg.Exec = syscall.Exec
	}
	return &Supervisor{cfg: cfg, log: cfg.Logger.With("component", "supervisor")}, nil
}

// workerExit is how a worker process ended.
type workerExit struct {
	code   int // -1 when killed by a signal
	signal syscall.Signal
	lived  time.Duration
	err    error // the worker could not be started
}

func (e workerExit) String() string {
	switch {
	case e.err != nil:
		return "could not be started: " + e.err.Error()
	case e.code < 0:
		return fmt.Sprintf("was killed by signal %s after %s", e.signal, e.lived.Round(time.Millisecond))
	}
	return fmt.Sprintf("exited with status %d after %s", e.code, e.lived.Round(time.Millisecond))
}

// Run supervises workers until ctx ends (the worker is then stopped and Run
// returns when it has exited) or a worker exits on its own with ExitStopped
// (nil) or ExitSetup (an error). After an upgrade or rollback Run does not
// return: the process is replaced.
func (s *Supervisor) Run(ctx context.Context) error {
	probation := envValue(s.cfg.Env, EnvUpgraded) != ""
	workerEnv := envWithout(s.cfg.Env, EnvUpgraded)
	if probation {
		s.log.Info("started on a new kkagent binary: its worker is on probation", "exe", s.cfg.Exe, "probation", s.cfg.Probation)
	}
	quickCrashes := 0
	restarts := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		ex, stopped := s.runWorker(ctx, workerEnv)
		if stopped {
			if ex.err == nil && ex.code == ExitStopped {
				s.log.Info("worker stopped; supervisor exiting")
				return nil
			}
			return fmt.Errorf("the worker %s while stopping", ex)
		}
		if ex.lived >= s.cfg.Probation {
			probation, quickCrashes, restarts = false, 0, 0
		}
		switch {
		case ex.err == nil && ex.code == ExitStopped:
			s.log.Info("worker exited; supervisor exiting")
			return nil
		case ex.err == nil && ex.code == ExitUpgraded:
			s.restartUpgraded(workerEnv)
			// Only back here when the new binary could not be executed and
			// the old one was restored: go on supervising it.
			probation, quickCrashes, restarts = false, 0, 0
			continue
		case ex.err == nil && ex.code == ExitSetup && !probation:
			return errors.New("the worker cannot run (see its error above); restarting does not help: fix the setup and start kkagent again")
		}
		if ex.lived < s.cfg.Probation {
			quickCrashes++
		}
		if probation && quickCrashes >= 2 {
			s.rollback(workerEnv, ex)
			probation, quickCrashes, restarts = false, 0, 0
		}
		d := backoffDelay(s.cfg.MinBackoff, s.cfg.MaxBackoff, restarts)
		restarts++
		s.log.Warn("worker crashed; restarting it", "why", "the worker "+ex.String(), "restart_in", d.Round(time.Millisecond), "restarts", restarts)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// runWorker starts a worker and waits for it. When ctx ends first it sends
// the stop signal, waits, and reports stopped.
func (s *Supervisor) runWorker(ctx context.Context, env []string) (ex workerExit, stopped bool) {
	cmd := exec.Command(s.cfg.Exe, s.cfg.WorkerArgs...)
	cmd.Args[0] = s.cfg.Argv[0]
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = s.cfg.Stdout, s.cfg.Stderr
	// When the output is not a file, a stray grandchild holding the pipe must
	// not keep the supervisor waiting once the worker exited.
	cmd.WaitDelay = 10 * time.Second
	// The worker dies with a supervisor that dies (SIGKILL, OOM) instead of
	// running on unsupervised with the data dir locked. Pdeathsig fires when
	// the forking thread ends, so that thread stays with this goroutine until
	// the worker is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	if err := startCmd(cmd); err != nil {
		return workerExit{err: err}, false
	}
	s.log.Info("worker started", "pid", cmd.Process.Pid, "exe", s.cfg.Exe)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		stopped = true
		s.log.Info("stopping the worker", "pid", cmd.Process.Pid, "signal", s.cfg.StopSignal)
		if err := cmd.Process.Signal(s.cfg.StopSignal); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.log.Warn("cannot signal the worker", "pid", cmd.Process.Pid, "err", err)
		}
		waitErr = <-done
	}
	ex = workerExit{code: cmd.ProcessState.ExitCode(), lived: time.Since(start)}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.code, ex.signal = -1, ws.Signal()
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		ex.err = waitErr
	}
	return ex, stopped
}

// restartUpgraded re-executes the supervisor on the new binary. It returns
// only when that fails, after restoring the old binary.
func (s *Supervisor) restartUpgraded(env []string) {
	s.log.Info("the worker installed a new kkagent; restarting the supervisor on it", "exe", s.cfg.Exe)
	err := s.cfg.Exec(s.cfg.Exe, s.cfg.Argv, append(env, EnvUpgraded+"=1"))
	s.log.Error("cannot execute the new kkagent; rolling back to the previous binary", "exe", s.cfg.Exe, "err", err)
	if err := s.restoreOld(); err != nil {
		s.log.Error("rollback failed; the worker is restarted on whatever "+s.cfg.Exe+" is", "err", err)
	}
}

// rollback restores kkagent.old after the new binary's worker crashed twice
// within its probation, and re-executes the supervisor on it. It returns
// when there is nothing to restore or the re-execution fails.
func (s *Supervisor) rollback(env []string, last workerExit) {
	s.log.Error("the upgraded worker crashed twice within its probation; rolling back to the previous kkagent",
		"why", "the worker "+last.String(), "exe", s.cfg.Exe, "probation", s.cfg.Probation)
	if err := s.restoreOld(); err != nil {
		s.log.Error("rollback failed; restarting the worker as it is", "err", err)
		return
	}
	err := s.cfg.Exec(s.cfg.Exe, s.cfg.Argv, env)
	s.log.Error("cannot execute the restored kkagent; restarting its worker from this supervisor", "exe", s.cfg.Exe, "err", err)
}

// restoreOld moves kkagent.old back to the executable's path and records the
// SHA-256 of the binary it replaces in kkagent.rejected.
func (s *Supervisor) restoreOld() error {
	dir := filepath.Dir(s.cfg.Exe)
	old := filepath.Join(dir, OldName)
	if _, err := os.Stat(old); err != nil {
		return fmt.Errorf("no previous binary to restore: %w", err)
	}
	bad, err := fileSHA256(s.cfg.Exe)
	if err != nil {
		return fmt.Errorf("hash the failing binary: %w", err)
	}
	if err := reject(dir, bad); err != nil {
		return err
	}
	if err := os.Rename(old, s.cfg.Exe); err != nil {
		return fmt.Errorf("restore %s: %w", old, err)
	}
	syncDir(dir)
	s.log.Warn("rolled back to the previous kkagent; the failing binary will not be installed again",
		"exe", s.cfg.Exe, "rejected_sha256", bad, "rejected_list", filepath.Join(dir, RejectedName))
	return nil
}

// backoffDelay is min·2ⁿ capped at max, with jitter in [d/2, d].
func backoffDelay(lo, hi time.Duration, n int) time.Duration {
	d := lo << min(n, 30)
	if d <= 0 || d > hi {
		d = hi
	}
	half := d / 2
	return half + rand.N(half+1)
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

func envWithout(env []string, key string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}
