// Package inside holds the helper commands the agent's own static binary runs
// inside a job's container, so that jobs work in any image, even one that has
// nothing but busybox (or no shell at all):
//
//	kkagent __kk-init                         keepalive entrypoint (PID 1): reaps orphans, exits on SIGTERM
//	kkagent __kk-exec PIDFILE ARGV...         runs ARGV as leader of a new process group, records the
//	                                          group in PIDFILE, kills what is left of the group when ARGV
//	                                          exits, and exits with ARGV's code (128+signal when killed)
//	kkagent __kk-signal TERM|KILL PIDFILE     signals the whole group recorded in PIDFILE
//
// Container exec APIs have no kill: the executor stops a step by signalling the
// group __kk-exec recorded, through another exec. Executors bind-mount the
// agent binary read-only into the container; it must be statically linked
// (CGO_ENABLED=0, as `make build` builds it).
package inside

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// The helper commands (argv[1] of the agent binary).
const (
	InitCmd   = "__kk-init"
	ExecCmd   = "__kk-exec"
	SignalCmd = "__kk-signal"
)

// Main runs a helper command when args (os.Args[1:]) name one; handled is
// false otherwise, and the caller goes on with its normal command line.
func Main(args []string) (code int, handled bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case InitCmd:
		return runInit(), true
	case ExecCmd:
		return runExec(args[1:]), true
	case SignalCmd:
		return runSignal(args[1:]), true
	}
	return 0, false
}

// runInit waits for SIGTERM/SIGINT and reaps every child reparented to it.
func runInit() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return 0
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}

func runExec(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "kk: usage: __kk-exec PIDFILE ARGV...")
		return 127
	}
	pidfile, argv := args[0], args[1:]
	path, err := exec.LookPath(argv[0])
	if err != nil && !errors.Is(err, exec.ErrDot) {
		fmt.Fprintf(os.Stderr, "kk: %s: command not found (PATH=%s)\n", argv[0], os.Getenv("PATH"))
		return 127
	}
	c := exec.Command(path, argv[1:]...)
	c.Args = argv
	// One pipe for both keeps their order (the executor contract merges them).
	c.Stdout, c.Stderr = os.Stdout, os.Stdout
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Signals sent to this wrapper go to the command's group.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := c.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "kk: %s: %v\n", argv[0], err)
		return 126
	}
	pgid := c.Process.Pid
	tmp := pidfile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pgid)), 0o644); err == nil {
		_ = os.Rename(tmp, pidfile)
	}
	defer os.Remove(pidfile)
	go func() {
		for s := range sigs {
			_ = syscall.Kill(-pgid, s.(syscall.Signal))
		}
	}()
	_ = c.Wait()
	signal.Stop(sigs)
	// Nothing the command started outlives it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	ws, _ := c.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return c.ProcessState.ExitCode()
}

func runSignal(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "kk: usage: __kk-signal TERM|KILL PIDFILE")
		return 2
	}
	sig := syscall.SIGTERM
	if strings.TrimPrefix(args[0], "SIG") == "KILL" {
		sig = syscall.SIGKILL
	}
	data, err := os.ReadFile(args[1])
	if err != nil {
		return 0 // the command is gone (or never recorded itself)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pgid <= 1 {
		return 1
	}
	_ = syscall.Kill(-pgid, sig)
	return 0
}
