// Package agentdist distributes kkagent binaries and keeps agents on the
// binary kkd serves, in the manner of GoCD's bootstrapper and launcher:
//
//   - Server side, NewHandler serves kkagent binaries per platform and their
//     SHA-256 (GET /install/kkagent?os=&arch=, GET /install/kkagent/sha256).
//   - Agent side, an Upgrader (used by the worker between jobs) compares the
//     SHA-256 of the running binary with kkd's, downloads and verifies the
//     new binary, smoke-tests it and switches it in, keeping the old one for
//     rollback; the worker then exits with ExitUpgraded.
//   - A Supervisor (`kkagent run`) runs the worker process, restarts it with
//     backoff when it crashes, re-executes itself on the new binary after an
//     upgrade (so the supervisor upgrades too) and rolls back to the old
//     binary when the new worker crashes twice within its probation.
//
// Files next to the kkagent executable (<exe dir>):
//
//	kkagent            the running binary (whatever its name is)
//	kkagent.new        a downloaded binary being verified
//	kkagent.old        the binary before the last upgrade, for rollback
//	kkagent.rejected   SHA-256s (hex, one per line) that were rolled back:
//	                   the upgrader does not install them again
package agentdist

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Exit codes of a kkagent worker, as its supervisor reads them. Any other
// status (1, a Go panic's 2, death by a signal) is a crash: the supervisor
// restarts the worker with backoff.
const (
	// ExitStopped: the worker stopped on request (SIGTERM/SIGINT); the
	// supervisor exits too.
	ExitStopped = 0
	// ExitUpgraded: the worker replaced the executable with a new binary;
	// the supervisor re-executes itself on it.
	ExitUpgraded = 3
	// ExitSetup: restarting does not help (the data dir is in use by another
	// kkagent, bad flags); the supervisor exits with an error.
	ExitSetup = 4
)

// EnvUpgraded is set (to "1") in the environment of a supervisor that was
// re-executed on a new binary: its workers are on probation.
const EnvUpgraded = "KKAGENT_UPGRADED"

// Names of the upgrade files next to the executable.
const (
	NewName      = "kkagent.new"
	OldName      = "kkagent.old"
	RejectedName = "kkagent.rejected"
)

// BinaryName is the name of a served binary for a platform in Config.Dir.
func BinaryName(goos, goarch string) string { return "kkagent-" + goos + "-" + goarch }

// fileSHA256 returns the hex SHA-256 of a file's content.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readerSHA256(f)
}

func readerSHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// validSHA256 tells whether s is a lowercase hex SHA-256.
func validSHA256(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// rejected tells whether sum was rolled back before (listed in
// <dir>/kkagent.rejected).
func rejected(dir, sum string) bool {
	data, err := os.ReadFile(filepath.Join(dir, RejectedName))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == sum {
			return true
		}
	}
	return false
}

// reject adds sum to <dir>/kkagent.rejected.
func reject(dir, sum string) error {
	if rejected(dir, sum) {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dir, RejectedName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("record rejected binary: %w", err)
	}
	_, err = fmt.Fprintln(f, sum)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record rejected binary: %w", err)
	}
	return nil
}

// startCmd starts cmd, retrying for a moment while the executable is "text
// file busy": a file just written may still be open for writing in a child
// that another goroutine forked and that has not executed yet (Go issue
// 22315).
func startCmd(cmd *exec.Cmd) error {
	delay := 5 * time.Millisecond
	for try := 0; ; try++ {
		err := cmd.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || try == 8 {
			return err
		}
		time.Sleep(delay) // a transient kernel condition: retry shortly
		delay *= 2
		// A Cmd cannot be started twice; make a fresh one with the same settings.
		next := exec.Command(cmd.Path, cmd.Args[1:]...)
		next.Args[0] = cmd.Args[0]
		next.Env, next.Dir, next.SysProcAttr, next.WaitDelay = cmd.Env, cmd.Dir, cmd.SysProcAttr, cmd.WaitDelay
		next.Stdin, next.Stdout, next.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
		*cmd = *next
	}
}
