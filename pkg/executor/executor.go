// Package executor defines how an agent runs a job's steps somewhere: on the
// host (local/), in a Docker container (docker/) or an LXD instance (lxd/). The
// job runner in pkg/agent drives an Executor without knowing which one it is.
//
// Life cycle, for one job:
//
//	env, err := exec.Prepare(ctx, spec)   // once; creates workspace / container
//	res, err := env.Run(ctx, cmd)         // once per command, sequentially
//	err = env.Close(ctx)                  // always, also after cancel or timeout
//
// Contract:
//   - Prepare creates a fresh, empty workspace for the job; Close removes every
//     trace of the job it can (processes, containers, workspace).
//   - Run starts one command and returns when it has exited, or when ctx is done.
//     The command runs in its own process group (or container exec). When ctx
//     is cancelled or Command.Timeout passes, Run sends SIGTERM to the whole
//     group, waits Command.Grace, then SIGKILLs the group, and returns a Result
//     with Cancelled or TimedOut set. Nothing the command started survives Run.
//   - Output (stdout and stderr merged, in order) is written to Command.Output
//     as it is produced; Run never buffers a whole command's output.
//   - Run may be called from several goroutines at once: a background step
//     (shell `background: true`) keeps running while later steps run. Close
//     may be called concurrently with Run to abort every running command.
package executor

import (
	"context"
	"io"
	"time"
)

// JobSpec describes the job an environment is prepared for.
type JobSpec struct {
	JobID   int64
	Attempt int
	System  string // the environment's system: an OS name, a Docker image, an LXD alias
	// Options holds executor-specific settings of the environment (e.g. network mode).
	Options map[string]string
}

// Command is one process to run inside a prepared environment.
type Command struct {
	// Argv is the program and its arguments (Argv[0] is looked up in PATH).
	Argv []string
	// Env is added to the environment's base environment ("K=V" entries win
	// over inherited ones).
	Env []string
	// Dir is the working directory, relative to the workspace unless absolute.
	Dir string
	// User to run as ("" for the agent's own user).
	User string
	// Timeout kills the command's group after this long (0: none besides ctx).
	Timeout time.Duration
	// Grace is the time between SIGTERM and SIGKILL (0: 5 s).
	Grace time.Duration
	// Output receives stdout and stderr as they are produced.
	Output io.Writer
}

// Result is how a command ended.
type Result struct {
	ExitCode  int // -1 when killed by a signal or never started
	TimedOut  bool
	Cancelled bool
	Duration  time.Duration
}

// Capabilities tell the scheduler what an executor can do on this host.
type Capabilities struct {
	Name      string // local, docker, lxd
	Available bool
	Version   string // engine version, when it applies
}

// Executor prepares job environments.
type Executor interface {
	// Name returns local, docker or lxd.
	Name() string
	// Capabilities probes the host (cheaply; it may be called on every register).
	Capabilities(ctx context.Context) Capabilities
	// Prepare creates the environment for one job.
	Prepare(ctx context.Context, spec JobSpec) (Env, error)
}

// Env is a prepared job environment.
type Env interface {
	// Workspace is the job's working directory as seen by commands.
	Workspace() string
	// Run runs one command; see the package contract.
	Run(ctx context.Context, cmd Command) (Result, error)
	// Close tears the environment down. It is idempotent.
	Close(ctx context.Context) error
}

// SystemFiles is implemented by environments whose commands do not see the
// host's file system at / (a container): tools ask it, not os.Stat, whether
// the environment's system has a program (e.g. /bin/bash). The workspace is
// the exception: it is visible at Workspace() both to the agent and to the
// commands, so tools may write files there (shell scripts) directly.
type SystemFiles interface {
	// HasFile tells whether the system has a file (not a directory) at the
	// absolute path p.
	HasFile(ctx context.Context, p string) bool
}
